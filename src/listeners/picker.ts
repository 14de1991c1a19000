/**
 * A worker's balancing for one listener over the cluster's shared memory (./shared.ts has the design and the
 * figures): candidates and weights as the primary published them, roundrobin / static-rr through the node's shared
 * cursor over the smooth weighted schedule, the other algorithms (./balance/) over live cluster-wide connection
 * counts, maxconn by compare-and-swap, and a local FIFO for requests that find every server full. Pure over an
 * Int32Array (tests back it with a SharedArrayBuffer); time is passed in.
 */
import { type Balancer, createBalancer, type LbServer, type PickRequest } from './balance/index.js';
import { weightedMap } from './balance/swrr.js';
import {
  atomicMax,
  F_BACKUP,
  hq,
  hw,
  L_CURSOR,
  L_QCUR,
  L_QMAX,
  L_TIE,
  L_VERSION,
  lw,
  S_CONNS,
  S_FLAGS,
  S_LBTOT,
  S_SMAX,
  S_WEIGHT,
  sw,
} from './shared.js';

/** pick(): every candidate is full */
export const FULL = -1;
/** pick(): no usable server */
export const NOSERVER = -2;

export type Acquired = number | 'noserver' | 'queuefull' | 'timeout';

export interface PickerServer {
  name: string;
  /** 0 = unlimited */
  maxconn: number;
  /** its server slot in the shared memory */
  slot: number;
}

export interface PickerOptions {
  balance: string;
  /** 0 = unlimited */
  maxqueue: number;
  /** timeout queue, ms */
  queueTimeout: number;
  random?: () => number;
}

class View implements LbServer {
  weight = 0;
  constructor(
    private readonly words: Int32Array,
    readonly id: number,
    readonly name: string,
    readonly maxconn: number,
    private readonly ci: number,
  ) {}
  get conns(): number {
    return Atomics.load(this.words, this.ci);
  }
}

interface Waiter {
  req: PickRequest;
  exclude: ReadonlySet<number> | undefined;
  deadline: number;
  done: (r: Acquired) => void;
}

export class SharedPicker {
  private readonly views: View[];
  private cands: View[] = [];
  /** roundrobin/static-rr: candidate ids, one weighted cycle in smooth order */
  private schedule: Int32Array = new Int32Array(0);
  private version = -1;
  private readonly rr: boolean;
  private readonly balancer: Balancer | null;
  private readonly byName = new Map<string, number>();
  private queue: Waiter[] = [];

  constructor(
    private readonly words: Int32Array,
    private readonly lslot: number,
    private readonly servers: readonly PickerServer[],
    /** this worker's row in the held table */
    private readonly worker: number,
    private readonly opts: PickerOptions,
  ) {
    this.views = servers.map((s, i) => new View(words, i, s.name, s.maxconn, sw(s.slot, S_CONNS)));
    for (let i = 0; i < servers.length; i++) this.byName.set(servers[i]!.name, i);
    this.rr = opts.balance === 'roundrobin' || opts.balance === 'static-rr';
    const tieIdx = lw(lslot, L_TIE);
    this.balancer = this.rr
      ? null
      : createBalancer(opts.balance, {
          random: opts.random ?? Math.random,
          tie: {
            get: () => Atomics.load(words, tieIdx) - 1,
            set: (v) => Atomics.store(words, tieIdx, v + 1),
          },
        });
  }

  index(name: string): number | undefined {
    return this.byName.get(name);
  }

  name(i: number): string {
    return this.servers[i]!.name;
  }

  /** Candidates as published: actives with weight > 0, else backups with weight > 0 (HAProxy allbackups). */
  private refresh(): void {
    const v = Atomics.load(this.words, lw(this.lslot, L_VERSION));
    if (v === this.version) return;
    this.version = v;
    const act: View[] = [];
    const bck: View[] = [];
    for (let i = 0; i < this.views.length; i++) {
      const view = this.views[i]!;
      const slot = this.servers[i]!.slot;
      view.weight = Atomics.load(this.words, sw(slot, S_WEIGHT));
      if (view.weight <= 0) continue;
      ((Atomics.load(this.words, sw(slot, S_FLAGS)) & F_BACKUP) !== 0 ? bck : act).push(view);
    }
    this.cands = act.length ? act : bck;
    if (this.rr) this.schedule = Int32Array.from(weightedMap(reduce(this.cands)), (s) => s.id);
  }

  /** Take one slot of server `i`; false when it is at maxconn (checked and taken atomically over the node). */
  private take(i: number): boolean {
    const s = this.servers[i]!;
    const ci = sw(s.slot, S_CONNS);
    let n: number;
    if (s.maxconn > 0) {
      for (;;) {
        const c = Atomics.load(this.words, ci);
        if (c >= s.maxconn) return false;
        if (Atomics.compareExchange(this.words, ci, c, c + 1) === c) {
          n = c + 1;
          break;
        }
      }
    } else n = Atomics.add(this.words, ci, 1) + 1;
    // a worker dying between these two leaks one slot, never frees one twice
    Atomics.add(this.words, hw(this.worker, s.slot), 1);
    Atomics.add(this.words, sw(s.slot, S_LBTOT), 1);
    atomicMax(this.words, sw(s.slot, S_SMAX), n);
    return true;
  }

  /** Give back a slot of server `i` and serve this worker's waiters. */
  release(i: number, now = 0): void {
    const slot = this.servers[i]!.slot;
    Atomics.sub(this.words, hw(this.worker, slot), 1);
    Atomics.sub(this.words, sw(slot, S_CONNS), 1);
    if (this.queue.length) this.serveQueue(now);
  }

  /** Pick and take a server now: its index, FULL or NOSERVER. `exclude` = servers already tried (redispatch). */
  pick(req: PickRequest, exclude?: ReadonlySet<number>): number {
    this.refresh();
    const cands = this.cands;
    if (cands.length === 0) return NOSERVER;
    let ex = exclude?.size ? exclude : undefined;
    // redispatch with nothing else left: retry where we were
    if (ex && cands.every((s) => ex!.has(s.id))) ex = undefined;
    if (this.rr) {
      const sched = this.schedule;
      const n = sched.length;
      const ci = lw(this.lslot, L_CURSOR);
      for (let k = 0; k < n; k++) {
        const c = Atomics.add(this.words, ci, 1) >>> 0;
        const id = sched[c % n]!;
        if (ex?.has(id)) continue;
        if (this.take(id)) return id;
      }
      return FULL;
    }
    const list = ex ? cands.filter((s) => !ex!.has(s.id)) : cands;
    // another worker may take the last slot between the choice and the take: choose again
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

  /** Pick, or wait (FIFO, at most timeout queue) when every server is full. `done` may be called at once. */
  acquire(req: PickRequest, exclude: ReadonlySet<number> | undefined, now: number, done: (r: Acquired) => void): void {
    const r = this.queue.length === 0 ? this.pick(req, exclude) : this.noServerLeft();
    if (r !== FULL) {
      done(r === NOSERVER ? 'noserver' : r);
      return;
    }
    const qi = lw(this.lslot, L_QCUR);
    if (this.opts.maxqueue > 0 && Atomics.load(this.words, qi) >= this.opts.maxqueue) {
      done('queuefull');
      return;
    }
    Atomics.add(this.words, hq(this.worker, this.lslot), 1);
    atomicMax(this.words, lw(this.lslot, L_QMAX), Atomics.add(this.words, qi, 1) + 1);
    this.queue.push({ req, exclude, deadline: now + this.opts.queueTimeout, done });
  }

  /** With waiters ahead: NOSERVER if nothing is usable, else FULL (queue behind them). */
  private noServerLeft(): number {
    this.refresh();
    return this.cands.length === 0 ? NOSERVER : FULL;
  }

  /** Serve waiters, oldest first (on a local release, and on a timer for slots other workers free). */
  serveQueue(now: number): void {
    if (this.queue.length === 0) return;
    const waiting = this.queue;
    this.queue = [];
    const rest: Waiter[] = [];
    for (const w of waiting) {
      if (w.deadline <= now) {
        this.unqueue();
        w.done('timeout');
        continue;
      }
      const r = this.pick(w.req, w.exclude);
      if (r === FULL) {
        rest.push(w);
        continue;
      }
      this.unqueue();
      w.done(r === NOSERVER ? 'noserver' : r);
    }
    this.queue = rest.concat(this.queue);
  }

  private unqueue(): void {
    Atomics.sub(this.words, hq(this.worker, this.lslot), 1);
    Atomics.sub(this.words, lw(this.lslot, L_QCUR), 1);
  }
}

/** Weights divided by their gcd: 2,2,2 → one cycle of 3 (the schedule stays short, the order the same). */
function reduce(cands: readonly View[]): LbServer[] {
  let g = 0;
  for (const s of cands) g = gcd(g, s.weight);
  if (g <= 1) return cands as View[];
  return cands.map((s) => ({ id: s.id, name: s.name, maxconn: s.maxconn, conns: 0, weight: s.weight / g }));
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}
