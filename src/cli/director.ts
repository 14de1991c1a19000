/**
 * `tierlb director [--config FILE | --keepalived FILE] [--metrics ADDR] [--socket PATH] [--queue N] [--max-queue-len N]`:
 * the L4 director daemon. Runs the data path (NFQUEUE worker with the engine inside), the HA parts (VRRP instances,
 * real-server checks, the sync daemon, /metrics: src/ha/director-ha.ts) and serves the admin unix socket (mode
 * 0600), one JSON line per request:
 *   {"argv":[...],"stdin":"..."}   → tierlb adm (handleAdmRequest in the worker) → {"code","stdout","stderr"}
 *   {"op":"reload"}                → re-read the config and apply the difference: services and real servers, VRRP
 *                                    instances (only changed ones restart), checkers of changed services, sync
 *                                    settings, metrics bind; a bad config is refused → {"code","stdout","stderr"}
 *   {"op":"stats"}                 → data-path counters
 *   {"op":"rules"}                 → the kernel rules tierlb holds right now
 * SIGHUP reloads; SIGINT/SIGTERM stop cleanly (chain, ip rules and routing tables removed).
 *
 * `tierlb director reload|stats|rules [--socket PATH]` talk to a running daemon.
 */
import { chmodSync, mkdirSync, readdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { pathToFileURL } from 'node:url';
import { log } from '../common/log.js';
import { DEFAULT_SYSCTL, DEFAULT_TIMEOUTS, type DirectorPlan, diffPlans, isEmptyDiff } from '../director/config.js';
import { FASTPATH_MODES, type FastpathMode } from '../director/config-schema.js';
import { Datapath } from '../director/datapath.js';
import { DirectorHa, type HaPlan, type HaReloadSummary, haPlanFromKeepalived, haPlanFromYaml } from '../director/ha.js';
import { request } from './adm.js';
import { eachOption } from './args.js';

export { request };

export const DEFAULT_SOCKET = '/run/tierlb/director.sock';

interface Opts {
  config?: string;
  /** a keepalived.conf instead of (or as) the config */
  keepalived?: string;
  /** --metrics ADDR: Prometheus /metrics */
  metrics?: string;
  socket: string;
  queue: number;
  maxLen?: number;
  sysctl: boolean;
  /** --fastpath auto|on|off (overrides the config's `fastpath:`; default auto) */
  fastpath?: FastpathMode;
}

function usage(): string {
  return [
    'usage: tierlb director [--config FILE | --keepalived FILE] [--metrics ADDR] [--socket PATH] [--queue N]',
    '                       [--max-queue-len N] [--no-sysctl] [--fastpath auto|on|off]',
    '       tierlb director reload|stats|rules [--socket PATH]',
  ].join('\n');
}

function parseArgs(argv: string[]): Opts | string {
  const o: Opts = { socket: DEFAULT_SOCKET, queue: 0, sysctl: true };
  const err = eachOption(argv, (a, val) => {
    if (a === '--config' || a === '-c') o.config = val();
    else if (a === '--keepalived' || a === '-k') o.keepalived = val();
    else if (a === '--metrics') o.metrics = val();
    else if (a === '--socket' || a === '-s') o.socket = val();
    else if (a === '--queue' || a === '-q') {
      o.queue = Number(val());
      if (!Number.isInteger(o.queue) || o.queue < 0 || o.queue > 65535) return `bad queue number`;
    } else if (a === '--max-queue-len') o.maxLen = Number(val());
    else if (a === '--no-sysctl') o.sysctl = false;
    else if (a === '--fastpath') {
      const m = val();
      if (!(FASTPATH_MODES as readonly string[]).includes(m)) return `bad --fastpath ${m} (auto, on or off)`;
      o.fastpath = m as FastpathMode;
    } else return `unknown option ${a}`;
    return undefined;
  });
  return err ?? o;
}

const EMPTY_PLAN: DirectorPlan = { services: [], timeouts: { ...DEFAULT_TIMEOUTS }, sysctl: { ...DEFAULT_SYSCTL } };

/** The director forwards: ip_forward on, ICMP redirects off, accept_local on (all, default and every interface). */
function directorSysctls(): void {
  const w = (p: string, v: string) => {
    try {
      writeFileSync(p, v);
    } catch (e) {
      log.warn({ path: p, err: (e as Error).message }, 'sysctl not set');
    }
  };
  w('/proc/sys/net/ipv4/ip_forward', '1');
  w('/proc/sys/net/ipv6/conf/all/forwarding', '1');
  for (const ifc of readdirSync('/proc/sys/net/ipv4/conf')) {
    w(`/proc/sys/net/ipv4/conf/${ifc}/send_redirects`, '0');
    // NAT replies are rewritten to the VIP (a local address) before the routing decision: without accept_local the
    // kernel drops them as martians
    w(`/proc/sys/net/ipv4/conf/${ifc}/accept_local`, '1');
  }
}

async function client(cmd: string, argv: string[]): Promise<number> {
  const o = parseArgs(argv);
  if (typeof o === 'string') {
    process.stderr.write(`tierlb director: ${o}\n${usage()}\n`);
    return 2;
  }
  try {
    const line = await request(o.socket, { op: cmd });
    const r = JSON.parse(line) as { code?: number; stdout?: string; stderr?: string };
    if (r.stdout !== undefined || r.stderr !== undefined) {
      process.stdout.write(r.stdout ?? '');
      process.stderr.write(r.stderr ?? '');
      return r.code ?? 0;
    }
    process.stdout.write(`${line}\n`);
    return 0;
  } catch (e) {
    process.stderr.write(`tierlb director: cannot reach ${o.socket}: ${(e as Error).message}\n`);
    return 1;
  }
}

async function socketInUse(path: string): Promise<boolean> {
  try {
    await request(path, { op: 'ping' }, 1000);
    return true;
  } catch {
    return false;
  }
}

export async function run(argv: string[]): Promise<number> {
  if (argv[0] === '-h' || argv[0] === '--help') {
    process.stdout.write(`${usage()}\n`);
    return 0;
  }
  if (argv[0] && ['reload', 'stats', 'rules'].includes(argv[0])) return client(argv[0], argv.slice(1));
  const o = parseArgs(argv);
  if (typeof o === 'string') {
    process.stderr.write(`tierlb director: ${o}\n${usage()}\n`);
    return 2;
  }

  // the config first: a bad one never starts anything
  if (o.config && o.keepalived) {
    process.stderr.write('tierlb director: --config and --keepalived exclude each other\n');
    return 2;
  }
  const loadPlan = async (): Promise<HaPlan | null> => {
    if (o.keepalived) return haPlanFromKeepalived(o.keepalived, log);
    if (o.config) return haPlanFromYaml(o.config);
    return null;
  };
  let haPlan: HaPlan = { director: EMPTY_PLAN };
  try {
    haPlan = (await loadPlan()) ?? haPlan;
  } catch (e) {
    process.stderr.write(`tierlb director: ${(e as Error).message}\n`);
    return 1;
  }
  if (o.metrics) haPlan.metrics = o.metrics;
  let plan = haPlan.director;
  if (await socketInUse(o.socket)) {
    process.stderr.write(`tierlb director: a director already answers on ${o.socket}\n`);
    return 1;
  }

  if (o.sysctl) directorSysctls();
  const dp = new Datapath({ queue: o.queue, maxLen: o.maxLen, log, fastpath: o.fastpath ?? plan.fastpath ?? 'auto' });
  let stopping: Promise<number> | null = null;
  let server: Server | null = null;
  const ha = new DirectorHa({ dp, plan: haPlan, log });
  const stop = (code: number): Promise<number> => {
    if (!stopping) {
      stopping = (async () => {
        log.info('director stopping');
        server?.close();
        try {
          unlinkSync(o.socket);
        } catch {}
        await ha.stop();
        await dp.stop();
        log.info('director stopped');
        return code;
      })();
    }
    return stopping;
  };

  let fatal: ((code: number) => void) | null = null;
  const done = new Promise<number>((resolve) => {
    fatal = resolve;
  });
  dp.onFatal = (msg) => {
    log.error({ err: msg }, 'data path failed');
    void stop(1).then((c) => fatal?.(c));
  };
  try {
    await dp.start();
    if (!isEmptyDiff(diffPlans(EMPTY_PLAN, plan))) await dp.applyDiff(diffPlans(EMPTY_PLAN, plan));
    await ha.start();
  } catch (e) {
    log.error({ err: (e as Error).message }, 'director failed to start');
    await stop(1);
    return 1;
  }

  const reload = async (): Promise<{ code: number; stdout: string; stderr: string }> => {
    if (!o.config && !o.keepalived) return { code: 1, stdout: '', stderr: 'no --config to reload\n' };
    let nextHa: HaPlan;
    try {
      nextHa = (await loadPlan()) as HaPlan;
      if (o.metrics) nextHa.metrics = o.metrics;
      // VRRP instances that would (re)start must be able to run: checked before anything changes
      await ha.precheck(nextHa);
    } catch (e) {
      log.warn({ err: (e as Error).message }, 'reload refused: bad config, the running one stays');
      return { code: 1, stdout: '', stderr: `reload refused, the running config stays:\n${(e as Error).message}\n` };
    }
    const next = nextHa.director;
    const diff = diffPlans(plan, next);
    let summary: HaReloadSummary;
    try {
      if (!isEmptyDiff(diff)) await dp.applyDiff(diff);
      plan = next;
      summary = await ha.reload(nextHa, diff);
    } catch (e) {
      log.error({ err: (e as Error).message }, 'reload failed part way');
      return { code: 1, stdout: '', stderr: `reload failed: ${(e as Error).message}\n` };
    }
    const n = diff.services.add.length + diff.services.edit.length + diff.services.del.length;
    log.info(
      {
        services: n,
        dests: diff.dests.add.length + diff.dests.edit.length + diff.dests.del.length,
        vrrp: summary.vrrp,
        checks: summary.checks,
        sync: summary.sync,
        metrics: summary.metrics,
      },
      'reloaded',
    );
    return { code: 0, stdout: '', stderr: '' };
  };

  const answer = async (line: string): Promise<string> => {
    let req: { op?: string; argv?: unknown };
    try {
      req = JSON.parse(line);
    } catch {
      return JSON.stringify({ code: 2, stdout: '', stderr: 'bad request\n' });
    }
    switch (req.op) {
      case 'ping':
        return JSON.stringify({ ok: true, engine: dp.engineName });
      case 'reload':
        return JSON.stringify(await reload());
      case 'stats':
        return JSON.stringify({ engine: dp.engineName, ...(await dp.stats()) });
      case 'rules':
        return JSON.stringify(await dp.rules.list());
      case undefined:
        return dp.adm(line);
      default:
        return JSON.stringify({ code: 2, stdout: '', stderr: `unknown op ${req.op}\n` });
    }
  };

  mkdirSync(dirname(o.socket), { recursive: true, mode: 0o700 });
  try {
    unlinkSync(o.socket);
  } catch {}
  server = createServer((s: Socket) => {
    let buf = '';
    let chain = Promise.resolve();
    s.on('data', (d) => {
      buf += d.toString();
      let nl = buf.indexOf('\n');
      while (nl >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.trim())
          chain = chain.then(async () => {
            const r = await answer(line);
            if (!s.destroyed) s.write(`${r}\n`);
          });
        nl = buf.indexOf('\n');
      }
    });
    s.on('error', () => {});
  });
  const oldMask = process.umask(0o177);
  await new Promise<void>((resolve) => server?.listen(o.socket, resolve));
  process.umask(oldMask);
  chmodSync(o.socket, 0o600);
  log.info({ socket: o.socket, queue: o.queue, config: o.config ?? null }, 'director ready');

  const onSig = (sig: NodeJS.Signals) => {
    log.info({ signal: sig }, 'signal');
    void stop(0).then((c) => fatal?.(c));
  };
  process.on('SIGINT', onSig);
  process.on('SIGTERM', onSig);
  process.on('SIGHUP', () => void reload());
  return done;
}

// `node --import tsx src/cli/director.ts ...` runs the daemon directly (tests, development)
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  run(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e) => {
      process.stderr.write(`tierlb director: ${(e as Error).stack ?? e}\n`);
      process.exit(1);
    },
  );
}
