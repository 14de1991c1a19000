/**
 * One listener's balancing state behind one interface, whichever keeps it: the primary's Pool (./pool.ts: every
 * worker asks the primary) or a worker's SharedPicker over the node's shared memory (./shared-picker.ts). Both
 * choose among the same candidates (actives with weight > 0, else backups), hold maxconn and queue the requests that
 * find every server full, FIFO, for at most `timeout queue`: that logic lives here, once; a keeper only says where
 * its candidates, connection counts and queue counters are. Time comes from an injected clock.
 */
import type { Clock } from '../common/clock.js';
import type { Balancer, LbServer, PickRequest } from './balance/index.js';

/** pick(): every candidate is full */
export const FULL = -1;
/** pick(): no usable server */
export const NOSERVER = -2;

export type PickError = 'noserver' | 'queuefull' | 'timeout';
/** What a request gets: its server (the index in the listener's server list, its slot taken), or why none. */
export type Picked = number | PickError;

export interface Picker {
  /** the index of the server named `name` (undefined: not in this listener) */
  index(name: string): number | undefined;
  name(i: number): string;
  /** Pick and take a server now: its index, FULL or NOSERVER. `exclude` = servers already tried (redispatch). */
  pick(req: PickRequest, exclude?: ReadonlySet<number>): number;
  /** Pick, or wait (FIFO, at most timeout queue) while every server is full. `done` may be called at once. */
  acquire(req: PickRequest, exclude: ReadonlySet<number> | undefined, done: (r: Picked) => void): void;
  /** Give back a slot of server `i` and serve the waiters. */
  release(i: number): void;
  /** Serve the waiters, oldest first; those past timeout queue get 'timeout'. */
  serveQueue(): void;
  /** requests waiting here */
  readonly waiting: number;
}

interface Waiter {
  /** who asked (the primary drops a dead worker's waiters) */
  owner: number;
  req: PickRequest;
  exclude: ReadonlySet<number> | undefined;
  deadline: number;
  done: (r: Picked) => void;
}

/** The pick, maxconn and queue of a Picker over the candidates a keeper gives. */
export abstract class QueuedPicker<S extends LbServer = LbServer> implements Picker {
  private queue: Waiter[] = [];

  constructor(protected readonly clock: Clock) {}

  abstract index(name: string): number | undefined;
  abstract name(i: number): string;
  /** Candidates now: actives with weight > 0, else backups with weight > 0 (HAProxy allbackups). */
  protected abstract candidates(): readonly S[];
  /** The balancing algorithm (choose() may go its own way instead). */
  protected abstract readonly balancer: Balancer | null;
  /** Take one slot of server `i`; false when it is at maxconn. */
  protected abstract take(i: number): boolean;
  /** Give one slot of server `i` back. */
  protected abstract give(i: number): void;
  /** timeout queue, ms */
  protected abstract readonly queueTimeout: number;
  /** maxqueue is reached */
  protected abstract queueFull(): boolean;
  /** one more request waits / one less */
  protected enqueued(): void {}
  protected dequeued(): void {}
  /** a request found no usable server */
  protected noServer(): void {}

  pick(req: PickRequest, exclude?: ReadonlySet<number>): number {
    const cands = this.candidates();
    if (cands.length === 0) return NOSERVER;
    let ex = exclude?.size ? exclude : undefined;
    // redispatch with nothing else left: retry where we were
    if (ex && cands.every((s) => ex!.has(s.id))) ex = undefined;
    return this.choose(cands, req, ex);
  }

  /** One of `cands` (not in `ex`), taken; FULL when the algorithm finds none with room. */
  protected choose(cands: readonly S[], req: PickRequest, ex: ReadonlySet<number> | undefined): number {
    const list = ex ? cands.filter((s) => !ex.has(s.id)) : cands;
    // another worker may take the last slot between the choice and the take: choose again (a hashing algorithm
    // returns its full server again: the request waits for it, as in HAProxy)
    for (let tries = 0; tries < 4; tries++) {
      const s = this.balancer!.pick(list, req);
      if (!s) return FULL;
      if (this.take(s.id)) return s.id;
    }
    return FULL;
  }

  get waiting(): number {
    return this.queue.length;
  }

  acquire(req: PickRequest, exclude: ReadonlySet<number> | undefined, done: (r: Picked) => void, owner = 0): void {
    // with waiters ahead a new request queues behind them (unless nothing is usable)
    const r = this.queue.length === 0 ? this.pick(req, exclude) : this.candidates().length === 0 ? NOSERVER : FULL;
    if (r !== FULL) {
      if (r === NOSERVER) {
        this.noServer();
        done('noserver');
      } else done(r);
      return;
    }
    if (this.queueFull()) {
      done('queuefull');
      return;
    }
    this.queue.push({ owner, req, exclude, deadline: this.clock.now() + this.queueTimeout, done });
    this.enqueued();
  }

  release(i: number): void {
    this.give(i);
    if (this.queue.length) this.serveQueue();
  }

  serveQueue(): void {
    if (this.queue.length === 0) return;
    const now = this.clock.now();
    const waiting = this.queue;
    this.queue = [];
    const rest: Waiter[] = [];
    for (const w of waiting) {
      if (w.deadline <= now) {
        this.dequeued();
        w.done('timeout');
        continue;
      }
      const r = this.pick(w.req, w.exclude);
      if (r === FULL) {
        rest.push(w);
        continue;
      }
      this.dequeued();
      w.done(r === NOSERVER ? 'noserver' : r);
    }
    // (requests queued while serving wait behind those still waiting)
    this.queue = rest.concat(this.queue);
  }

  /** Drop the waiters of `owner` (a dead worker) without an answer. */
  cancel(owner: number): void {
    const keep = this.queue.filter((w) => w.owner !== owner);
    for (let n = this.queue.length - keep.length; n > 0; n--) this.dequeued();
    this.queue = keep;
  }

  /** Take over the waiters of `prev` (the same listener before a reload); their exclusions follow the names. */
  protected adoptQueue(prev: QueuedPicker<S>): void {
    for (const w of prev.queue) {
      let exclude: Set<number> | undefined;
      if (w.exclude?.size) {
        exclude = new Set();
        for (const i of w.exclude) {
          const j = this.index(prev.name(i));
          if (j !== undefined) exclude.add(j);
        }
      }
      this.queue.push({ ...w, exclude });
    }
    prev.queue = [];
  }
}
