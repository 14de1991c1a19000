/**
 * The per-destination-address table lblc and lblcr keep (struct ip_vs_lblc_table / ip_vs_lblcr_table): 1024 hash
 * buckets indexed by hash_32(ntohl(fold(daddr)), 10), and the periodic garbage collector the kernel runs every
 * 60 s (ip_vs_lblc_check_expire):
 *  - every 30th run, a full check drops every entry unused for `expiration` (sysctl lblc_expiration /
 *    lblcr_expiration, 24 h by default);
 *  - on the other runs, only when the table holds more than 16 * 1024 entries, drop entries unused for 6 minutes,
 *    bucket by bucket from the rover, until (entries - max) * 4/3 (at most max / 2) are gone.
 * Time is the injected clock in milliseconds. tick(now) runs every collection that fell due up to now, each at its
 * scheduled time; after a very long pause (more than 60 runs overdue) the older runs are skipped (the later full
 * checks cover what they would have collected).
 */
import type { Family } from '../../common/addr.js';
import type { RealServer } from '../dest.js';
import type { VirtualService } from '../service.js';
import type { SchedPacket, Scheduler, SchedulerContext } from './types.js';
import { foldAddr, hash32 } from './util.js';

export const CHECK_EXPIRE_INTERVAL_MS = 60_000;
export const ENTRY_TIMEOUT_MS = 6 * 60_000;
export const DEFAULT_EXPIRATION_MS = 24 * 60 * 60_000;
export const COUNT_FOR_FULL_EXPIRATION = 30;
export const LOCALITY_TAB_BITS = 10;
export const LOCALITY_TAB_SIZE = 1 << LOCALITY_TAB_BITS;
const TAB_MASK = LOCALITY_TAB_SIZE - 1;
const MAX_CATCH_UP_RUNS = 2 * COUNT_FOR_FULL_EXPIRATION;

export interface LocalityEntry {
  /** the destination address (canonical string) */
  readonly addr: string;
  /** last use (ms) */
  lastuse: number;
}

export class LocalityTable<E extends LocalityEntry> {
  /** each bucket keyed by address (the kernel's hlist, without its order, which no rule depends on) */
  private readonly buckets: Map<string, E>[] = Array.from({ length: LOCALITY_TAB_SIZE }, () => new Map());
  private count = 0;
  readonly maxSize = LOCALITY_TAB_SIZE * 16;
  /** sysctl lblc_expiration / lblcr_expiration (ms) */
  expiration = DEFAULT_EXPIRATION_MS;
  private rover = 0;
  private counter = 1;
  private nextCheck: number;

  constructor(
    private readonly family: Family,
    now: number,
  ) {
    this.nextCheck = now + CHECK_EXPIRE_INTERVAL_MS;
  }

  get size(): number {
    return this.count;
  }

  get(addr: string): E | undefined {
    return this.buckets[this.bucketOf(addr)].get(addr);
  }

  set(e: E): void {
    const b = this.buckets[this.bucketOf(e.addr)];
    if (!b.has(e.addr)) this.count++;
    b.set(e.addr, e);
  }

  delete(addr: string): void {
    if (this.buckets[this.bucketOf(addr)].delete(addr)) this.count--;
  }

  entries(): E[] {
    return this.buckets.flatMap((b) => [...b.values()]);
  }

  /** Run the periodic collections that are due (the kernel's periodic_timer). */
  tick(now: number): void {
    const overdue = Math.floor((now - this.nextCheck) / CHECK_EXPIRE_INTERVAL_MS);
    if (overdue > MAX_CATCH_UP_RUNS) {
      // skip the older runs as if none of them collected, keeping the full checks in phase
      const skipped = overdue - MAX_CATCH_UP_RUNS;
      this.nextCheck += skipped * CHECK_EXPIRE_INTERVAL_MS;
      this.counter = ((this.counter - 1 + skipped) % COUNT_FOR_FULL_EXPIRATION) + 1;
    }
    while (this.nextCheck <= now) {
      this.checkExpire(this.nextCheck);
      this.nextCheck += CHECK_EXPIRE_INTERVAL_MS;
    }
  }

  /** ip_vs_lblc_check_expire */
  private checkExpire(now: number): void {
    if (this.counter % COUNT_FOR_FULL_EXPIRATION === 0) {
      this.sweep(now, this.expiration, Number.POSITIVE_INFINITY);
      this.counter = 1;
      return;
    }
    if (this.count <= this.maxSize) {
      this.counter++;
      return;
    }
    const goal = Math.min(Math.trunc(((this.count - this.maxSize) * 4) / 3), Math.trunc(this.maxSize / 2));
    this.sweep(now, ENTRY_TIMEOUT_MS, goal);
  }

  /** Drop entries unused for maxAge, bucket by bucket after the rover, until goal entries are gone. */
  private sweep(now: number, maxAge: number, goal: number): void {
    let j = this.rover;
    for (let i = 0; i < LOCALITY_TAB_SIZE; i++) {
      j = (j + 1) & TAB_MASK;
      for (const [addr, e] of this.buckets[j]) {
        if (now < e.lastuse + maxAge) continue;
        this.buckets[j].delete(addr);
        this.count--;
        goal--;
      }
      if (goal <= 0) break;
    }
    this.rover = j;
  }

  private bucketOf(addr: string): number {
    return hash32(foldAddr(addr, this.family, this.family), LOCALITY_TAB_BITS);
  }
}

/** What lblc and lblcr share: the table, the clock, no table to rebuild on updates, and the periodic collection. */
export abstract class LocalityScheduler<E extends LocalityEntry> implements Scheduler {
  abstract readonly name: string;
  readonly table: LocalityTable<E>;

  constructor(
    svc: VirtualService,
    protected readonly ctx: SchedulerContext,
  ) {
    this.table = new LocalityTable(svc.family, ctx.clock.now());
  }

  update(): void {}

  abstract schedule(svc: VirtualService, pkt: SchedPacket): RealServer | null;

  tick(now: number): void {
    this.table.tick(now);
  }
}
