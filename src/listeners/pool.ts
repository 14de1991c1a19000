/**
 * A listener's servers as the cluster primary sees them: health and admin state, effective weight (agent %,
 * slowstart), connection slots counted over every worker, maxconn with a FIFO queue behind it, and the balancing
 * algorithm. Pure (time injected); the primary drives it from worker pick/release messages.
 *
 * Cross-worker balancing without the shared memory (./shared.ts; its fallback, or TIERLB_LISTENERS_CENTRAL=1): every
 * worker asks the primary for a server (one IPC round trip per connection or HTTP request) and tells it when the
 * server connection ends. So the primary's single rotation is what a client sees over the whole cluster (roundrobin
 * 90 requests over 3 servers = 30/30/30 whatever worker took them), leastconn and random(2) compare cluster-wide
 * counts, and maxconn / the queue hold for the whole node — exactly as one HAProxy process would. The price is one
 * IPC round trip (~0.1 ms on loopback) before each server connection. With the shared memory the workers pick
 * themselves (./picker.ts) and the primary keeps health, weights and stats here.
 */
import type { Clock } from '../common/clock.js';
import { type Balancer, createBalancer, isHashing, type LbServer, type PickRequest } from './balance/index.js';
import type { ListenerSpec, ServerSpec } from './config.js';

/** HAProxy's status words: UP, DOWN, NOLB (drain), MAINT, and the transitions UP 1/3 / DOWN 1/2. */
export type ServerStatus = 'UP' | 'DOWN' | 'NOLB' | 'MAINT';

export class ServerState implements LbServer {
  /** health: true when checks pass (always true without checks) */
  healthy = true;
  /** consecutive results counted towards rise (when down) or fall (when up) */
  health = 0;
  /** agent-check admin state */
  admin: 'ready' | 'drain' | 'maint' = 'ready';
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
  }

  get name(): string {
    return this.spec.name;
  }
  get maxconn(): number {
    return this.spec.maxconn;
  }
  /** usable at all (up and not in maintenance) */
  get usable(): boolean {
    return this.healthy && this.admin !== 'maint' && !this.spec.disabled;
  }
  get status(): ServerStatus {
    if (this.spec.disabled || this.admin === 'maint') return 'MAINT';
    if (!this.healthy) return 'DOWN';
    if (this.admin === 'drain' || this.agentPct === 0) return 'NOLB';
    return 'UP';
  }
  /** weight at `now`: configured × agent % × slowstart ramp (HAProxy: ceil, at least 1 while ramping) */
  weightAt(now: number): number {
    if (!this.usable || this.admin === 'drain') return 0;
    const w = Math.floor((this.spec.weight * this.agentPct) / 100);
    if (w === 0) return 0;
    const ss = this.spec.slowstart;
    const elapsed = now - this.upSince;
    if (ss > 0 && elapsed < ss) return Math.max(1, Math.ceil((w * elapsed) / ss));
    return w;
  }
  /** filled in by the pool before each pick */
  weight = 0;
}

export type PickOutcome = { server: ServerState } | { error: 'noserver' | 'queuefull' | 'timeout' };

interface Waiter {
  owner: number;
  req: PickRequest;
  exclude: ReadonlySet<string>;
  deadline: number;
  done: (o: PickOutcome) => void;
}

export class Pool {
  readonly servers: ServerState[];
  private balancer: Balancer;
  private readonly hashing: boolean;
  private queue: Waiter[] = [];
  qmax = 0;
  /** requests that found no server (503) */
  noserver = 0;

  constructor(
    public spec: ListenerSpec,
    private readonly clock: Clock,
    previous?: Pool,
    random: () => number = Math.random,
  ) {
    const now = clock.now();
    this.servers = spec.servers.map((s, i) => {
      const old = previous?.servers.find((o) => o.name === s.name);
      if (old && old.spec.host === s.host && old.spec.port === s.port) {
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
    this.balancer = createBalancer(spec.balance, { random });
    this.hashing = isHashing(spec.balance);
    if (previous) {
      this.qmax = previous.qmax;
      this.noserver = previous.noserver;
      // requests queued under the old config wait on here
      for (const w of previous.queue) this.queue.push(w);
      previous.queue = [];
    }
  }

  /** requests waiting in the workers' queues (shared-memory balancing, ./shared.ts) */
  sharedQcur = 0;

  get qcur(): number {
    return this.queue.length + this.sharedQcur;
  }

  /** Usable servers, actives first, backups only when no active one is usable (HAProxy with `option allbackups`). */
  candidates(exclude: ReadonlySet<string> = new Set()): ServerState[] {
    const now = this.clock.now();
    for (const s of this.servers) s.weight = s.weightAt(now);
    const eligible = (backup: boolean) => this.servers.filter((s) => s.spec.backup === backup && s.weight > 0);
    let c = eligible(false);
    if (c.length === 0) c = eligible(true);
    const without = c.filter((s) => !exclude.has(s.name));
    // redispatch with nothing else left: retry where we were
    return without.length ? without : c;
  }

  /** Try to pick now. null = every candidate full (the caller queues). */
  private tryPick(req: PickRequest, exclude: ReadonlySet<string>): PickOutcome | null {
    const c = this.candidates(exclude);
    if (c.length === 0) return { error: 'noserver' };
    const s = this.balancer.pick(c, req) as ServerState | null;
    if (!s) return null;
    if (this.hashing && s.maxconn > 0 && s.conns >= s.maxconn) return null;
    this.take(s);
    return { server: s };
  }

  private take(s: ServerState): void {
    s.conns++;
    s.lbtot++;
    if (s.conns > s.smax) s.smax = s.conns;
  }

  /** Ask for a server. `done` is called at once, or later when a slot frees or the queue timeout expires. */
  acquire(req: PickRequest, exclude: ReadonlySet<string>, done: (o: PickOutcome) => void, owner = 0): void {
    const o = this.queue.length === 0 ? this.tryPick(req, exclude) : null;
    if (o) {
      if ('error' in o) this.noserver++;
      done(o);
      return;
    }
    if (this.candidates(exclude).length === 0) {
      this.noserver++;
      done({ error: 'noserver' });
      return;
    }
    if (this.spec.maxqueue > 0 && this.queue.length >= this.spec.maxqueue) {
      done({ error: 'queuefull' });
      return;
    }
    this.queue.push({ owner, req, exclude, deadline: this.clock.now() + this.spec.timeout.queue, done });
    if (this.queue.length > this.qmax) this.qmax = this.queue.length;
  }

  /** A server connection ended: free its slot and serve the queue. */
  release(name: string): void {
    const s = this.servers.find((x) => x.name === name);
    if (s && s.conns > 0) s.conns--;
    this.serveQueue();
  }

  /** Hand freed slots to waiters, oldest first. Also call after a server comes up or its weight changes. */
  serveQueue(): void {
    if (this.queue.length === 0) return;
    const rest: Waiter[] = [];
    const waiting = this.queue;
    this.queue = [];
    for (const w of waiting) {
      const o = this.tryPick(w.req, w.exclude);
      if (!o) rest.push(w);
      else w.done(o);
    }
    this.queue = rest.concat(this.queue);
  }

  /** Expire waiters past the queue timeout (503). */
  expire(now: number): void {
    if (this.queue.length === 0) return;
    const keep: Waiter[] = [];
    for (const w of this.queue) {
      if (w.deadline <= now) w.done({ error: 'timeout' });
      else keep.push(w);
    }
    this.queue = keep;
  }

  /** Drop the waiters of a dead worker. */
  cancel(owner: number): void {
    this.queue = this.queue.filter((w) => w.owner !== owner);
  }
}
