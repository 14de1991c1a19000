/**
 * HA inside `tierlb director`: the config (YAML `director` + `vrrp` sections, or a keepalived.conf) → one HaPlan, and
 * the daemon's HA parts on its main thread:
 * - VRRP instances (runVrrp: VIPs, gratuitous ARP, notify scripts);
 * - the CheckManager. The service table lives in the data-path worker, so the checker works on a RemoteTable: a
 *   mirror of the checked services' real servers whose changes are sent to the worker as ipvsadm commands (-a/-e/-d,
 *   one at a time, in order). The checked DR real servers are pinned in the worker (their mark route stays while they
 *   are out of the table) and probes carry that mark, so a DR check goes to the VIP on the real server;
 * - the sync daemon from the config (`sync: {state: master|backup|vrrp}`; vrrp = master while the instance is
 *   MASTER, backup otherwise, as keepalived's lvs_sync_daemon does);
 * - Prometheus /metrics (src/ha/metrics.ts).
 * An admin changing a checked service by hand makes the mirror stale: the checker's next command may then fail
 * (logged) — as with keepalived, the checker owns its real servers.
 */

import { hostPort } from '../common/addr.js';
import { type Logger, log as rootLog } from '../common/log.js';
import { loadConfigFile } from '../config/load.js';
import '../ha/config-schema.js'; // registers the vrrp section with the loader
import { type CheckedService, CheckManager, type CheckTable, CheckTableError } from '../ha/checks/manager.js';
import type { VirtualServerHealth } from '../ha/checks-types.js';
import { loadKeepalivedConf } from '../ha/keepalived/config.js';
import { formatDiagnostic, KeepalivedSyntaxError } from '../ha/keepalived/parse.js';
import type { SyncDaemonStart } from '../ha/sync/daemon.js';
import {
  instanceSource,
  runVrrp,
  type VrrpInstance,
  type VrrpReloadResult,
  type VrrpRunner,
} from '../ha/vrrp/instance.js';
import { vrrpFromLoaded } from '../ha/vrrp/load.js';
import type { VrrpConfig, VrrpStateName } from '../ha/vrrp/types.js';
import { destKey } from '../l4/dest.js';
import { type ServiceId, serviceKey } from '../l4/service.js';
import type { DestSpec } from '../l4/services.js';
import {
  DEFAULT_SYSCTL,
  DEFAULT_TIMEOUTS,
  type DirectorPlan,
  directorFromConfig,
  type PlanDiff,
  type PlannedService,
} from './config.js';
import type { Datapath } from './datapath.js';
import { type MetricsServer, startMetrics } from './metrics.js';

export interface SyncPlan extends Pick<SyncDaemonStart, 'maxLen' | 'group' | 'port' | 'ttl'> {
  state: 'master' | 'backup' | 'vrrp';
  syncid: number;
  interface: string;
  /** the VRRP instance a `vrrp` state follows (default: the first) */
  instance?: string;
}

export interface HaPlan {
  director: DirectorPlan;
  vrrp?: VrrpConfig;
  sync?: SyncPlan;
  metrics?: string;
  /** the status page's admin mode (director.metrics.admin) */
  metricsAdmin?: { user: string; password: string };
}

/**
 * A tierlb YAML file (its `director` and `vrrp` sections) → HaPlan. Throws ConfigError listing every problem, each
 * at its file:line.
 */
export async function haPlanFromYaml(path: string): Promise<HaPlan> {
  const loaded = await loadConfigFile(path, { sections: ['director', 'vrrp'] });
  const cfg = loaded.config;
  const plan: HaPlan = { director: directorFromConfig(cfg) };
  const vrrp = vrrpFromLoaded(loaded);
  if (vrrp) plan.vrrp = vrrp;
  const s = cfg.director?.sync;
  if (s) {
    plan.sync = { state: s.state, syncid: s.syncid, interface: s.interface ?? 'eth0', instance: s.instance };
    // only the options the file gives: the daemon's defaults apply to the others
    const opts = { maxLen: s.maxlen, group: s.group, port: s.port, ttl: s.ttl };
    for (const [k, v] of Object.entries(opts)) if (v !== undefined) Object.assign(plan.sync, { [k]: v });
  }
  if (cfg.director?.metrics) plan.metrics = cfg.director.metrics.bind;
  if (cfg.director?.metrics?.admin) plan.metricsAdmin = cfg.director.metrics.admin;
  return plan;
}

/**
 * A keepalived.conf → HaPlan. Unsupported keywords are logged as warnings with file:line; errors throw.
 */
export function haPlanFromKeepalived(path: string, log: Logger = rootLog): HaPlan {
  const r = loadKeepalivedConf(path);
  for (const w of r.warnings) log.warn(formatDiagnostic(w));
  if (r.errors.length) throw new KeepalivedSyntaxError(r.errors);
  const services: PlannedService[] = r.config.services.map((s) => ({ spec: s.spec, dests: s.dests, health: s.health }));
  const plan: HaPlan = {
    director: { services, marks: [], timeouts: { ...DEFAULT_TIMEOUTS }, sysctl: { ...DEFAULT_SYSCTL } },
    vrrp: r.config.vrrp,
  };
  if (r.config.lvsSync) {
    // maxLen, group, port and ttl only where the file gives them, as from the YAML
    const { interface: ifc, instance, syncid, ...opts } = r.config.lvsSync;
    plan.sync = { state: 'vrrp', syncid, interface: ifc, instance, ...opts };
  }
  return plan;
}

/** ipvsadm's service option for an id: -t/-u/--sctp-service/-f. */
export function serviceArgs(id: ServiceId): string[] {
  if (id.kind === 'fwm') return ['-f', String(id.fwmark), ...(id.family === 6 ? ['-6'] : [])];
  const flag = id.kind === 'tcp' ? '-t' : id.kind === 'udp' ? '-u' : '--sctp-service';
  return [flag, hostPort(id.addr ?? '', id.port ?? 0, id.family)];
}

function destArgs(id: ServiceId, d: DestSpec): string[] {
  const fam = d.addr.includes(':') ? 6 : 4;
  const fwd = d.fwd === 'masq' ? '-m' : d.fwd === 'tunnel' ? '-i' : '-g';
  return [
    ...serviceArgs(id),
    '-r',
    hostPort(d.addr, d.port, fam),
    fwd,
    '-w',
    String(d.weight),
    '-x',
    String(d.uThreshold),
    '-y',
    String(d.lThreshold),
  ];
}

type MirrorDest = DestSpec & { key: string };

const mirrorDest = (d: DestSpec): MirrorDest => ({ ...d, key: destKey(d.addr, d.port) });
const mirrorOf = (dests: DestSpec[]) => new Map(dests.map((d) => [destKey(d.addr, d.port), mirrorDest(d)]));

/** The CheckManager's view of the worker's table: a mirror, changed by ipvsadm commands sent to the worker. */
export class RemoteTable implements CheckTable {
  private readonly mirror = new Map<string, Map<string, MirrorDest>>();
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly adm: (argv: string[]) => Promise<{ code: number; stderr: string }>,
    services: { spec: { id: ServiceId }; dests: DestSpec[] }[],
    private readonly log: Logger = rootLog,
  ) {
    for (const s of services) this.mirror.set(serviceKey(s.spec.id), mirrorOf(s.dests));
  }

  get(id: ServiceId): { dests: MirrorDest[] } | undefined {
    const m = this.mirror.get(serviceKey(id));
    return m ? { dests: [...m.values()] } : undefined;
  }

  private send(argv: string[]): void {
    this.chain = this.chain.then(async () => {
      try {
        const r = await this.adm(argv);
        if (r.code !== 0) this.log.warn({ argv, err: r.stderr.trim() }, 'checker table change refused');
      } catch (e) {
        this.log.warn({ argv, err: (e as Error).message }, 'checker table change failed');
      }
    });
  }

  /**
   * A reload changed the configured services: the mirror follows what the director sent to the worker — new checked
   * services as configured, removed ones gone, the real servers the diff added, edited or deleted likewise; a real
   * server the checker holds out of the table stays out.
   */
  reconfigure(services: { spec: { id: ServiceId }; dests: DestSpec[] }[], diff: PlanDiff): void {
    const keys = new Set(services.map((s) => serviceKey(s.spec.id)));
    for (const k of [...this.mirror.keys()]) if (!keys.has(k)) this.mirror.delete(k);
    const added = new Set(diff.services.add.map((s) => serviceKey(s.spec.id)));
    for (const s of services) {
      const k = serviceKey(s.spec.id);
      if (this.mirror.has(k) && !added.has(k)) continue;
      this.mirror.set(k, mirrorOf(s.dests));
    }
    for (const c of diff.dests.add) {
      const m = added.has(serviceKey(c.service)) ? undefined : this.mirror.get(serviceKey(c.service));
      m?.set(destKey(c.dest.addr, c.dest.port), mirrorDest(c.dest));
    }
    for (const c of diff.dests.edit) {
      const m = this.mirror.get(serviceKey(c.service));
      const d = mirrorDest(c.dest);
      if (m?.has(d.key)) m.set(d.key, d);
    }
    for (const c of diff.dests.del) this.mirror.get(serviceKey(c.service))?.delete(destKey(c.addr, c.port));
  }

  /** resolves when every command sent so far has been answered */
  settled(): Promise<void> {
    return this.chain;
  }

  private service(id: ServiceId): Map<string, MirrorDest> {
    const m = this.mirror.get(serviceKey(id));
    if (!m) throw new CheckTableError(id);
    return m;
  }

  addDest(id: ServiceId, d: DestSpec): void {
    this.service(id).set(destKey(d.addr, d.port), mirrorDest(d));
    this.send(['-a', ...destArgs(id, d)]);
  }

  editDest(id: ServiceId, d: DestSpec): void {
    this.service(id).set(destKey(d.addr, d.port), mirrorDest(d));
    this.send(['-e', ...destArgs(id, d)]);
  }

  delDest(id: ServiceId, addr: string, port: number): void {
    this.service(id).delete(destKey(addr, port));
    this.send(['-d', ...serviceArgs(id), '-r', hostPort(addr, port, addr.includes(':') ? 6 : 4)]);
  }
}

export interface DirectorHaOptions {
  dp: Datapath;
  plan: HaPlan;
  log?: Logger;
  /** the checker's delay before the first checks (default 1 s, keepalived's) */
  bootstrapDelayMs?: number;
}

/** What a reload changed in the HA parts, for the log and the answer. */
export interface HaReloadSummary {
  vrrp?: VrrpReloadResult;
  /** services whose checker was rebuilt / stopped */
  checks: { rebuilt: string[]; stopped: string[] };
  sync: boolean;
  metrics: boolean;
}

const checkedOf = (plan: HaPlan) =>
  plan.director.services.filter((s): s is PlannedService & { health: VirtualServerHealth } => s.health !== undefined);

/** A checked service's identity for a reload: its checker is rebuilt when any of this changed. */
const checkSig = (s: CheckedService) => JSON.stringify({ spec: s.spec, dests: s.dests, health: s.health });

/** The running HA parts of one director. */
export class DirectorHa {
  private vrrp: VrrpRunner | null = null;
  /** one checker per health-checked service (by serviceKey), so that a reload rebuilds only the changed ones */
  readonly checkers = new Map<string, { sig: string; manager: CheckManager }>();
  table: RemoteTable | null = null;
  private marks: Record<string, number> = {};
  private metrics: MetricsServer | null = null;
  readonly vrrpStates = new Map<string, { state: VrrpStateName; vrid: number; priority: number }>();
  private syncState: 'master' | 'backup' | null = null;
  private syncChain: Promise<void> = Promise.resolve();
  private readonly log: Logger;
  private plan: HaPlan;

  constructor(private readonly o: DirectorHaOptions) {
    this.log = o.log ?? rootLog;
    this.plan = o.plan;
  }

  /** an ipvsadm command line through the worker's admin path (what `tierlb adm` sends; the status page's too) */
  adm = async (argv: string[]): Promise<{ code: number; stderr: string }> =>
    JSON.parse(await this.o.dp.adm(JSON.stringify({ argv }))) as { code: number; stderr: string };

  /** the status page's admin credentials (undefined: read-only) */
  get pageAdmin(): { user: string; password: string } | undefined {
    return this.plan.metricsAdmin;
  }

  /** the VRRP instance the sync daemon follows with `state: vrrp` (default: the first) */
  private get follow(): string | undefined {
    const { sync, vrrp } = this.plan;
    return sync?.state === 'vrrp' ? (sync.instance ?? vrrp?.instances[0]?.name) : undefined;
  }

  async start(): Promise<void> {
    const { plan } = this;
    // checks: against the worker's table through a mirror
    await this.startChecks(checkedOf(plan), checkedOf(plan));
    // the sync daemon fixed by the config
    const sync = plan.sync;
    if (sync && sync.state !== 'vrrp') await this.setSync(sync.state);
    // VRRP
    if (plan.vrrp?.instances.length) {
      this.vrrp = await runVrrp(plan.vrrp, {
        logger: this.log,
        onInstance: (i) => this.watch(i),
      });
      if (this.follow && !this.syncState) await this.setSync('backup');
    } else if (sync?.state === 'vrrp') await this.setSync('master');
    if (plan.metrics) this.metrics = await startMetrics(plan.metrics, this);
  }

  private watch(i: VrrpInstance): void {
    this.vrrpStates.set(i.cfg.name, { state: 'INIT', vrid: i.cfg.virtualRouterId, priority: i.cfg.priority });
    i.on('state', (ev) => {
      this.vrrpStates.set(i.cfg.name, { state: ev.to, vrid: i.cfg.virtualRouterId, priority: ev.priority });
      if (i.cfg.name === this.follow && ev.to !== 'INIT') void this.setSync(ev.to === 'MASTER' ? 'master' : 'backup');
    });
    i.on('error', (e) => this.log.error({ instance: i.cfg.name, err: e.message }, 'vrrp error'));
  }

  /** Pin the DR real servers of every checked service and start a checker for each service of `start`. */
  private async startChecks(all: CheckedService[], start: CheckedService[]): Promise<void> {
    if (all.length === 0 && this.checkers.size === 0) return;
    const rips = [...new Set(all.flatMap((s) => s.dests.filter((d) => d.fwd === 'route').map((d) => d.addr)))];
    this.marks = (await this.o.dp.ha({ op: 'pin', rips })) as Record<string, number>;
    if (!this.table) this.table = new RemoteTable(this.adm, all, this.log);
    for (const svc of start) {
      const manager = new CheckManager({
        table: this.table,
        services: [svc],
        log: this.log,
        markOf: (_svc, d) => (d.fwd === 'route' ? this.marks[d.addr] : undefined),
        bootstrapDelayMs: this.o.bootstrapDelayMs,
      });
      this.checkers.set(serviceKey(svc.spec.id), { sig: checkSig(svc), manager });
      manager.start();
    }
  }

  /**
   * Refuse a reload before anything changes: every VRRP instance that would (re)start can run here. Throws with the
   * reason.
   */
  async precheck(next: HaPlan): Promise<void> {
    if (this.vrrp && next.vrrp) await this.vrrp.check(next.vrrp);
    else if (next.vrrp) for (const c of next.vrrp.instances) await instanceSource(c);
  }

  /**
   * Apply a reloaded config to the HA parts (the director has already applied `diff` to the worker's table):
   * VRRP instances (only the changed ones restart), the checkers of changed checked services, the sync daemon's
   * settings and the metrics bind. Unchanged parts keep running untouched.
   */
  async reload(next: HaPlan, diff: PlanDiff): Promise<HaReloadSummary> {
    const prev = this.plan;
    const summary: HaReloadSummary = { checks: { rebuilt: [], stopped: [] }, sync: false, metrics: false };
    // VRRP
    const nextVrrp = next.vrrp ?? { instances: [], scripts: [], syncGroups: [] };
    this.plan = next;
    if (this.vrrp) {
      summary.vrrp = await this.vrrp.reload(nextVrrp);
      for (const n of summary.vrrp.removed) this.vrrpStates.delete(n);
    } else if (nextVrrp.instances.length) {
      this.vrrp = await runVrrp(nextVrrp, { logger: this.log, onInstance: (i) => this.watch(i) });
      summary.vrrp = { kept: [], restarted: [], added: nextVrrp.instances.map((c) => c.name), removed: [] };
    }
    // checks: rebuild the changed services' checkers
    const checked = checkedOf(next);
    const want = new Map(checked.map((s) => [serviceKey(s.spec.id), s]));
    for (const [k, c] of [...this.checkers]) {
      const s = want.get(k);
      if (s && checkSig(s) === c.sig) continue;
      c.manager.stop();
      this.checkers.delete(k);
      (s ? summary.checks.rebuilt : summary.checks.stopped).push(k);
    }
    this.table?.reconfigure(checked, diff);
    const fresh = checked.filter((s) => !this.checkers.has(serviceKey(s.spec.id)));
    for (const s of fresh) {
      const k = serviceKey(s.spec.id);
      if (!summary.checks.rebuilt.includes(k)) summary.checks.rebuilt.push(k);
    }
    await this.startChecks(checked, fresh);
    // sync daemon
    if (JSON.stringify(prev.sync ?? null) !== JSON.stringify(next.sync ?? null)) {
      summary.sync = true;
      await this.syncChain;
      if (this.syncState) {
        const was = this.syncState;
        this.syncState = null;
        await this.o.dp.ha({ op: 'sync-stop', state: was }).catch(() => undefined);
      }
      const s = next.sync;
      if (s && s.state !== 'vrrp') await this.setSync(s.state);
      else if (s) {
        const f = this.follow;
        const inst = f ? this.vrrpStates.get(f) : undefined;
        await this.setSync(f ? (inst?.state === 'MASTER' ? 'master' : 'backup') : 'master');
      }
    }
    // metrics
    if ((prev.metrics ?? null) !== (next.metrics ?? null)) {
      summary.metrics = true;
      await this.metrics?.close();
      this.metrics = null;
      try {
        if (next.metrics) this.metrics = await startMetrics(next.metrics, this);
      } catch (e) {
        // the new bind failed: the old one comes back and the reload is reported as failed
        if (prev.metrics) this.metrics = await startMetrics(prev.metrics, this).catch(() => null);
        this.plan = { ...next, metrics: prev.metrics };
        throw e;
      }
    }
    return summary;
  }

  /** Switch the configured sync daemon to `state` (stop the other one first). */
  setSync(state: 'master' | 'backup'): Promise<void> {
    const sync = this.plan.sync;
    if (!sync) return Promise.resolve();
    this.syncChain = this.syncChain.then(async () => {
      if (this.syncState === state) return;
      try {
        if (this.syncState) await this.o.dp.ha({ op: 'sync-stop', state: this.syncState });
      } catch {}
      this.syncState = null;
      try {
        await this.o.dp.ha({
          op: 'sync-start',
          start: {
            state,
            syncid: sync.syncid,
            mcastIfn: sync.interface,
            maxLen: sync.maxLen,
            group: sync.group,
            port: sync.port,
            ttl: sync.ttl,
          } satisfies SyncDaemonStart,
        });
        this.syncState = state;
      } catch (e) {
        this.log.error({ state, err: (e as Error).message }, 'sync daemon did not start');
      }
    });
    return this.syncChain;
  }

  snapshot(): Promise<unknown> {
    return this.o.dp.ha({ op: 'snapshot' });
  }

  /** Stop VRRP first (a master sends priority 0 and drops the VIPs), then the checkers and metrics. */
  async stop(): Promise<void> {
    await this.vrrp?.stop().catch((e: Error) => this.log.error({ err: e.message }, 'vrrp stop failed'));
    this.vrrp = null;
    for (const c of this.checkers.values()) c.manager.stop();
    await this.table?.settled();
    await this.metrics?.close();
  }
}
