/**
 * Timers driven by an injected clock: whoever waits schedules through this interface, so tests drive a ManualTimers
 * (advance the ManualClock and run what fell due) and nothing sleeps. Three shapes:
 *  - `set(ms, fn)`: a one-shot timer (checkers, sync, a worker's drain deadline);
 *  - `timer(fn)`: one re-armable timer, for a hot path that re-arms the same wait again and again: re-arming with the
 *    same delay refreshes the timer it has, it allocates nothing;
 *  - `arm(d, ms)` on a DeadlineTimers: a deadline whose bookkeeping lives on the waiting object itself, for many
 *    long-lived waiters (a listener's client connections): RealTimers keeps one list per delay, in due order, and
 *    one setTimeout per list, so a waiter costs its four fields, no Timeout or closure of its own.
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

/**
 * An object that waits on a DeadlineTimers (`arm`): `deadline()` is called when the wait is over. The `dl*` fields
 * are the timers' own bookkeeping (start them undefined / 0; nothing else reads or writes them).
 */
export interface Deadline {
  deadline(): void;
  dlNext: Deadline | undefined;
  dlPrev: Deadline | undefined;
  dlDue: number;
  /** the list it is in (RealTimers) or its handle (ManualTimers); undefined: not armed */
  dlIn: unknown;
}

/** Timers that also run deadlines (`arm`), allocating nothing per wait. */
export interface DeadlineTimers extends Timers {
  /** (Re)start `d`'s wait: `d.deadline()` runs `ms` milliseconds from now, unless armed again or disarmed before. */
  arm(d: Deadline, ms: number): void;
  disarm(d: Deadline): void;
}

/** The deadlines of one delay (RealTimers): armed in due order, so a FIFO list and one timer for its head. */
class DeadlineList {
  head: Deadline | undefined = undefined;
  tail: Deadline | undefined = undefined;
  /** the timer for the head's deadline (or an earlier one: it finds nothing due and sets the next) */
  private t: NodeJS.Timeout | undefined = undefined;
  private readonly run = () => this.expire();

  constructor(readonly ms: number) {}

  push(d: Deadline, now: number): void {
    // (whole milliseconds, rounded up: a small integer, not a heap number, on the waiter)
    d.dlDue = Math.ceil(now + this.ms);
    d.dlIn = this;
    d.dlNext = undefined;
    d.dlPrev = this.tail;
    if (this.tail) this.tail.dlNext = d;
    else this.head = d;
    this.tail = d;
    if (!this.t) this.schedule(now);
  }

  remove(d: Deadline): void {
    const { dlPrev: p, dlNext: n } = d;
    if (p) p.dlNext = n;
    else this.head = n;
    if (n) n.dlPrev = p;
    else this.tail = p;
    d.dlNext = undefined;
    d.dlPrev = undefined;
    d.dlIn = undefined;
    // (an emptied list keeps its timer: it finds nothing due and stops)
  }

  /** the timer for the head (none when empty) */
  private schedule(now: number): void {
    const h = this.head;
    if (!h) return;
    this.t = setTimeout(this.run, Math.max(1, Math.ceil(h.dlDue - now)));
    this.t.unref();
  }

  private expire(): void {
    this.t = undefined;
    const now = performance.now();
    for (let d = this.head; d && d.dlDue <= now; d = this.head) {
      this.remove(d);
      d.deadline();
    }
    // (deadline() may have armed a waiter again, here or in another list: the timer exists then)
    if (!this.t) this.schedule(now);
  }
}

/** setTimeout-backed timers on the system clock (unref'd: a pending timer never keeps a process alive). */
export class RealTimers implements DeadlineTimers {
  readonly clock: Clock = systemClock;
  private next = 1;
  private readonly live = new Map<number, NodeJS.Timeout>();
  /** deadline lists by delay */
  private readonly lists = new Map<number, DeadlineList>();

  arm(d: Deadline, ms: number): void {
    const was = d.dlIn as DeadlineList | undefined;
    if (was) was.remove(d);
    const delay = Math.max(0, ms);
    let l = was?.ms === delay ? was : this.lists.get(delay);
    if (!l) {
      l = new DeadlineList(delay);
      this.lists.set(delay, l);
    }
    // (monotonic: the wall clock may jump, a deadline may not)
    l.push(d, performance.now());
  }

  disarm(d: Deadline): void {
    (d.dlIn as DeadlineList | undefined)?.remove(d);
  }

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
export class ManualTimers implements DeadlineTimers {
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

  arm(d: Deadline, ms: number): void {
    this.clear(d.dlIn as TimerHandle | undefined);
    const h = this.set(ms, () => {
      if (d.dlIn !== h) return;
      d.dlIn = undefined;
      d.deadline();
    });
    d.dlIn = h;
  }

  disarm(d: Deadline): void {
    this.clear(d.dlIn as TimerHandle | undefined);
    d.dlIn = undefined;
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
