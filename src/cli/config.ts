/**
 * `tierlb config check FILE`: load a config, print every problem as `file:line:col: reason` on stderr (exit 1), or a
 * one-line summary on stdout (exit 0). Usage errors exit 2.
 */
import { checkConfigFile, formatProblem, SECTIONS, type TierlbConfig } from '../config/index.js';
// every section's owner registers its schema and checks: `config check` checks them all
import '../director/config.js';
import '../bgp/config-schema.js';
import '../cluster/config-schema.js';
import '../ha/config-schema.js';
import '../lab/config-schema.js';
import '../listeners/config-schema.js';
import '../overlay/config-schema.js';

interface Io {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
}

const USAGE = 'usage: tierlb config check FILE';

/** How many entries the array under `key` of a section has (0 when the section or the array is absent). */
function count(section: unknown, key: string): number {
  const v = (section as Record<string, unknown> | undefined)?.[key];
  return Array.isArray(v) ? v.length : 0;
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** `2 services, 5 real servers, 0 listeners, 0 vrrp instances, overlay: no, lab: no` */
export function summarize(cfg: TierlbConfig): string {
  const services = cfg.director?.services ?? [];
  const rs = services.reduce((n, s) => n + (s.real_servers?.length ?? 0), 0);
  return [
    plural(services.length, 'service'),
    plural(rs, 'real server'),
    plural(count(cfg.listeners, 'listen'), 'listener'),
    plural(count(cfg.vrrp, 'instances'), 'vrrp instance'),
    `overlay: ${cfg.overlay === undefined ? 'no' : 'yes'}`,
    `lab: ${cfg.lab === undefined ? 'no' : 'yes'}`,
  ].join(', ');
}

export async function run(argv: string[], io: Io = process): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === '-h' || sub === '--help' || sub === 'help') {
    io.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (sub !== 'check' || rest.length !== 1 || rest[0].startsWith('-')) {
    io.stderr.write(`${USAGE}\n`);
    return 2;
  }
  const r = await checkConfigFile(rest[0], { sections: SECTIONS });
  if (!r.config) {
    for (const p of r.problems) io.stderr.write(`${formatProblem(p)}\n`);
    io.stderr.write(`${r.file}: ${plural(r.problems.length, 'problem')}\n`);
    return 1;
  }
  io.stdout.write(`${r.file}: ok — ${summarize(r.config)}\n`);
  return 0;
}
