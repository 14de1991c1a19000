/** Time source injected into the engine so every timeout can be tested without sleeping. Milliseconds. */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/**
 * CLOCK_MONOTONIC in ms (process.hrtime is CLOCK_MONOTONIC on Linux): never jumps with the wall clock, so timeouts
 * measured on it are exact; the same clock as the kernel's bpf_ktime_get_ns(), so the fast path's last-seen times
 * (ns / 1e6) compare with it directly.
 */
export const monotonicClock: Clock = { now: () => Number(process.hrtime.bigint() / 1000n) / 1000 };

/** A clock tests drive by hand. */
export class ManualClock implements Clock {
  constructor(private t = 0) {}
  now(): number {
    return this.t;
  }
  advance(ms: number): void {
    this.t += ms;
  }
  set(ms: number): void {
    this.t = ms;
  }
}
