/**
 * A worker's balancing for one listener over the cluster's shared memory (./shared.ts has the design and the
 * figures): candidates and weights as the primary published them, roundrobin / static-rr through the node's shared
 * cursor over the smooth weighted schedule, the other algorithms (./balance/) over live cluster-wide connection
 * counts, maxconn by compare-and-swap; the queue for requests that find every server full is ./picker.ts's (a local
 * FIFO, its counts node-wide). Pure over an Int32Array (tests back it with a SharedArrayBuffer); time is injected.
 */
import { type Clock, systemClock } from '../common/clock.js';
import { type Balancer, createBalancer, type LbServer, type PickRequest } from './balance/index.js';
import { weightedMap } from './balance/swrr.js';
import { FULL, QueuedPicker } from './picker.js';
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
  /** deadlines of the waiters (default the system clock) */
  clock?: Clock;
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

export class SharedPicker extends QueuedPicker<View> {
  private readonly views: View[];
  private cands: View[] = [];
  /** roundrobin/static-rr: candidate ids, one weighted cycle in smooth order */
  private schedule: Int32Array = new Int32Array(0);
  private version = -1;
  private readonly rr: boolean;
  protected readonly balancer: Balancer | null;
  private readonly byName = new Map<string, number>();

  constructor(
    private readonly words: Int32Array,
    private readonly lslot: number,
    private readonly servers: readonly PickerServer[],
    /** this worker's row in the held table */
    private readonly worker: number,
    private readonly opts: PickerOptions,
  ) {
    super(opts.clock ?? systemClock);
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

  protected get queueTimeout(): number {
    return this.opts.queueTimeout;
  }

  protected candidates(): readonly View[] {
    this.refresh();
    return this.cands;
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
  protected take(i: number): boolean {
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

  protected give(i: number): void {
    const slot = this.servers[i]!.slot;
    Atomics.sub(this.words, hw(this.worker, slot), 1);
    Atomics.sub(this.words, sw(slot, S_CONNS), 1);
  }

  /** roundrobin / static-rr: the node's cursor over the smooth weighted schedule */
  protected override choose(cands: readonly View[], req: PickRequest, ex: ReadonlySet<number> | undefined): number {
    if (!this.rr) return super.choose(cands, req, ex);
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

  /** maxqueue is counted over the node */
  protected queueFull(): boolean {
    return this.opts.maxqueue > 0 && Atomics.load(this.words, lw(this.lslot, L_QCUR)) >= this.opts.maxqueue;
  }

  protected override enqueued(): void {
    Atomics.add(this.words, hq(this.worker, this.lslot), 1);
    atomicMax(this.words, lw(this.lslot, L_QMAX), Atomics.add(this.words, lw(this.lslot, L_QCUR), 1) + 1);
  }

  protected override dequeued(): void {
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
