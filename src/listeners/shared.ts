/**
 * Cluster-wide balancing state in shared memory: what lets every worker pick a server itself (no IPC per request)
 * while the balancing stays that of one node.
 *
 * Design. The primary creates a file in /dev/shm, opens it, unlinks it at once (so nothing is left behind, even after
 * a crash) and maps it MAP_SHARED through koffi; the workers map the same pages through `/proc/<primary>/fd/<fd>`.
 * `koffi.view(ptr, len)` gives an ArrayBuffer over the mapping and `Atomics` on an Int32Array over it are real
 * atomic instructions across processes. All state is 32-bit words (layout below):
 *   - per listener: the roundrobin / static-rr cursor (one `Atomics.add` per pick indexes the smooth weighted
 *     schedule of the candidates, so the rotation is the node's: 90 requests over 3 servers = 30/30/30 whatever
 *     worker takes them), the leastconn tie cursor, a version the primary bumps whenever a weight or a state changes
 *     (workers rebuild their candidate list and schedule when it moves), qcur and qmax of the waiters;
 *   - per server: current connections over all workers (leastconn, random(N), `first` and maxconn read them; a
 *     slot is taken with a compare-and-swap so maxconn holds across workers), the effective weight (0 = not usable:
 *     down, maint, drain, agent 0%) and the backup flag written by the primary's checks and slowstart ticks, lbtot,
 *     smax;
 *   - per (worker, server): the slots a worker holds, and per (worker, listener) the requests it has waiting, so the
 *     primary gives back what a worker that dies held.
 * Server and listener slots are allocated by the primary by identity (listener, server name, address), so a reload
 * keeps the counters of a server it keeps, and old-generation workers that still drain count on the same words.
 * When every candidate is full (maxconn), the request waits in its worker's FIFO (./picker.ts) and is retried on each
 * local release and on a short timer; qcur/maxqueue are counted cluster-wide. Waiters in different workers are not
 * served in strict global FIFO order (the one central queue could not be kept without a round trip).
 * If the shared memory cannot be set up, the workers fall back to asking the primary for every pick (./pool.ts).
 *
 * Measured (bench/listeners-quick.ts: wrk -t1 -c16, 4 s after a 1 s warm-up, nginx `return 200` backend, 2 tierlb
 * workers / haproxy nbthread 2, all on one shared 2-core VM with wrk and other jobs competing, so req/s swing ±50%
 * between runs; CPU ms per 1000 requests of the proxy's processes is the steadier figure; medians of 3 interleaved
 * rounds, 2026-11-22):
 *
 *   system                                   req/s   p99 ms   CPU ms / 1k req
 *   tierlb before (IPC pick per request)     ~0.5k–3.5k  20–150   610–690
 *   tierlb, picks through the primary         3298     19.4      397   (TIERLB_LISTENERS_CENTRAL=1, hot-path fixes in)
 *   tierlb, shared memory (this module)       5216     15.9      284
 *   http-proxy-3, one process, keep-alive     5942      5.3      150
 *   haproxy 2.6, nbthread 2                  30433      3.9       24
 *   nginx direct                             84956      2.3        -
 *
 * So the shared memory takes the primary off the request path (its CPU per request goes to ~0) and the rest of the
 * cost is the worker's own HTTP relaying (node:http + http-proxy-3 at the time; later undici, now its own client: see the end).
 *
 * Worker per-request path trimmed (./worker/: no promise per immediate pick, one ReqCtx and two shared response
 * listeners instead of five once() closures, http-proxy options and pick replies built once per server, connection
 * state on the socket instead of WeakMaps, the server timeout from the agent's socket timeout instead of a timer per
 * request). One worker against one http-proxy-3 process, same minutes, medians of 3 rounds (listeners-quick
 * --workers 1): before 220 vs 149 CPU ms / 1k req, after 187 vs 149 (worker user CPU 143–159 vs 112–120 ms / 1k;
 * system CPU equal, the primary ~1). With 2 workers on the 2 cores shared with wrk and nginx, the CPU per request
 * rises (fewer requests per event-loop turn, more context switches): listeners-quick 2 workers, 3 rounds, 2026-11-22:
 * tierlb 2873 req/s 287 ms/1k, http-proxy-3 4662 req/s 161, haproxy 22199 req/s 24.
 * `npm run bench:l7` (wrk -t1 -c64, 10 s, 2 workers / nbthread 2, load average ~4 from other jobs, 2026-11-22):
 *
 *   system        req/s   p99 ms   CPU ms / 1k req
 *   tierlb         6801    27.7      207
 *   http-proxy-3   6478    16.7      150
 *   haproxy       36323    36.5       21
 *   nginx direct  77821     3.4        -
 *
 * The HTTP relay then moved from http-proxy-3 to undici (./worker/http-relay.ts); `npm run bench:l7`, quiet machine, 2026-11-22:
 * tierlb 17210 req/s 83 ms/1k, http-proxy-3 6064 req/s 166, haproxy 45548 req/s 22, nginx direct 111808.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { mapShared } from '../sys/libc.js';
import { ListenersError } from './errors.js';

export const MAGIC = 0x544c4253; // 'TLBS'
export const MAX_LISTENERS = 256;
export const MAX_SERVERS = 4096;
/** workers alive at once: up to 256 configured, twice that while a reload replaces them */
export const MAX_WORKERS = 512;

const HDR = 16;
const LW = 8;
const SW = 8;
/** listener words */
export const L_CURSOR = 0;
export const L_VERSION = 1;
export const L_TIE = 2;
export const L_QCUR = 3;
export const L_QMAX = 4;
/** server words */
export const S_CONNS = 0;
export const S_WEIGHT = 1;
export const S_FLAGS = 2;
export const S_LBTOT = 3;
export const S_SMAX = 4;
export const F_BACKUP = 1;

/** header word: one past the highest worker row ever allocated (the rows a worker scans) */
export const H_ROWS = 1;

const L_BASE = HDR;
const S_BASE = L_BASE + MAX_LISTENERS * LW;
const H_BASE = S_BASE + MAX_SERVERS * SW;
const ROW = MAX_SERVERS + MAX_LISTENERS;
/** per worker: its heartbeat, then per accept slot (a bound address) its open connections there + 1 while it
 * accepts there, 0 when it does not (./worker/accept-share.ts) */
const A_BASE = H_BASE + MAX_WORKERS * ROW;
const AROW = 1 + MAX_LISTENERS;
export const WORDS = A_BASE + MAX_WORKERS * AROW;
export const BYTES = WORDS * 4;

/** Word offsets into the shared Int32Array (which may be any ArrayBuffer: tests use a plain or SharedArrayBuffer). */
export const lw = (l: number, k: number): number => L_BASE + l * LW + k;
export const sw = (s: number, k: number): number => S_BASE + s * SW + k;
export const hw = (w: number, s: number): number => H_BASE + w * ROW + s;
/** requests worker `w` has waiting in listener `l`'s queue */
export const hq = (w: number, l: number): number => H_BASE + w * ROW + MAX_SERVERS + l;
/** worker `w`'s heartbeat (Date.now() modulo 2^31, written while its event loop turns) */
export const hb = (w: number): number => A_BASE + w * AROW;
/** worker `w`'s connections on accept slot `a`, + 1 while it accepts there (0: it does not) */
export const aw = (w: number, a: number): number => A_BASE + w * AROW + 1 + a;

/** What a worker needs to find its listeners' words. */
export interface ShmInfo {
  /** a path the worker can open (/proc/<primary pid>/fd/<fd>) */
  path: string;
  /** this worker's row in the held table */
  worker: number;
  /** listener name → its slot and its servers' slots (in config order) */
  listeners: Record<string, { slot: number; servers: number[] }>;
  /** listener name → the accept slot of its bound address (the same for every generation while the address stays) */
  accept?: Record<string, number>;
}

export function newWords(): Int32Array {
  const w = new Int32Array(new SharedArrayBuffer(BYTES));
  w[0] = MAGIC;
  return w;
}

/** Map `BYTES` of the file open as `fd` MAP_SHARED, read-write. */
export function mapFd(fd: number): Int32Array {
  // the mapping lives as long as the process: the view never outlives it
  return new Int32Array(mapShared(fd, BYTES));
}

/** The primary's region: created in /dev/shm (or the tmp dir), unlinked at once, kept open for the workers. */
export function createRegion(): { words: Int32Array; path: string; fd: number } {
  const dir = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
  const file = path.join(dir, `tierlb-listeners-${process.pid}-${Date.now().toString(36)}`);
  const fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
  try {
    fs.ftruncateSync(fd, BYTES);
    const words = mapFd(fd);
    words[0] = MAGIC;
    return { words, fd, path: `/proc/${process.pid}/fd/${fd}` };
  } finally {
    fs.unlinkSync(file);
  }
}

/** A worker's view of the primary's region. */
export function openRegion(p: string): Int32Array {
  const fd = fs.openSync(p, 'r+');
  try {
    const words = mapFd(fd);
    if (Atomics.load(words, 0) !== MAGIC)
      throw new ListenersError(
        'ESHM_REGION',
        `${p}: not a tierlb listeners region (the primary that made it is gone?)`,
      );
    return words;
  } finally {
    // the mapping keeps the pages
    fs.closeSync(fd);
  }
}

/** Raise `words[i]` to at least `v`. */
export function atomicMax(words: Int32Array, i: number, v: number): void {
  let m = Atomics.load(words, i);
  while (v > m) {
    const prev = Atomics.compareExchange(words, i, m, v);
    if (prev === m) return;
    m = prev;
  }
}

/** The state the primary publishes for one server. */
export interface PublishedServer {
  readonly slot: number;
  weight: number;
  backup: boolean;
}

/** `key`'s slot in `slots` (MAX_LISTENERS of them), a new one the first time */
function slotOf(slots: Map<string, number>, key: string, what: string): number {
  let s = slots.get(key);
  if (s === undefined) {
    s = slots.size;
    if (s >= MAX_LISTENERS)
      throw new ListenersError(
        'ESHM_FULL',
        `more than ${MAX_LISTENERS} ${what} for the shared balancing region: use fewer, or TIERLB_LISTENERS_CENTRAL=1 (picks through the primary, no region)`,
      );
    slots.set(key, s);
  }
  return s;
}

/**
 * The primary's side: slot allocation by identity, publishing weights, reading the counters, giving back a dead
 * worker's slots. Pure over `words` (tests pass newWords()).
 */
export class Registry {
  private readonly listenerSlots = new Map<string, number>();
  /** bound address (`host:port`) → its accept slot (aw's `a`), kept while the primary lives */
  private readonly acceptSlots = new Map<string, number>();
  private readonly serverSlots = new Map<string, number>();
  private readonly freeServers: number[] = [];
  private nextServer = 0;
  /** slots of servers dropped by a reload: freed once no worker of an older generation lives and conns are 0 */
  private retired: { key: string; slot: number; gen: number }[] = [];
  private readonly workers = new Set<number>();

  constructor(readonly words: Int32Array) {}

  listenerSlot(name: string): number {
    return slotOf(this.listenerSlots, name, 'listeners');
  }

  /** A new worker's row and what it needs to find its words; a bound address (`host:port`) has the same accept
   * slot for every generation while the primary lives. */
  workerInfo(
    path: string,
    listeners: ShmInfo['listeners'],
    binds: readonly { name: string; host: string; port: number }[],
  ): ShmInfo {
    const accept = Object.fromEntries(
      binds.map((l) => [l.name, slotOf(this.acceptSlots, `${l.host}:${l.port}`, 'bound addresses')]),
    );
    return { path, worker: this.allocWorker(), listeners, accept };
  }

  /**
   * Slots for a new generation's servers; a server that was there before (same listener, name and address) keeps its.
   * `gen` = the last generation that used the slots of servers now dropped (they are freed once it is gone).
   */
  assign(gen: number, listeners: { name: string; servers: { name: string; host: string; port: number }[] }[]) {
    const keep = new Map<string, number>();
    const out: Record<string, { slot: number; servers: number[] }> = {};
    for (const l of listeners) {
      const servers = l.servers.map((s) => {
        const key = `${l.name}\0${s.name}\0${s.host}:${s.port}`;
        let slot = keep.get(key) ?? this.serverSlots.get(key);
        if (slot === undefined) {
          // back from a reload that was backed out, or re-added before its slot was freed
          const r = this.retired.findIndex((x) => x.key === key);
          if (r >= 0) slot = this.retired.splice(r, 1)[0]!.slot;
        }
        if (slot === undefined) slot = this.allocServer();
        keep.set(key, slot);
        return slot;
      });
      out[l.name] = { slot: this.listenerSlot(l.name), servers };
    }
    for (const [key, slot] of this.serverSlots) if (!keep.has(key)) this.retired.push({ key, slot, gen });
    this.serverSlots.clear();
    for (const [k, v] of keep) this.serverSlots.set(k, v);
    return out;
  }

  private allocServer(): number {
    const s = this.freeServers.pop() ?? this.nextServer++;
    if (s >= MAX_SERVERS)
      throw new ListenersError(
        'ESHM_FULL',
        `more than ${MAX_SERVERS} servers over all listeners for the shared balancing region: use fewer, or TIERLB_LISTENERS_CENTRAL=1 (picks through the primary, no region)`,
      );
    for (let k = 0; k < SW; k++) Atomics.store(this.words, sw(s, k), 0);
    return s;
  }

  /** Free retired server slots once `oldestGen` (the oldest generation with a live worker) is past them. */
  reap(oldestGen: number): void {
    this.retired = this.retired.filter((r) => {
      if (oldestGen <= r.gen || Atomics.load(this.words, sw(r.slot, S_CONNS)) > 0) return true;
      this.freeServers.push(r.slot);
      return false;
    });
  }

  /** Write weights and flags; bump the listener's version if anything changed. */
  publish(listenerSlot: number, servers: readonly PublishedServer[]): boolean {
    let changed = false;
    for (const s of servers) {
      const w = Math.max(0, Math.floor(s.weight));
      const f = s.backup ? F_BACKUP : 0;
      if (Atomics.load(this.words, sw(s.slot, S_WEIGHT)) !== w) {
        Atomics.store(this.words, sw(s.slot, S_WEIGHT), w);
        changed = true;
      }
      if (Atomics.load(this.words, sw(s.slot, S_FLAGS)) !== f) {
        Atomics.store(this.words, sw(s.slot, S_FLAGS), f);
        changed = true;
      }
    }
    if (changed) Atomics.add(this.words, lw(listenerSlot, L_VERSION), 1);
    return changed;
  }

  /** A held-table row for a new worker. */
  allocWorker(): number {
    for (let w = 0; w < MAX_WORKERS; w++) {
      if (this.workers.has(w)) continue;
      this.workers.add(w);
      for (let k = 0; k < AROW; k++) Atomics.store(this.words, hb(w) + k, 0);
      atomicMax(this.words, H_ROWS, w + 1);
      return w;
    }
    throw new ListenersError(
      'ESHM_FULL',
      `more than ${MAX_WORKERS} workers at once: lower listeners.workers (or wait for a reload's old workers to drain)`,
    );
  }

  /** A worker is gone: give back the server slots it held and forget its waiters. Returns how many slots. */
  reclaim(w: number): number {
    let n = 0;
    for (let s = 0; s < this.nextServer; s++) {
      const h = Atomics.exchange(this.words, hw(w, s), 0);
      if (h > 0) {
        Atomics.sub(this.words, sw(s, S_CONNS), h);
        n += h;
      }
    }
    for (let l = 0; l < this.listenerSlots.size; l++) {
      const q = Atomics.exchange(this.words, hq(w, l), 0);
      if (q > 0) Atomics.sub(this.words, lw(l, L_QCUR), q);
    }
    // it accepts nowhere any more
    for (let k = 0; k < AROW; k++) Atomics.store(this.words, hb(w) + k, 0);
    this.workers.delete(w);
    return n;
  }

  server(slot: number): { conns: number; lbtot: number; smax: number } {
    return {
      conns: Atomics.load(this.words, sw(slot, S_CONNS)),
      lbtot: Atomics.load(this.words, sw(slot, S_LBTOT)),
      smax: Atomics.load(this.words, sw(slot, S_SMAX)),
    };
  }

  queue(listenerSlot: number): { qcur: number; qmax: number } {
    return {
      qcur: Atomics.load(this.words, lw(listenerSlot, L_QCUR)),
      qmax: Atomics.load(this.words, lw(listenerSlot, L_QMAX)),
    };
  }
}
