/**
 * `tierlb lab up|down|status|exec|trace|demo`: the namespace lab of src/lab.
 *
 *   tierlb lab up     [--config FILE] [--prefix P] [--state-dir DIR]   build it, start it, wait for green, summary
 *   tierlb lab down   [--config FILE] [--prefix P] [--state-dir DIR]   remove it all (also after a crashed up)
 *   tierlb lab status [--config FILE] [--prefix P] [--state-dir DIR]   summary, processes and checks (exit 1 if red)
 *   tierlb lab exec HOST -- CMD …                                     run CMD in a host's namespace
 *   tierlb lab trace [--requests N] [--pcap DIR] [--port P]            capture every hop of N requests, per-hop table
 *   tierlb lab demo  [--requests N] [--keep]                           up → traffic → table → trace → down
 * FILE defaults to config/lab.yaml when it exists (else the built-in defaults, which are the same).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../config/problems.js';
import { labDown, labExec, labUp, loadLabConfig, planFor, runChecks, summary } from '../lab/lab.js';
import type { LabPlan } from '../lab/plan.js';
import { REPO_ROOT } from '../lab/proc.js';
import { type LabState, readState } from '../lab/state.js';
import { eachOption } from './args.js';

const USAGE = `usage:
  tierlb lab up     [--config FILE] [--prefix P] [--state-dir DIR]
  tierlb lab down   [--config FILE] [--prefix P] [--state-dir DIR]
  tierlb lab status [--config FILE] [--prefix P] [--state-dir DIR]
  tierlb lab exec HOST -- CMD [ARG…]
  tierlb lab trace  [--requests N] [--pcap DIR] [--port PORT]
  tierlb lab demo   [--requests N] [--config FILE] [--prefix P] [--state-dir DIR] [--keep]
`;

export interface LabOpts {
  sub: string;
  config?: string;
  prefix?: string;
  stateDir?: string;
  requests?: number;
  pcap?: string;
  port?: number;
  /** demo: leave the lab up at the end */
  keep?: boolean;
  rest: string[];
}

export function parseLabArgs(argv: string[]): LabOpts | string {
  const [sub = '', ...args] = argv;
  const dd = args.indexOf('--');
  const o: LabOpts = { sub, rest: [] };
  const err = eachOption(dd < 0 ? args : args.slice(0, dd), (a, val) => {
    if (a === '--config' || a === '-c') o.config = val();
    else if (a === '--prefix') o.prefix = val();
    else if (a === '--state-dir') o.stateDir = val();
    else if (a === '--requests' || a === '-n') {
      o.requests = Number(val());
      if (!Number.isInteger(o.requests) || o.requests < 1 || o.requests > 100000) return '--requests needs 1..100000';
    } else if (a === '--pcap') o.pcap = val();
    else if (a === '--port') {
      o.port = Number(val());
      if (!Number.isInteger(o.port) || o.port < 1 || o.port > 65535) return '--port needs 1..65535';
    } else if (a === '--keep') o.keep = true;
    else if (a === '-h' || a === '--help') return 'help';
    else if (!a.startsWith('-')) o.rest.push(a);
    else return `unknown option ${a}`;
    return undefined;
  });
  if (err !== undefined) return err;
  if (dd >= 0) o.rest.push(...args.slice(dd + 1));
  return o;
}

/** The default config file: config/lab.yaml of this checkout, when present. */
export function defaultConfigFile(o: { config?: string }): string | undefined {
  if (o.config) return o.config;
  const f = join(REPO_ROOT, 'config', 'lab.yaml');
  return existsSync(f) ? f : undefined;
}

/** The running lab's plan and state (its recorded config wins over the file). */
export async function currentLab(o: LabOpts): Promise<{ plan: LabPlan; state: LabState | null }> {
  const cfg = await loadLabConfig(defaultConfigFile(o));
  const first = planFor(cfg, o);
  const st = readState(first.dir);
  if (!st) return { plan: first, state: null };
  return { plan: planFor(st.config, { prefix: st.prefix }), state: st };
}

const out = (s: string) => process.stdout.write(s.endsWith('\n') ? s : `${s}\n`);
const err = (s: string) => process.stderr.write(s.endsWith('\n') ? s : `${s}\n`);

export async function run(argv: string[]): Promise<number> {
  const o = parseLabArgs(argv);
  if (o === 'help' || (typeof o !== 'string' && (o.sub === '' || o.sub === 'help'))) {
    process.stdout.write(USAGE);
    return o === 'help' ? 0 : 2;
  }
  if (typeof o === 'string') {
    err(`tierlb lab: ${o}\n${USAGE}`);
    return 2;
  }
  try {
    switch (o.sub) {
      case 'up': {
        try {
          await labUp({ configFile: defaultConfigFile(o), prefix: o.prefix, stateDir: o.stateDir, out, progress: err });
          return 0;
        } catch (e) {
          if (e instanceof ConfigError) throw e;
          err(`tierlb lab up: ${(e as Error).message}`);
          err("the lab is left as it is for inspection (tierlb lab status / logs); remove it with 'tierlb lab down'");
          return 1;
        }
      }
      case 'down': {
        const { plan } = await currentLab(o);
        await labDown({ prefix: plan.prefix, stateDir: plan.cfg.stateDir, out });
        return 0;
      }
      case 'status': {
        const { plan, state } = await currentLab(o);
        if (!state) {
          out(`no lab '${plan.prefix}' (no ${plan.dir}/state.json)`);
          return 1;
        }
        const checks = await runChecks(plan, state);
        out(`phase: ${state.phase}`);
        out(await summary(plan, state, checks));
        return checks.every((c) => c.ok) ? 0 : 1;
      }
      case 'exec': {
        const [hostName, ...cmd] = o.rest;
        if (!hostName || !cmd.length) {
          err(`tierlb lab exec: HOST and a command are needed\n${USAGE}`);
          return 2;
        }
        const { plan } = await currentLab(o);
        return labExec(plan, hostName, cmd);
      }
      case 'trace': {
        const { runTraceCommand } = await import('../lab/trace-run.js');
        const { plan, state } = await currentLab(o);
        if (!state) {
          err(`tierlb lab trace: no lab '${plan.prefix}' is up (tierlb lab up)`);
          return 1;
        }
        return runTraceCommand(plan, { requests: o.requests ?? 1, pcapDir: o.pcap, port: o.port, out });
      }
      case 'demo': {
        if (process.getuid && process.getuid() !== 0) {
          err('tierlb demo: needs root (network namespaces, iptables, tcpdump); run it as root');
          return 1;
        }
        const { runDemo } = await import('../lab/demo.js');
        return runDemo({
          configFile: defaultConfigFile(o),
          prefix: o.prefix,
          stateDir: o.stateDir,
          requests: o.requests,
          keep: o.keep,
        });
      }
      default:
        err(`tierlb lab: unknown subcommand '${o.sub}'\n${USAGE}`);
        return 2;
    }
  } catch (e) {
    err(`tierlb lab ${o.sub}: ${(e as Error).message}`);
    return 1;
  }
}
