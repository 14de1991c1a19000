/**
 * The cluster primary of `tierlb listeners`: forks the workers (it binds the listening sockets itself and passes them
 * to every worker, which accepts on them; or, as a fallback, accepts and hands each connection to a ready worker:
 * ./acceptor.ts), restarts a dead worker with backoff, runs every check, owns the
 * balancing state (./pool.ts: every worker picks through it, so balancing is exact over the whole node), collects
 * stats, serves the control socket and /metrics, and reloads on SIGHUP or `reload`:
 *
 *   reload = re-read the config (a bad one is refused with file:line:col: reason, nothing changes), then per
 *   worker slot: fork a worker of the new generation, wait until it listens, tell the old one to drain (it stops
 *   accepting, finishes its in-flight requests with `Connection: close`, exits). Since the primary keeps the
 *   listening sockets open whatever the workers do, no connection is refused in between, nor while a dead worker
 *   is replaced (a connection then waits in the kernel's accept queue, or in the acceptor, for the new one).
 * The runtime API (./runtime-api/) and the status page (./status-page/) act on the backends of `backends()`.
 */
import cluster, { type Worker } from 'node:cluster';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { type Clock, systemClock } from '../common/clock.js';
import { log } from '../common/log.js';
import { ConfigError } from '../config/index.js';
import { Acceptor, type AcceptTarget } from './acceptor.js';
import { CheckLoops } from './check-loops.js';
import { type ListenersConfig, loadListenersConfig, proxyInfo } from './config.js';
import { type ControlServer, controlCommand, startControl } from './control.js';
import type { FromWorker, ToWorker } from './ipc.js';
import { type MetricsServer, startMetrics } from './metrics.js';
import { Pool, releaseByName, type ServerState, targetOf } from './pool.js';
import type { RuntimeHost } from './runtime-api/commands.js';
import { showInfo } from './runtime-api/info.js';
import { type FullRow, fullRows, Rates } from './runtime-api/show-stat.js';
import { createRegion, Registry, type ShmInfo } from './shared.js';
import { type StatRow, statRows, sumSnapshots, type WorkerSnapshot } from './stats.js';
import { handleStatusPage } from './status-page/http.js';
import { acceptTarget, passListenSocket, sendToWorker } from './worker-channel.js';

interface Slot {
  worker?: Worker;
  /** consecutive quick deaths, for the restart backoff */
  failures: number;
  startedAt: number;
  timer?: NodeJS.Timeout;
}

interface WorkerInfo {
  worker: Worker;
  gen: number;
  slot: number;
  ready: boolean;
  draining: boolean;
  /** server slots this worker holds: `${listener}\0${server}` → count */
  held: Map<string, number>;
  snap: WorkerSnapshot;
  readyWaiters: ((err?: string) => void)[];
  cfg: ListenersConfig;
  /** its row and its generation's slots in the shared memory */
  shm?: ShmInfo;
  /** how the acceptor hands it connections */
  target?: AcceptTarget;
}

const DRAIN_DEADLINE = 30_000;
const READY_TIMEOUT = 15_000;

export function workerEntry(): string {
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
  return fileURLToPath(new URL(`./worker-main${ext}`, import.meta.url));
}

export class Primary {
  pools = new Map<string, Pool>();
  private gen = 0;
  private readonly slots: Slot[] = [];
  private readonly infos = new Map<number, WorkerInfo>();
  private retired: WorkerSnapshot = {};
  private readonly checks = new CheckLoops(
    () => this.clock,
    (pool, s, why) => this.stateChanged(pool, s, why),
  );
  private ticker?: NodeJS.Timeout;
  private control?: ControlServer;
  private metrics?: MetricsServer;
  private stopping = false;
  private reloading: Promise<{ ok: boolean; error?: string }> | null = null;
  private statsId = 1;
  private readonly statsWaiters = new Map<number, { want: Set<number>; got: () => void }>();
  private exitResolve?: (code: number) => void;
  /** shared balancing state (./shared.ts); undefined = workers pick through the primary's pools */
  private shm?: { registry: Registry; path: string };
  private layout: ShmInfo['listeners'] = {};
  private readonly rates = new Rates();
  /** the listening sockets: connections go to the workers, and wait here while none can take them */
  private readonly acceptor = new Acceptor(() => this.targets());
  private readonly startedAt = Date.now();
  /** TLS session tickets: one key for every worker of every generation (a session resumes on any of them) */
  private readonly ticketKeys = randomBytes(48).toString('base64');

  constructor(
    public cfg: ListenersConfig,
    /** load: how reload reads the config again (default: the YAML at cfg.file; `--haproxy`: the haproxy.cfg) */
    private readonly opts: { control?: string; clock?: Clock; load?: (file: string) => Promise<ListenersConfig> } = {},
  ) {}

  private get clock(): Clock {
    return this.opts.clock ?? systemClock;
  }

  /** Start everything; resolves with the exit code once stopped. */
  async run(): Promise<number> {
    cluster.schedulingPolicy = cluster.SCHED_RR;
    cluster.setupPrimary({ exec: workerEntry(), execArgv: process.execArgv });
    if (process.env.TIERLB_LISTENERS_CENTRAL !== '1') {
      try {
        const r = createRegion();
        this.shm = { registry: new Registry(r.words), path: r.path };
      } catch (e) {
        log.warn({ err: String(e) }, 'listeners: no shared memory, every pick goes through the primary');
      }
    }
    try {
      await this.acceptor.open(this.cfg.listeners);
    } catch (e) {
      log.error({ err: String((e as Error).message ?? e) }, 'listeners: a listener could not start');
      process.stderr.write(`tierlb listeners: ${(e as Error).message}\n`);
      return 1;
    }
    this.buildPools(this.cfg);
    this.checks.start(this.backends());
    this.ticker = setInterval(() => this.tick(), 50);
    this.gen = 1;
    const started = await Promise.all(
      Array.from({ length: this.cfg.workers }, (_, i) => {
        this.slots[i] = { failures: 0, startedAt: Date.now() };
        return this.fork(i, this.gen);
      }),
    );
    const bad = started.find((e) => e);
    if (bad) {
      log.error({ error: bad }, 'listeners: a worker could not start');
      await this.stop();
      return 1;
    }
    const controlPath = this.opts.control ?? this.cfg.control;
    try {
      this.control = await startControl(controlPath, (cmd) => this.command(cmd));
    } catch (e) {
      log.error({ err: String(e), path: controlPath }, 'listeners: control socket');
      await this.stop();
      return 1;
    }
    if (this.cfg.stats.enabled) {
      try {
        this.metrics = await startMetrics(
          this.cfg.stats.host,
          this.cfg.stats.port,
          () => this.rows(),
          (req, res) => handleStatusPage(req, res, { host: this.runtime, admin: this.cfg.stats.admin }),
        );
      } catch (e) {
        log.error({ err: String(e) }, 'listeners: stats port');
        await this.stop();
        return 1;
      }
    }
    process.on('SIGHUP', () => void this.reload());
    process.once('SIGTERM', () => void this.stop());
    process.once('SIGINT', () => void this.stop());
    log.info(
      {
        workers: this.cfg.workers,
        listeners: this.cfg.listeners.map((l) => `${l.name}@${l.host}:${l.port}/${l.mode}/${l.balance}`),
        groups: this.cfg.groups.map((g) => `${g.name}/${g.balance}/${g.servers.length}`),
        control: controlPath,
        stats: this.cfg.stats.enabled ? `${this.cfg.stats.host}:${this.cfg.stats.port}` : null,
      },
      'listeners: ready',
    );
    process.stdout.write(`tierlb listeners: ${this.cfg.workers} workers ready (control ${controlPath})\n`);
    return new Promise((resolve) => {
      this.exitResolve = resolve;
    });
  }

  /** One pool per group (HAProxy backend; a listener's own servers are the group named after it). */
  private buildPools(cfg: ListenersConfig): void {
    const next = new Map<string, Pool>();
    for (const spec of cfg.groups) next.set(spec.name, new Pool(spec, this.clock, this.pools.get(spec.name)));
    this.pools = next;
    if (this.shm) this.layout = this.shm.registry.assign(this.gen, cfg.groups);
    this.publish();
  }

  /** Weights and states to the shared memory (after checks, agent replies, slowstart steps, reloads). */
  private publish(): void {
    if (!this.shm) return;
    const now = this.clock.now();
    for (const pool of this.pools.values()) {
      const l = this.layout[pool.spec.name];
      if (!l) continue;
      this.shm.registry.publish(
        l.slot,
        pool.servers.map((s, i) => ({ slot: l.servers[i]!, weight: s.weightAt(now), backup: s.spec.backup })),
      );
    }
  }

  /** The shared counters into the pools, for stats. */
  private syncShared(): void {
    if (!this.shm) return;
    for (const pool of this.pools.values()) {
      const l = this.layout[pool.spec.name];
      if (!l) continue;
      pool.servers.forEach((s, i) => {
        const c = this.shm!.registry.server(l.servers[i]!);
        s.conns = c.conns;
        s.lbtot = c.lbtot;
        s.smax = c.smax;
      });
      const q = this.shm.registry.queue(l.slot);
      pool.sharedQcur = q.qcur;
      pool.qmax = Math.max(pool.qmax, q.qmax);
    }
  }

  // ---- workers ----

  /** Fork a worker of generation `gen` into `slot`; resolves once it listens (undefined) or with the error. */
  private fork(slot: number, gen: number): Promise<string | undefined> {
    const worker = cluster.fork({ TIERLB_LISTENERS_WORKER: String(slot) });
    const info: WorkerInfo = {
      worker,
      gen,
      slot,
      ready: false,
      draining: false,
      held: new Map(),
      snap: {},
      readyWaiters: [],
      cfg: { ...this.cfg, tlsTicketKeys: this.ticketKeys },
      shm: this.shm?.registry.workerInfo(this.shm.path, this.layout, this.cfg.listeners),
    };
    this.infos.set(worker.id, info);
    worker.on('message', (m: FromWorker) => this.onMessage(info, m));
    // a write to a worker that just died fails asynchronously (EPIPE) on the worker's 'error' event: without a
    // listener that event would take the primary down; its exit is handled by onExit
    worker.on('error', (e: Error) => log.debug({ worker: worker.id, err: String(e) }, 'listeners: worker channel'));
    worker.on('exit', (code, signal) => this.onExit(info, code, signal));
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve('worker did not listen in time'), READY_TIMEOUT);
      info.readyWaiters.push((err) => {
        clearTimeout(t);
        resolve(err);
      });
    });
  }

  /** The workers as the acceptor sees them. */
  private *targets(): Iterable<AcceptTarget> {
    for (const info of this.infos.values())
      yield (info.target ??= acceptTarget(info.worker, () => info.ready && !info.draining, info.cfg));
  }

  private sendTo(info: WorkerInfo, m: ToWorker): boolean {
    return sendToWorker(info.worker, m);
  }

  private onMessage(info: WorkerInfo, m: FromWorker): void {
    switch (m.t) {
      case 'hello': {
        const shared = this.acceptor.shared;
        this.sendTo(info, { t: 'config', gen: info.gen, cfg: info.cfg, shm: info.shm, handoff: !shared, shared });
        if (shared)
          for (const l of info.cfg.listeners)
            passListenSocket(info.worker, l.name, this.acceptor.handleOf(l.host, l.port));
        break;
      }
      case 'ready': {
        info.ready = true;
        const slot = this.slots[info.slot];
        if (slot && !slot.worker && !info.draining && info.gen === this.gen) slot.worker = info.worker;
        // a worker restarted under a generation that a reload replaced while it started: no slot holds it, so
        // nothing else would ever drain it (it would serve the old config on)
        else if (!info.draining && info.gen !== this.gen && !this.slots.some((x) => x.worker === info.worker))
          this.drainWorker(info);
        for (const w of info.readyWaiters.splice(0)) w();
        // connections that arrived while no worker could take them
        this.acceptor.flush();
        break;
      }
      case 'fatal':
        log.error({ worker: info.worker.id, error: m.error }, 'listeners: worker failed to start');
        for (const w of info.readyWaiters.splice(0)) w(m.error);
        break;
      case 'pick':
        this.onPick(info, m);
        break;
      case 'release': {
        const k = `${m.l}\0${m.s}`;
        const n = info.held.get(k) ?? 0;
        if (n <= 1) info.held.delete(k);
        else info.held.set(k, n - 1);
        if (n > 0) releaseByName(this.pools.get(m.l), m.s);
        break;
      }
      case 'stats': {
        info.snap = m.snap;
        const w = this.statsWaiters.get(m.id);
        if (w) {
          w.want.delete(info.worker.id);
          if (w.want.size === 0) w.got();
        }
        break;
      }
    }
  }

  private onPick(info: WorkerInfo, m: Extract<FromWorker, { t: 'pick' }>): void {
    const pool = this.pools.get(m.l);
    if (!pool) {
      this.sendTo(info, { t: 'picked', id: m.id, err: 'noserver' });
      return;
    }
    let exclude: Set<number> | undefined;
    if (m.ex?.length) {
      exclude = new Set();
      for (const name of m.ex) {
        const i = pool.index(name);
        if (i !== undefined) exclude.add(i);
      }
    }
    pool.acquire(
      m.req,
      exclude,
      (r) => {
        if (typeof r !== 'number') {
          this.sendTo(info, { t: 'picked', id: m.id, err: r });
          return;
        }
        const s = pool.servers[r]!;
        const k = `${m.l}\0${s.name}`;
        if (!this.sendTo(info, { t: 'picked', id: m.id, server: targetOf(s) })) {
          pool.release(r);
          return;
        }
        info.held.set(k, (info.held.get(k) ?? 0) + 1);
      },
      info.worker.id,
    );
  }

  private onExit(info: WorkerInfo, code: number | null, signal: string | null): void {
    this.infos.delete(info.worker.id);
    for (const w of info.readyWaiters.splice(0)) w(`worker exited (${signal ?? code}) before listening`);
    // its server slots are free again, its queued picks are void
    for (const [k, n] of info.held) {
      const [l, s] = k.split('\0') as [string, string];
      const pool = this.pools.get(l);
      for (let i = 0; i < n; i++) releaseByName(pool, s);
    }
    for (const p of this.pools.values()) p.cancel(info.worker.id);
    if (this.shm && info.shm) {
      this.shm.registry.reclaim(info.shm.worker);
      const gens = [...this.infos.values()].map((i) => i.gen);
      this.shm.registry.reap(gens.length ? Math.min(...gens) : this.gen);
    }
    this.retired = sumSnapshots([this.retired, info.snap]);
    for (const w of this.statsWaiters.values()) {
      w.want.delete(info.worker.id);
      if (w.want.size === 0) w.got();
    }
    const slot = this.slots[info.slot];
    if (info.draining || this.stopping) {
      log.info({ worker: info.worker.id, gen: info.gen }, 'listeners: old worker drained');
      this.maybeExit();
      return;
    }
    if (!slot || slot.worker !== info.worker) return;
    slot.worker = undefined;
    const lived = Date.now() - slot.startedAt;
    slot.failures = lived > 10_000 ? 1 : slot.failures + 1;
    const delay = Math.min(5000, 100 * 2 ** (slot.failures - 1));
    log.warn({ worker: info.worker.id, code, signal, restartIn: delay }, 'listeners: worker died, restarting');
    slot.timer = setTimeout(() => {
      if (this.stopping) return;
      slot.startedAt = Date.now();
      void this.fork(info.slot, this.gen);
    }, delay);
  }

  private stateChanged(pool: Pool, s: ServerState, why: string): void {
    const up = pool.servers.filter((x) => x.status === 'UP').length;
    log.warn(
      {
        group: pool.spec.name,
        server: s.name,
        status: s.status,
        weight: s.weightAt(this.clock.now()),
        check_status: s.checkStatus,
        reason: why,
        active_up: up,
      },
      `Server ${pool.spec.name}/${s.name} is ${s.status}. ${up} active and backup servers left.`,
    );
    pool.serveQueue();
    this.publish();
  }

  private tick(): void {
    // waiters past timeout queue get their 503; slowstart raises weights over time: a queued request may fit now
    for (const p of this.pools.values()) p.serveQueue();
    this.publish();
  }

  // ---- stats ----

  /** Fresh counters from every live worker (waits at most 500 ms). */
  async collect(): Promise<WorkerSnapshot> {
    const id = this.statsId++;
    const want = new Set<number>();
    for (const info of this.infos.values()) if (this.sendTo(info, { t: 'stats?', id })) want.add(info.worker.id);
    if (want.size) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 500);
        this.statsWaiters.set(id, {
          want,
          got: () => {
            clearTimeout(t);
            resolve();
          },
        });
      });
      this.statsWaiters.delete(id);
    }
    return sumSnapshots([this.retired, ...[...this.infos.values()].map((i) => i.snap)]);
  }

  async rows(): Promise<StatRow[]> {
    const agg = await this.collect();
    this.syncShared();
    const names = new Set(this.cfg.listeners.map((l) => l.name));
    return statRows([...this.pools.values()], agg, this.clock.now(), (l) => names.has(l), this.cfg.listeners);
  }

  /** Every backend (server group), addressed by name in the runtime API and the status page. */
  backends(): Pool[] {
    return [...this.pools.values()];
  }

  /** `show stat` rows: HAProxy's columns over the same counters as rows(). */
  async fullRows(): Promise<FullRow[]> {
    const rows = await this.rows();
    return fullRows({
      pools: this.backends(),
      rows,
      now: this.clock.now(),
      pid: process.pid,
      rates: this.rates,
      proxies: proxyInfo(this.cfg.listeners),
    });
  }

  /** What the runtime API and the status page act on. */
  readonly runtime: RuntimeHost = {
    backends: () => this.backends(),
    proxies: () => proxyInfo(this.cfg.listeners),
    fullRows: () => this.fullRows(),
    now: () => this.clock.now(),
    changed: (pool, s, why) => this.stateChanged(pool, s, why),
    info: async () =>
      showInfo(await this.rows(), {
        startedAt: this.startedAt,
        workersAlive: this.infos.size,
        workers: this.cfg.workers,
        listeners: this.cfg.listeners.length,
        gen: this.gen,
        stopping: this.stopping,
      }),
  };

  // ---- control ----

  private command(line: string): Promise<string> {
    return controlCommand(line, {
      runtime: this.runtime,
      rows: () => this.rows(),
      reload: () => this.reload(),
      workers: () =>
        [...this.infos.values()].map(
          (i) =>
            `${i.worker.process.pid} gen=${i.gen} slot=${i.slot}${i.ready ? '' : ' starting'}${i.draining ? ' draining' : ''}`,
        ),
    });
  }

  // ---- reload ----

  reload(): Promise<{ ok: boolean; error?: string }> {
    if (this.reloading) return this.reloading;
    this.reloading = this.doReload().finally(() => {
      this.reloading = null;
    });
    return this.reloading;
  }

  private async doReload(): Promise<{ ok: boolean; error?: string }> {
    let next: ListenersConfig;
    try {
      next = await (this.opts.load ?? loadListenersConfig)(this.cfg.file);
    } catch (e) {
      const error = e instanceof ConfigError ? e.format() : String((e as Error).message ?? e);
      log.error({ file: this.cfg.file, error }, 'listeners: reload refused, old config keeps serving');
      return { ok: false, error };
    }
    let stale: string[];
    try {
      stale = await this.acceptor.open(next.listeners);
    } catch (e) {
      const error = String((e as Error).message ?? e);
      log.error({ file: this.cfg.file, error }, 'listeners: reload refused, old config keeps serving');
      return { ok: false, error };
    }
    const prevCfg = this.cfg;
    const prevPools = this.pools;
    this.cfg = next;
    this.buildPools(next);
    this.checks.start(this.backends());
    const gen = ++this.gen;
    log.info({ gen, file: next.file, workers: next.workers }, 'listeners: reloading');
    const n = Math.max(next.workers, this.slots.length);
    for (let i = 0; i < n; i++) {
      const slot = (this.slots[i] ??= { failures: 0, startedAt: Date.now() });
      if (slot.timer) clearTimeout(slot.timer);
      const old = slot.worker ? this.infos.get(slot.worker.id) : undefined;
      slot.worker = undefined;
      if (i < next.workers) {
        slot.startedAt = Date.now();
        const err = await this.fork(i, gen);
        if (err) {
          log.error({ gen, error: err }, 'listeners: reload failed, keeping the old workers');
          if (old) slot.worker = old.worker;
          // back out: old config for the pools, drop this generation's workers
          this.cfg = prevCfg;
          this.pools = prevPools;
          if (this.shm) this.layout = this.shm.registry.assign(gen, prevCfg.groups);
          this.publish();
          this.checks.start(this.backends());
          for (const info of this.infos.values()) if (info.gen === gen) this.drainWorker(info);
          for (const s of this.slots) if (s.worker && this.infos.get(s.worker.id)?.gen === gen) s.worker = undefined;
          this.gen = gen - 1;
          // the addresses only the refused config had
          for (const k of await this.acceptor.open(prevCfg.listeners)) this.acceptor.closeOne(k);
          return { ok: false, error: err };
        }
      }
      if (old) this.drainWorker(old);
    }
    this.slots.length = next.workers;
    // addresses the new config dropped (their old workers are draining)
    for (const k of stale) this.acceptor.closeOne(k);
    log.info({ gen }, 'listeners: reloaded');
    return { ok: true };
  }

  private drainWorker(info: WorkerInfo): void {
    info.draining = true;
    if (!this.sendTo(info, { t: 'drain', deadline: DRAIN_DEADLINE })) info.worker.kill();
  }

  // ---- stop ----

  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    log.info('listeners: stopping');
    for (const s of this.slots) if (s.timer) clearTimeout(s.timer);
    this.checks.stop();
    if (this.ticker) clearInterval(this.ticker);
    this.acceptor.close();
    await this.control?.close();
    await this.metrics?.close();
    for (const info of this.infos.values()) this.drainWorker(info);
    setTimeout(() => {
      for (const info of this.infos.values()) info.worker.kill('SIGKILL');
      this.finish();
    }, 5000).unref();
    this.maybeExit();
  }

  private maybeExit(): void {
    if (this.stopping && this.infos.size === 0) this.finish();
  }

  private finish(): void {
    this.exitResolve?.(0);
    this.exitResolve = undefined;
  }
}
