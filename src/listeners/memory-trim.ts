/**
 * Memory back after a burst, as HAProxy trims its pools (`malloc_trim`, off with its `no-memory-trimming`): a Node
 * process that opened thousands of connections holds tens of MiB more than they need for a while (V8's young
 * generation grown to its maximum, the burst's garbage not yet collected, freed malloc arenas kept), and V8 gives it
 * back only at its own moments. Here, once the process has been quiet (event loop busy under 1% of the time) for
 * `quietMs` and its RSS grew by `growth` bytes since the last trim (or never was trimmed), it runs V8's full garbage
 * collection twice and then `malloc_trim(0)`. It never runs under load: a full collection of a large heap pauses the
 * loop for milliseconds (V8's own memory reducer, which this takes ahead of, pauses it the same way).
 */
import { performance } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { log } from '../common/log.js';
import { mallocTrim } from '../sys/libc.js';

export interface MemoryTrimOptions {
  /** how often the loop's utilisation is sampled (ms) */
  everyMs?: number;
  /** how long the loop must have been quiet (ms) */
  quietMs?: number;
  /** RSS growth since the last trim (bytes) that makes a trim worth it */
  growth?: number;
  /** the loop is quiet below this utilisation (0..1) */
  quietBelow?: number;
}

export interface MemoryTrim {
  /** trims done */
  trims(): number;
  stop(): void;
}

/**
 * V8's full collection (the function `--expose-gc` gives, taken at run time), twice: the first frees the garbage,
 * the second releases the pages it emptied (measured on Node 20: RSS 148 → 148 MiB after one, → 81 after two), or
 * undefined when V8 refuses.
 */
function collector(): (() => void) | undefined {
  try {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as unknown;
    if (typeof gc !== 'function') return undefined;
    return () => {
      (gc as () => void)();
      (gc as () => void)();
    };
  } catch {
    return undefined;
  }
}

/** glibc's malloc_trim, or undefined when libc cannot be called */
function mallocTrimmer(): (() => void) | undefined {
  try {
    mallocTrim();
    return mallocTrim;
  } catch {
    return undefined;
  }
}

/** Start trimming this process's memory when it is quiet after growing; the timer does not keep the process up. */
export function startMemoryTrim(opts: MemoryTrimOptions = {}): MemoryTrim {
  const every = opts.everyMs ?? 2000;
  const quietMs = opts.quietMs ?? 6000;
  const growth = opts.growth ?? 4 * 1024 * 1024;
  const quietBelow = opts.quietBelow ?? 0.01;
  const gc = collector();
  const trim = mallocTrimmer();
  let trims = 0;
  // (0: the first quiet spell trims, taking the start-up's garbage)
  let floor = 0;
  let quietFor = 0;
  let last = performance.eventLoopUtilization();
  const timer = setInterval(() => {
    const now = performance.eventLoopUtilization();
    const busy = performance.eventLoopUtilization(now, last).utilization;
    last = now;
    quietFor = busy < quietBelow ? quietFor + every : 0;
    const rss = process.memoryUsage.rss();
    if (rss < floor) floor = rss;
    if (quietFor < quietMs || rss - floor < growth || (!gc && !trim)) return;
    gc?.();
    trim?.();
    const after = process.memoryUsage.rss();
    trims++;
    floor = after;
    quietFor = 0;
    log.debug({ rssBefore: rss, rssAfter: after }, 'memory trimmed after a quiet spell');
  }, every);
  timer.unref();
  return {
    trims: () => trims,
    stop: () => clearInterval(timer),
  };
}
