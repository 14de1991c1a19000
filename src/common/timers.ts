/**
 * Timers driven by an injected clock: whoever waits schedules through this interface, so tests drive a ManualTimers
 * (advance the ManualClock and run what fell due) and nothing sleeps. Two shapes:
 *  - `set(ms, fn)`: a one-shot timer (checkers, sync, a worker's drain deadline);
 *  - `timer(fn)`: one re-armable timer, for a hot path that re-arms the same wait again and again (a keep-alive
 *    connection's request wait): re-arming with the same delay refreshes the timer it has, it allocates nothing.
 */
import { type Clock, ManualClock, systemClock } from './clock.js';

export type TimerHandle = { readonly id: number };

/** A re-armable timer bound to one function. */
export interface Timer {
  /** (Re)start: `fn` runs `ms` milliseconds from now, unless armed again or stopped before. */
  arm(ms: number): void;
  stop(): void;
}

export interface Timers {
  readonly clock: Clock;
  /** Run `fn` once `ms` milliseconds from now. */
  set(ms: number, fn: () => void): TimerHandle;
  clear(h: TimerHandle | undefined): void;
  /** A re-armable timer running `fn` (stopped until armed). */
  timer(fn: () => void): Timer;
}

/** setTimeout-backed timers on the system clock (unref'd: a pending timer never keeps a process alive). */
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

  timer(fn: () => void): Timer {
    return new RealTimer(fn);
  }
}

/** One setTimeout, refreshed (not re-created) when armed again with the same delay. */
class RealTimer implements Timer {
  private t: NodeJS.Timeout | undefined = undefined;
  private ms = -1;
  constructor(private readonly fn: () => void) {}

  arm(ms: number): void {
    if (this.t && this.ms === ms) {
      // (a timer that fired is reactivated by refresh too)
      this.t.refresh();
      return;
    }
    if (this.t) clearTimeout(this.t);
    this.ms = ms;
    this.t = setTimeout(this.fn, Math.max(0, ms));
    this.t.unref();
  }

  stop(): void {
    if (!this.t) return;
    clearTimeout(this.t);
    this.t = undefined;
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

  timer(fn: () => void): Timer {
    let h: TimerHandle | undefined;
    return {
      arm: (ms) => {
        this.clear(h);
        h = this.set(ms, fn);
      },
      stop: () => {
        this.clear(h);
        h = undefined;
      },
    };
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
