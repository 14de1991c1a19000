/**
 * Standalone VRRP: `node --import tsx src/ha/vrrp-main.ts --config FILE [--keepalived]`. FILE is a tierlb YAML file
 * with a `vrrp:` section, or a keepalived.conf (by `--keepalived` or a `.conf` name; its virtual servers are read
 * and ignored here). Runs until SIGINT/SIGTERM, then leaves cleanly (a master sends priority 0 and drops the VIPs).
 * State changes of instances and sync groups are printed on stdout as JSON lines.
 */
import { readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import { parse as parseYaml } from 'yaml';
import { log } from '../common/log.js';
import { vrrpSchema } from './config-schema.js';
import { loadKeepalivedConf } from './keepalived/config.js';
import { formatDiagnostic } from './keepalived/parse.js';
import { checkVrrpConfig, type VrrpSection, vrrpFromSection } from './vrrp/config.js';
import { runVrrp } from './vrrp/instance.js';
import type { VrrpConfig } from './vrrp/types.js';

/** Read the VRRP configuration of a YAML file (the `vrrp` section, or the file itself if it is the section). */
export function loadVrrpYaml(path: string): VrrpConfig {
  const doc = parseYaml(readFileSync(path, 'utf8')) as Record<string, unknown> | null;
  const section = (doc && 'vrrp' in doc ? doc.vrrp : doc) as VrrpSection;
  const ajv = new Ajv({ allErrors: true, useDefaults: false });
  const validateSection = ajv.compile(vrrpSchema);
  if (!validateSection(section)) {
    const msgs = (validateSection.errors ?? []).map((e) => `${path}: vrrp${e.instancePath} ${e.message}`);
    throw new Error(msgs.join('\n'));
  }
  const cfg = vrrpFromSection(section);
  const problems = checkVrrpConfig(cfg);
  if (problems.length) throw new Error(problems.map((p) => `${path}: ${p}`).join('\n'));
  return cfg;
}

export function loadVrrpConfigFile(path: string, keepalived = path.endsWith('.conf')): VrrpConfig {
  if (!keepalived) return loadVrrpYaml(path);
  const r = loadKeepalivedConf(path);
  for (const w of r.warnings) log.warn(formatDiagnostic(w));
  if (r.errors.length) throw new Error(r.errors.map(formatDiagnostic).join('\n'));
  if (r.config.services.length)
    log.warn({ services: r.config.services.length }, 'virtual_server blocks are not run by the standalone VRRP runner');
  return r.config.vrrp;
}

export async function main(argv: string[]): Promise<number> {
  let file: string | undefined;
  let keepalived: boolean | undefined;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--config' || argv[i] === '-f') file = argv[++i];
    else if (argv[i] === '--keepalived') keepalived = true;
    else {
      process.stderr.write(`usage: vrrp-main --config FILE [--keepalived]\n`);
      return 2;
    }
  }
  if (!file) {
    process.stderr.write('usage: vrrp-main --config FILE [--keepalived]\n');
    return 2;
  }
  let cfg: VrrpConfig;
  try {
    cfg = loadVrrpConfigFile(file, keepalived);
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    return 1;
  }
  const runner = await runVrrp(cfg, {
    onGroup: (c) => process.stdout.write(`${JSON.stringify({ event: 'group', ...c })}\n`),
    onInstance: (i) =>
      i.on('state', (ev) => {
        process.stdout.write(`${JSON.stringify({ event: 'state', ...ev })}\n`);
      }),
  });
  process.stdout.write(`${JSON.stringify({ event: 'ready', instances: runner.instances.map((i) => i.cfg.name) })}\n`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  await runner.stop();
  process.stdout.write(`${JSON.stringify({ event: 'stopped' })}\n`);
  return 0;
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e) => {
      process.stderr.write(`${(e as Error).stack ?? e}\n`);
      process.exit(1);
    },
  );
}
