/**
 * A group's servers (a listener's own servers are the group named after it) as the cluster primary sees them: health and admin state, effective weight (agent %,
 * slowstart), connection slots counted over every worker, maxconn with a FIFO queue behind it, and the balancing
 * algorithm. Pure (time injected); the primary drives it from worker pick/release messages.
 *
 * Cross-worker balancing without the shared memory (./shared.ts; its fallback, or TIERLB_LISTENERS_CENTRAL=1): every
 * worker asks the primary for a server (one IPC round trip per connection or HTTP request) and tells it when the
 * server connection ends. So the primary's single rotation is what a client sees over the whole cluster (roundrobin
 * 90 requests over 3 servers = 30/30/30 whatever worker took them), leastconn and random(2) compare cluster-wide
 * counts, and maxconn / the queue hold for the whole node — exactly as one HAProxy process would. The price is one
 * IPC round trip (~0.1 ms on loopback) before each server connection. With the shared memory the workers pick
 * themselves (./shared-picker.ts) and the primary keeps health, weights and stats here. Pick, maxconn and queue are
 * ./picker.ts's: the same code for both.
 */
import type { Clock } from '../common/clock.js';
import { type Balancer, createBalancer, type LbServer } from './balance/index.js';
import type { GroupSpec, ServerSpec } from './config.js';
import type { ServerTarget } from './ipc.js';
import { QueuedPicker } from './picker.js';

/** HAProxy's status words: UP, DOWN, NOLB (drain), MAINT, and the transitions UP 1/3 / DOWN 1/2. */
export type ServerStatus = 'UP' | 'DOWN' | 'NOLB' | 'MAINT';

export class ServerState implements LbServer {
  /** health: true when checks pass (always true without checks) */
  healthy = true;
  /** consecutive results counted towards rise (when down) or fall (when up) */
  health = 0;
  /**
   * forced admin state, set by the runtime API (`set server B/S state`, `enable|disable server`, the status page)
   * and by an agent's reply, as HAProxy's forced MAINT/DRAIN flags are; kept across reloads for a server that stays
   */
  admin: 'ready' | 'drain' | 'maint' = 'ready';
  /** maintenance from the config (`disabled: true`, HAProxy's CMAINT); `set server … state ready` clears it */
  cfgMaint: boolean;
  /** weight set through the runtime API (HAProxy's uweight); undefined = the configured weight */
  uweight: number | undefined = undefined;
  /** when the last check ran (ms, the injected clock); undefined = never */
  lastCheck: number | undefined = undefined;
  /** agent-check weight, percent of the configured weight */
  agentPct = 100;
  /** when the server last came up (slowstart ramps from here); -Infinity = up since start */
  upSince = Number.NEGATIVE_INFINITY;
  conns = 0;
  smax = 0;
  /** times the balancer chose this server (HAProxy lbtot) */
  lbtot = 0;
  chkfail = 0;
  chkdown = 0;
  lastchg: number;
  checkStatus = '';
  checkCode = 0;
  checkDesc = '';
  /** waiting for this server (hashing algorithms) */
  qcur = 0;

  constructor(
    public spec: ServerSpec,
    readonly id: number,
    now: number,
  ) {
    // like HAProxy without init-state: a checked server starts UP and needs `fall` failures to go down
    this.lastchg = now;
    this.cfgMaint = spec.disabled;
  }

  get name(): string {
    return this.spec.name;
  }
  get maxconn(): number {
    return this.spec.maxconn;
  }
  /** usable at all (up and not in maintenance) */
  get usable(): boolean {
    return this.healthy && !this.maint;
  }
  /** in maintenance (forced or from the config): out of the picks and out of the checks */
  get maint(): boolean {
    return this.cfgMaint || this.admin === 'maint';
  }
  /** the weight before agent % and slowstart: the runtime one, else the configured one */
  get baseWeight(): number {
    return this.uweight ?? this.spec.weight;
  }
  get status(): ServerStatus {
    if (this.maint) return 'MAINT';
    if (!this.healthy) return 'DOWN';
    if (this.admin === 'drain' || this.agentPct === 0) return 'NOLB';
    return 'UP';
  }
  /** weight at `now`: configured × agent % × slowstart ramp (HAProxy: ceil, at least 1 while ramping) */
  weightAt(now: number): number {
    if (!this.usable || this.admin === 'drain') return 0;
    const w = Math.floor((this.baseWeight * this.agentPct) / 100);
    if (w === 0) return 0;
    const ss = this.spec.slowstart;
    const elapsed = now - this.upSince;
    if (ss > 0 && elapsed < ss) return Math.max(1, Math.ceil((w * elapsed) / ss));
    return w;
  }
  /** filled in by the pool before each pick */
  weight = 0;
}

export class Pool extends QueuedPicker<ServerState> {
  readonly servers: ServerState[];
  protected readonly balancer: Balancer;
  private readonly byName = new Map<string, number>();
  qmax = 0;
  /** requests that found no server (503) */
  noserver = 0;

  constructor(
    public spec: GroupSpec,
    clock: Clock,
    previous?: Pool,
    random: () => number = Math.random,
  ) {
    super(clock);
    const now = clock.now();
    this.servers = spec.servers.map((s, i) => {
      const old = previous?.servers.find((o) => o.name === s.name);
      if (old && old.spec.host === s.host && old.spec.port === s.port) {
        // HAProxy's server-state-file: the runtime state of a server that stays is kept, unless the config changed
        // what it was derived from (its `disabled`, its weight)
        if (old.spec.disabled !== s.disabled) old.cfgMaint = s.disabled;
        if (old.spec.weight !== s.weight) old.uweight = undefined;
        old.spec = s;
        (old as { id: number }).id = i;
        if (!s.check) {
          old.healthy = true;
          old.checkStatus = '';
        }
        return old;
      }
      return new ServerState(s, i, now);
    });
    for (const s of this.servers) this.byName.set(s.name, s.id);
    this.balancer = createBalancer(spec.balance, { random });
    if (previous) {
      this.qmax = previous.qmax;
      this.noserver = previous.noserver;
      // requests queued under the old config wait on here
      this.adoptQueue(previous);
    }
  }

  /** requests waiting in the workers' queues (shared-memory balancing, ./shared.ts) */
  sharedQcur = 0;

  get qcur(): number {
    return this.waiting + this.sharedQcur;
  }

  index(name: string): number | undefined {
    return this.byName.get(name);
  }

  name(i: number): string {
    return this.servers[i]!.name;
  }

  protected get queueTimeout(): number {
    return this.spec.timeout.queue;
  }

  /** Usable servers, actives first, backups only when no active one is usable (HAProxy with `option allbackups`). */
  protected candidates(): ServerState[] {
    const now = this.clock.now();
    for (const s of this.servers) s.weight = s.weightAt(now);
    const eligible = (backup: boolean) => this.servers.filter((s) => s.spec.backup === backup && s.weight > 0);
    const c = eligible(false);
    return c.length ? c : eligible(true);
  }

  protected take(i: number): boolean {
    const s = this.servers[i]!;
    if (s.maxconn > 0 && s.conns >= s.maxconn) return false;
    s.conns++;
    s.lbtot++;
    if (s.conns > s.smax) s.smax = s.conns;
    return true;
  }

  protected give(i: number): void {
    const s = this.servers[i];
    if (s && s.conns > 0) s.conns--;
  }

  protected queueFull(): boolean {
    return this.spec.maxqueue > 0 && this.waiting >= this.spec.maxqueue;
  }

  protected override enqueued(): void {
    if (this.waiting > this.qmax) this.qmax = this.waiting;
  }

  protected override noServer(): void {
    this.noserver++;
  }
}

/** What a worker needs to reach a server (../ipc.ts ServerTarget). */
/** A worker gave back a slot of the server it names (a server the pool no longer has is ignored). */
export function releaseByName(pool: Pool | undefined, server: string): void {
  const i = pool?.index(server);
  if (i !== undefined) pool!.release(i);
}

export function targetOf(s: ServerState): ServerTarget {
  return { name: s.name, host: s.spec.host, port: s.spec.port, sendProxy: s.spec.sendProxy, ssl: s.spec.ssl };
}
