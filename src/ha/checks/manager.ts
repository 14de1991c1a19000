/**
 * The director's health checker (keepalived's checker process): runs every real server's checks on their delay
 * loops, feeds the outcomes to the pure state logic (state.ts) and applies what it decides to the ServiceTable —
 * addDest / delDest, or editDest to weight 0 with inhibit_on_failure, the sorry server when quorum is lost — logging
 * every change and running the notify scripts.
 */
import { EventEmitter } from 'node:events';
import { TierlbError } from '../../common/errors.js';
import { log as defaultLog, type Logger } from '../../common/log.js';
import { destKey } from '../../l4/dest.js';
import type { ServiceId } from '../../l4/service.js';
import { describeService } from '../../l4/service.js';
import type { DestSpec } from '../../l4/services.js';
import { runScript } from '../../sys/script.js';
import type { RealServerCheck, RealServerHealth, VirtualServerHealth } from '../checks-types.js';
import { type HttpProbeOptions, httpProbe, miscProbe, type ProbeTarget, tcpProbe } from './probes.js';
import {
  type CheckerTiming,
  type CheckOutcome,
  type HealthAction,
  type HealthEvent,
  VirtualServerState,
} from './state.js';
import { RealTimers, type TimerHandle, type Timers } from './timers.js';

/** The probes a manager runs; tests inject fakes. */
export interface ProbeRunner {
  tcp(t: ProbeTarget): Promise<CheckOutcome>;
  http(t: ProbeTarget, o: HttpProbeOptions): Promise<CheckOutcome>;
  misc(command: string, timeoutMs: number): Promise<CheckOutcome>;
}

export const realProbes: ProbeRunner = { tcp: tcpProbe, http: httpProbe, misc: miscProbe };

/** One virtual service under health checks: the shape the keepalived.conf reader produces ({spec, dests, health}). */
export interface CheckedService {
  spec: { id: ServiceId };
  /** the real servers as they go into the table when up (weight = the configured weight) */
  dests: DestSpec[];
  health: VirtualServerHealth;
}

/** What the manager needs of a table: the ServiceTable, or a mirror of one held elsewhere (src/director/ha.ts). */
export interface CheckTable {
  get(id: ServiceId): { dests: readonly (DestSpec & { key: string })[] } | undefined;
  addDest(id: ServiceId, d: DestSpec): unknown;
  editDest(id: ServiceId, d: DestSpec): unknown;
  delDest(id: ServiceId, addr: string, port: number): unknown;
}

/**
 * A checked service is missing from the table the checker changes: removed by hand (the checker owns the real
 * servers of its services, as keepalived's does), so its next change cannot be applied.
 */
export class CheckTableError extends TierlbError {
  override readonly code = 'ECHECK_NO_SERVICE';
  constructor(readonly service: ServiceId) {
    super(
      'ECHECK_NO_SERVICE',
      `service ${describeService(service)} is not in the table (removed by hand?): its checker cannot change its real servers until it is back (tierlb adm -A …, or restart the director)`,
    );
    this.name = 'CheckTableError';
  }
}

export interface CheckManagerOptions {
  table: CheckTable;
  services: CheckedService[];
  timers?: Timers;
  probes?: ProbeRunner;
  log?: Logger;
  /**
   * The SO_MARK probes to a real server carry (DR: the mark whose policy route leads to it). With a mark and no
   * connect_ip, probes go to the VIP:port, as client traffic does.
   */
  markOf?: (svc: ServiceId, dest: DestSpec) => number | undefined;
  /** notify_up / notify_down / quorum_up / quorum_down; default: run the command without a shell, detached */
  runScript?: (command: string) => void;
  /** delay before the first checks (keepalived BOOTSTRAP_DELAY, 1 s) */
  bootstrapDelayMs?: number;
  random?: () => number;
}

export interface CheckerStatus {
  kind: 'tcp' | 'http' | 'misc';
  up: boolean;
  retryIt: number;
}

export interface RealServerStatus {
  addr: string;
  port: number;
  alive: boolean;
  inTable: boolean;
  weight: number;
  checkers: CheckerStatus[];
}

export interface ServiceHealthStatus {
  service: ServiceId;
  quorumUp: boolean;
  sorryActive: boolean;
  realServers: RealServerStatus[];
}

export interface CheckManagerEvents {
  /** a table change was applied */
  action: [ServiceId, HealthAction];
  /** a state change (server up/down, quorum, sorry server, weight) */
  event: [ServiceId, HealthEvent];
  /** one probe finished */
  probe: [ServiceId, { addr: string; port: number; checker: number; outcome: CheckOutcome }];
}

interface Entry {
  svc: CheckedService;
  state: VirtualServerState;
  destByKey: Map<string, DestSpec>;
  sorryDest?: DestSpec;
  /** per real server, per checker: the check config */
  checks: RealServerCheck[][];
  rsHealth: RealServerHealth[];
}

function checkTiming(c: RealServerCheck, vsDelayLoop: number): CheckerTiming {
  const delayLoopMs = (c.delayLoop ?? vsDelayLoop) * 1000;
  if (c.type === 'misc') {
    // MISC_CHECK's retry defaults to 0 (keepalived misc_check_handler)
    const extra = c as { retry?: number; delayBeforeRetry?: number };
    return {
      kind: 'misc',
      delayLoopMs,
      retry: extra.retry ?? 0,
      delayBeforeRetryMs: (extra.delayBeforeRetry ?? 1) * 1000,
      dynamic: c.dynamic,
    };
  }
  return {
    kind: c.type,
    delayLoopMs,
    retry: c.retry,
    delayBeforeRetryMs: c.delayBeforeRetry * 1000,
  };
}

export class CheckManager extends EventEmitter<CheckManagerEvents> {
  readonly table: CheckTable;
  readonly timers: Timers;
  private readonly probes: ProbeRunner;
  private readonly log: Logger;
  private readonly entries: Entry[] = [];
  private readonly handles = new Set<TimerHandle>();
  private readonly o: CheckManagerOptions;
  private running = false;
  private generation = 0;

  constructor(o: CheckManagerOptions) {
    super();
    this.o = o;
    this.table = o.table;
    this.timers = o.timers ?? new RealTimers();
    this.probes = o.probes ?? realProbes;
    this.log = (o.log ?? defaultLog).child({ component: 'checks' });
    for (const svc of o.services) this.entries.push(this.entry(svc));
  }

  private entry(svc: CheckedService): Entry {
    const h = svc.health;
    const destByKey = new Map(svc.dests.map((d) => [destKey(d.addr, d.port), d]));
    const rsHealth = h.realServers;
    const state = new VirtualServerState({
      quorum: h.quorum,
      hysteresis: h.hysteresis,
      alpha: h.alpha,
      sorry: h.sorryServer
        ? { addr: h.sorryServer.addr, port: h.sorryServer.port, inhibit: h.sorryServer.inhibit }
        : undefined,
      realServers: rsHealth.map((r) => ({
        addr: r.addr,
        port: r.port,
        weight: destByKey.get(destKey(r.addr, r.port))?.weight ?? 1,
        inhibitOnFailure: r.inhibitOnFailure,
        checkers: r.checks.map((c) => checkTiming(c, h.delayLoop)),
      })),
    });
    const fwd = svc.dests[0]?.fwd ?? 'route';
    const sorryDest: DestSpec | undefined = h.sorryServer
      ? { addr: h.sorryServer.addr, port: h.sorryServer.port, fwd, weight: 1, uThreshold: 0, lThreshold: 0 }
      : undefined;
    return { svc, state, destByKey, sorryDest, checks: rsHealth.map((r) => r.checks), rsHealth };
  }

  /** Put the initial servers in the table and start every checker. */
  start(): void {
    if (this.running) return;
    this.running = true;
    const gen = ++this.generation;
    const boot = this.o.bootstrapDelayMs ?? 1000;
    const random = this.o.random ?? Math.random;
    for (const e of this.entries) {
      const id = e.svc.spec.id;
      const svc = this.table.get(id);
      const present = (addr: string, port: number) => !!svc?.dests.some((d) => d.key === destKey(addr, port));
      const r = e.state.init(present);
      this.apply(e, r.actions, r.events);
      e.checks.forEach((checks, rsI) => {
        checks.forEach((c, cI) => {
          const warmup = (c.warmup ?? 0) * 1000 * random();
          this.schedule(e, rsI, cI, boot + warmup, gen);
        });
      });
    }
  }

  /** Stop every checker (the table is left as it is). */
  stop(): void {
    this.running = false;
    this.generation++;
    for (const h of this.handles) this.timers.clear(h);
    this.handles.clear();
  }

  status(): ServiceHealthStatus[] {
    return this.entries.map((e) => {
      const svc = this.table.get(e.svc.spec.id);
      return {
        service: e.svc.spec.id,
        quorumUp: e.state.quorumUp,
        sorryActive: e.state.sorryAlive,
        realServers: e.state.realServers.map((rs) => {
          const d = svc?.dests.find((x) => x.key === destKey(rs.addr, rs.port));
          return {
            addr: rs.addr,
            port: rs.port,
            alive: rs.alive,
            inTable: !!d,
            weight: d?.weight ?? 0,
            checkers: rs.checkers.map((c) => ({ kind: c.timing.kind, up: c.isUp, retryIt: c.retryIt })),
          };
        }),
      };
    });
  }

  private schedule(e: Entry, rsI: number, cI: number, delayMs: number, gen: number): void {
    const h = this.timers.set(delayMs, () => {
      this.handles.delete(h);
      if (gen === this.generation) void this.run(e, rsI, cI, gen);
    });
    this.handles.add(h);
  }

  private async run(e: Entry, rsI: number, cI: number, gen: number): Promise<void> {
    const rs = e.rsHealth[rsI];
    const check = e.checks[rsI][cI];
    const started = this.timers.clock.now();
    let outcome: CheckOutcome;
    try {
      outcome = await this.probe(e, rs, check);
    } catch (err) {
      outcome = { ok: false, reason: (err as Error).message };
    }
    if (gen !== this.generation) return;
    this.emit('probe', e.svc.spec.id, { addr: rs.addr, port: rs.port, checker: cI, outcome });
    const r = e.state.result(rsI, cI, outcome);
    if (!outcome.ok)
      this.log.debug({ rs: `${rs.addr}:${rs.port}`, check: check.type, reason: outcome.reason }, 'check failed');
    this.apply(e, r.actions, r.events);
    // MISC_CHECK counts its delay from when the script started; the others from when the check ended
    const delay = check.type === 'misc' ? Math.max(1, started + r.delayMs - this.timers.clock.now()) : r.delayMs;
    this.schedule(e, rsI, cI, delay, gen);
  }

  private probe(e: Entry, rs: RealServerHealth, c: RealServerCheck): Promise<CheckOutcome> {
    if (c.type === 'misc') return this.probes.misc(c.path, (c.timeout ?? c.delayLoop ?? e.svc.health.delayLoop) * 1000);
    const id = e.svc.spec.id;
    const dest = e.destByKey.get(destKey(rs.addr, rs.port));
    const mark = dest ? this.o.markOf?.(id, dest) : undefined;
    const viaVip = mark !== undefined && mark !== 0 && id.kind !== 'fwm' && !!id.addr;
    const t: ProbeTarget = {
      host: c.connectIp ?? (viaVip ? (id.addr as string) : rs.addr),
      port: c.connectPort ?? (viaVip && id.port ? id.port : rs.port),
      bindTo: c.bindTo,
      bindPort: c.bindPort,
      mark: mark || undefined,
      timeoutMs: c.connectTimeout * 1000,
    };
    if (c.type === 'tcp') return this.probes.tcp(t);
    return this.probes.http(t, {
      urls: c.urls,
      tls: c.tls,
      virtualhost: c.virtualhost ?? e.svc.health.virtualhost,
    });
  }

  private apply(e: Entry, actions: HealthAction[], events: HealthEvent[]): void {
    const id = e.svc.spec.id;
    for (const a of actions) {
      try {
        this.applyAction(e, a);
        this.emit('action', id, a);
      } catch (err) {
        this.log.warn({ service: describeService(id), action: a, err: (err as Error).message }, 'table change failed');
      }
    }
    for (const ev of events) {
      this.logEvent(id, ev);
      this.emit('event', id, ev);
      this.notify(e, ev);
    }
  }

  private applyAction(e: Entry, a: HealthAction): void {
    const id = e.svc.spec.id;
    const svc = this.table.get(id);
    if (!svc) throw new CheckTableError(id);
    const existing = svc.dests.find((d) => d.key === destKey(a.addr, a.port));
    if (a.op === 'del') {
      if (existing) this.table.delDest(id, existing.addr, existing.port);
      return;
    }
    const base = a.sorry ? e.sorryDest : e.destByKey.get(destKey(a.addr, a.port));
    const spec: DestSpec = existing
      ? {
          addr: existing.addr,
          port: existing.port,
          fwd: existing.fwd,
          weight: a.weight,
          uThreshold: existing.uThreshold,
          lThreshold: existing.lThreshold,
        }
      : {
          addr: a.addr,
          port: a.port,
          fwd: base?.fwd ?? 'route',
          weight: a.weight,
          uThreshold: base?.uThreshold ?? 0,
          lThreshold: base?.lThreshold ?? 0,
        };
    if (existing) this.table.editDest(id, spec);
    else if (a.op === 'add') this.table.addDest(id, spec);
  }

  private logEvent(id: ServiceId, ev: HealthEvent): void {
    const service = describeService(id);
    switch (ev.type) {
      case 'rs-up':
      case 'rs-down': {
        const verb = ev.type === 'rs-up' ? (ev.inhibit ? 'enabling' : 'adding') : ev.inhibit ? 'disabling' : 'removing';
        this.log.info(
          { service, rs: `${ev.addr}:${ev.port}`, state: ev.type === 'rs-up' ? 'up' : 'down' },
          `${verb} service`,
        );
        break;
      }
      case 'quorum-up':
      case 'quorum-down':
        this.log.info(
          { service, weightSum: ev.weightSum, threshold: ev.threshold, init: ev.init },
          ev.type === 'quorum-up' ? 'gained quorum' : 'lost quorum',
        );
        break;
      case 'sorry-add':
      case 'sorry-del':
        this.log.info(
          { service, sorry: `${ev.addr}:${ev.port}` },
          ev.type === 'sorry-add' ? 'adding sorry server' : 'removing sorry server',
        );
        break;
      case 'weight':
        this.log.info({ service, rs: `${ev.addr}:${ev.port}`, from: ev.from, to: ev.to }, 'changing weight');
        break;
    }
  }

  private notify(e: Entry, ev: HealthEvent): void {
    let cmd: string | undefined;
    if (ev.type === 'rs-up' || ev.type === 'rs-down') {
      const rs = e.rsHealth.find((r) => r.addr === ev.addr && r.port === ev.port);
      cmd = ev.type === 'rs-up' ? rs?.notifyUp : rs?.notifyDown;
    } else if (ev.type === 'quorum-up') cmd = e.svc.health.quorumUp;
    else if (ev.type === 'quorum-down') cmd = e.svc.health.quorumDown;
    if (!cmd) return;
    (this.o.runScript ?? runDetached)(cmd);
  }
}

/** Fire and forget: the notify script runs in its own process group and does not hold the daemon up. */
function runDetached(command: string): void {
  void runScript(command, [], { unref: true });
}
