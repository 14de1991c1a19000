/**
 * Timers driven by an injected clock: the checkers schedule their next run through this interface, so tests drive a
 * ManualTimers (advance the ManualClock and run what fell due) and nothing sleeps.
 */
import { type Clock, ManualClock, systemClock } from '../../common/clock.js';

export type TimerHandle = { readonly id: number };

export interface Timers {
  readonly clock: Clock;
  /** Run `fn` once `ms` milliseconds from now. */
  set(ms: number, fn: () => void): TimerHandle;
  clear(h: TimerHandle | undefined): void;
}

/** setTimeout-backed timers on the system clock (unref'd: pending checks never keep a process alive). */
export class RealTimers implements Timers {
  readonly clock: Clock = systemClock;
  private next = 1;
  private readonly live = new Map<number, NodeJS.Timeout>();

  set(ms: number, fn: () => void): TimerHandle {
    const id = this.next++;
    const t = setTimeout(
      () => {
        this.live.delete(id);
        fn();
      },
      Math.max(0, ms),
    );
    t.unref();
    this.live.set(id, t);
    return { id };
  }

  clear(h: TimerHandle | undefined): void {
    if (!h) return;
    const t = this.live.get(h.id);
    if (t) clearTimeout(t);
    this.live.delete(h.id);
  }
}

/** Timers for tests: `advance(ms)` moves the clock and runs every timer that fell due, in due order. */
export class ManualTimers implements Timers {
  readonly clock: ManualClock;
  private next = 1;
  private readonly pending = new Map<number, { at: number; fn: () => void }>();

  constructor(clock = new ManualClock()) {
    this.clock = clock;
  }

  set(ms: number, fn: () => void): TimerHandle {
    const id = this.next++;
    this.pending.set(id, { at: this.clock.now() + Math.max(0, ms), fn });
    return { id };
  }

  clear(h: TimerHandle | undefined): void {
    if (h) this.pending.delete(h.id);
  }

  /** How many timers are waiting. */
  get size(): number {
    return this.pending.size;
  }

  /** When the earliest timer is due (Infinity when none). */
  nextDue(): number {
    let min = Number.POSITIVE_INFINITY;
    for (const p of this.pending.values()) min = Math.min(min, p.at);
    return min;
  }

  /** Move the clock forward by `ms`, running due timers at their own time (timers they set run too when due). */
  advance(ms: number): void {
    const end = this.clock.now() + ms;
    for (;;) {
      let best: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.pending) {
        if (e[1].at > end) continue;
        // a Map iterates in insertion order: of timers due at the same time, the first set runs first
        if (!best || e[1].at < best[1].at) best = e;
      }
      if (!best) break;
      this.pending.delete(best[0]);
      if (best[1].at > this.clock.now()) this.clock.set(best[1].at);
      best[1].fn();
    }
    this.clock.set(end);
  }
}
