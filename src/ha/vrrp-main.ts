/**
 * Standalone VRRP: `node --import tsx src/ha/vrrp-main.ts --config FILE [--keepalived]`. FILE is a tierlb YAML file
 * with a `vrrp:` section, or a keepalived.conf (by `--keepalived` or a `.conf` name; its virtual servers are read
 * and ignored here). Runs until SIGINT/SIGTERM, then leaves cleanly (a master sends priority 0 and drops the VIPs).
 * State changes of instances and sync groups are printed on stdout as JSON lines.
 */
import { readFileSync } from 'node:fs';
import { log } from '../common/log.js';
import { ConfigError, loadConfigString } from '../config/index.js';
import './config-schema.js'; // registers the vrrp section with the loader
import { loadKeepalivedConf } from './keepalived/config.js';
import { formatDiagnostic, KeepalivedSyntaxError } from './keepalived/parse.js';
import { runVrrp } from './vrrp/instance.js';
import { vrrpFromLoaded } from './vrrp/load.js';
import type { VrrpConfig } from './vrrp/types.js';

/**
 * Read the VRRP configuration of a YAML file (its `vrrp` section, or the file itself if it is the section) through
 * the config loader. Throws ConfigError with every problem at its file:line.
 */
export function loadVrrpYaml(path: string): VrrpConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why = err.code === 'ENOENT' ? 'no such file' : err.code === 'EISDIR' ? 'is a directory' : err.message;
    throw new ConfigError([{ file: path, line: 0, column: 0, path: '', message: `cannot read: ${why}` }]);
  }
  const loaded = loadConfigString(text, path, { sections: ['vrrp'], bareSection: 'vrrp' });
  const cfg = vrrpFromLoaded(loaded);
  if (!cfg) throw new ConfigError([{ file: path, line: 0, column: 0, path: '', message: "no 'vrrp' section" }]);
  return cfg;
}

/** A tierlb YAML file or a keepalived.conf (by `keepalived`, default: a `.conf` name) → its VRRP configuration. */
export function loadVrrpConfigFile(path: string, keepalived = path.endsWith('.conf')): VrrpConfig {
  if (!keepalived) return loadVrrpYaml(path);
  const r = loadKeepalivedConf(path);
  for (const w of r.warnings) log.warn(formatDiagnostic(w));
  if (r.errors.length) throw new KeepalivedSyntaxError(r.errors);
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
