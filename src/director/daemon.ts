/**
 * The L4 director daemon: the data path (NFQUEUE worker with the engine inside), the HA parts (VRRP instances,
 * real-server checks, the sync daemon, /metrics: ./ha.ts) and the admin unix socket (./admin-socket.ts), one JSON
 * line per request:
 *   {"argv":[...],"stdin":"..."}   → tierlb adm (handleAdmRequest in the worker) → {"code","stdout","stderr"}
 *   {"op":"reload"}                → re-read the config and apply the difference: services and real servers, VRRP
 *                                    instances (only changed ones restart), checkers of changed services, sync
 *                                    settings, metrics bind; a bad config is refused → {"code","stdout","stderr"}
 *   {"op":"stats"}                 → data-path counters
 *   {"op":"rules"}                 → the kernel rules tierlb holds right now
 *   {"op":"ping"}                  → {"ok":true,"engine"}
 *   {"op":"bgp"}                   → the `bgp` section's state: BIRD, its sessions, each VIP's announce decision
 * With a `bgp` section, BIRD runs beside the daemon and announces the VIPs (./bgp.ts); a stop withdraws them
 * before anything else stops.
 * SIGHUP reloads; SIGINT/SIGTERM stop cleanly (chain, ip rules and routing tables removed).
 */
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { renderNodeFile } from '../cluster/load.js';
import { log } from '../common/log.js';
import { type AdminSocket, serveAdminSocket, socketInUse } from './admin-socket.js';
import { bgpPlanFromYaml, DirectorBgp } from './bgp.js';
import { DEFAULT_SYSCTL, DEFAULT_TIMEOUTS, type DirectorPlan, diffPlans, isEmptyDiff } from './config.js';
import type { FastpathMode } from './config-schema.js';
import { Datapath } from './datapath.js';
import { DirectorError } from './errors.js';
import { DirectorHa, type HaPlan, type HaReloadSummary, haPlanFromKeepalived, haPlanFromYaml } from './ha.js';

export interface DirectorOptions {
  /** a tierlb YAML config */
  config?: string;
  /** --cluster FILE --node NAME: the node's config rendered from a cluster file (into the run dir) */
  cluster?: string;
  node?: string;
  /** a keepalived.conf instead of the YAML config */
  keepalived?: string;
  /** Prometheus /metrics on this address (over the config's) */
  metrics?: string;
  /** the admin socket */
  socket: string;
  /** the NFQUEUE number */
  queue: number;
  /** the NFQUEUE's maximum length */
  maxLen?: number;
  /** --fastpath auto|on|off (overrides the config's `fastpath:`; default auto) */
  fastpath?: FastpathMode;
  /** set the forwarding sysctls (directorSysctls) */
  sysctl: boolean;
}

/** What an admin request that changes things answers (the shape of an adm answer). */
interface OpResult {
  code: number;
  stdout: string;
  stderr: string;
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

/**
 * Run the director until SIGINT/SIGTERM (exit code 0) or a fatal data-path error (1); resolves with the exit code.
 * Throws before anything is started when the config is bad or another director answers on the socket; a failure
 * while starting is logged, what was started is stopped again, and it resolves with 1.
 */
export async function runDirector(o: DirectorOptions): Promise<number> {
  // the config first: a bad one never starts anything
  const cluster = o.cluster;
  if (cluster) o.config = join(dirname(o.socket), `${o.node}.yaml`);
  const loadPlan = async (): Promise<HaPlan | null> => {
    // the node's config, rendered again at every load (start, reload)
    if (cluster && o.config) {
      mkdirSync(dirname(o.config), { recursive: true, mode: 0o700 });
      await renderNodeFile(cluster, o.node as string, o.config, 'director');
    }
    if (o.keepalived) return haPlanFromKeepalived(o.keepalived, log);
    if (o.config) return haPlanFromYaml(o.config);
    return null;
  };
  const haPlan: HaPlan = (await loadPlan()) ?? { director: EMPTY_PLAN };
  if (o.metrics) haPlan.metrics = o.metrics;
  let plan = haPlan.director;
  // bgp section: its plan, and the director's defaults in bgp mode (sloppy_tcp)
  const bgpPlan = o.config ? await bgpPlanFromYaml(o.config, haPlan.director) : undefined;
  if (await socketInUse(o.socket))
    throw new DirectorError(
      'EDIRECTOR_RUNNING',
      `a director already answers on ${o.socket}: stop it first, or give this one another --socket`,
    );

  if (o.sysctl) directorSysctls();
  const dp = new Datapath({ queue: o.queue, maxLen: o.maxLen, log, fastpath: o.fastpath ?? plan.fastpath ?? 'auto' });
  let stopping: Promise<number> | null = null;
  let admin: AdminSocket | null = null;
  const ha = new DirectorHa({ dp, plan: haPlan, log });
  // bgp (./bgp.ts): announces the VIPs while the data path is up and the services have quorum
  let bgp: DirectorBgp | null = null;
  let dpUp = false;
  const stop = (code: number): Promise<number> => {
    if (!stopping) {
      stopping = (async () => {
        log.info('director stopping');
        await bgp?.stop().catch((e: Error) => log.error({ err: e.message }, 'bgp stop failed'));
        admin?.close();
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
    dpUp = false;
    log.error({ err: msg }, 'data path failed');
    void stop(1).then((c) => fatal?.(c));
  };
  const reload = async (): Promise<OpResult> => {
    if (!o.config && !o.keepalived) return { code: 1, stdout: '', stderr: 'no --config to reload\n' };
    let nextHa: HaPlan;
    let nextBgp: Awaited<ReturnType<typeof bgpPlanFromYaml>>;
    try {
      nextHa = (await loadPlan()) as HaPlan;
      if (o.metrics) nextHa.metrics = o.metrics;
      // VRRP instances that would (re)start must be able to run: checked before anything changes
      await ha.precheck(nextHa);
      nextBgp = o.config ? await bgpPlanFromYaml(o.config, nextHa.director) : undefined;
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
      if (bgp && nextBgp) await bgp.reload(nextBgp);
      else if (!!bgp !== !!nextBgp) log.warn('a bgp section added or removed takes effect at the next start');
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
      case 'bgp':
        return JSON.stringify(bgp ? await bgp.status() : { enabled: false });
      case undefined:
        return dp.adm(line);
      default:
        return JSON.stringify({ code: 2, stdout: '', stderr: `unknown op ${req.op}\n` });
    }
  };

  try {
    await dp.start();
    if (!isEmptyDiff(diffPlans(EMPTY_PLAN, plan))) await dp.applyDiff(diffPlans(EMPTY_PLAN, plan));
    await ha.start();
    dpUp = true;
    if (bgpPlan) {
      bgp = new DirectorBgp({
        plan: bgpPlan,
        // one per director, also when several share a run dir (the lab)
        birdDir: `${o.socket.replace(/\.sock$/, '')}.bird`,
        log,
        services: () => plan,
        checkers: () => ha.checkers,
        datapathUp: () => dpUp,
      });
      await bgp.start();
    }
    admin = await serveAdminSocket(o.socket, answer);
  } catch (e) {
    log.error({ err: (e as Error).message }, 'director failed to start');
    await stop(1);
    return 1;
  }

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
