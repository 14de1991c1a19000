/**
 * `tierlb config check FILE`: load a config, print every problem as `file:line:col: reason` on stderr (exit 1), or a
 * one-line summary on stdout (exit 0). Usage errors exit 2.
 *
 * `tierlb config check --haproxy FILE [--yaml]`: read a haproxy.cfg as `tierlb listeners --haproxy` runs it; list
 * every keyword tierlb does not run (`file:line:col: warning: ...` where ignoring it is harmless, `file:line:col:
 * error: ...` where it refuses the file) on stderr; exit 1 when refused. `--yaml` prints the equivalent `listeners`
 * section on stdout (for moving to the YAML).
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
import { stringify } from 'yaml';
import { formatDiagnostic, loadHaproxyCfg } from '../listeners/haproxy-cfg/load.js';

interface Io {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
}

const USAGE = 'usage: tierlb config check FILE\n       tierlb config check --haproxy FILE [--yaml]';

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
  if (sub === 'check' && rest[0] === '--haproxy') return checkHaproxy(rest.slice(1), io);
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

/** `config check --haproxy FILE [--yaml]` */
function checkHaproxy(args: string[], io: Io): number {
  const yaml = args.includes('--yaml');
  const files = args.filter((a) => a !== '--yaml');
  if (files.length !== 1 || files[0].startsWith('-')) {
    io.stderr.write(`${USAGE}\n`);
    return 2;
  }
  const r = loadHaproxyCfg(files[0]);
  const all = [...r.errors.map((d) => ({ d, kind: 'error' })), ...r.warnings.map((d) => ({ d, kind: 'warning' }))].sort(
    (a, b) => a.d.line - b.d.line || a.d.col - b.d.col,
  );
  for (const { d, kind } of all) io.stderr.write(`${formatDiagnostic({ ...d, message: `${kind}: ${d.message}` })}\n`);
  if (r.errors.length > 0 || !r.config) {
    io.stderr.write(
      `${r.file}: refused: ${plural(r.errors.length, 'error')}, ${plural(r.warnings.length, 'warning')}\n`,
    );
    return 1;
  }
  if (yaml) io.stdout.write(stringify({ listeners: r.section }));
  const groups = r.config.groups.length;
  const summary = `${r.file}: ok — ${plural(r.config.listeners.length, 'listener')}, ${plural(groups, 'server group')}, ${r.config.workers} workers, ${plural(r.warnings.length, 'warning')}\n`;
  (yaml ? io.stderr : io.stdout).write(summary);
  return 0;
}
