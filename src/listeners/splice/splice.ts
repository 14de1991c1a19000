/**
 * TCP-mode splice: once a client/server socket pair is established and quiescent, the kernel moves its bytes (an
 * sk_skb verdict program, ./splice.bpf.c, compiled by scripts/build-bpf.sh into dist/listeners/splice/), while the
 * proxy keeps both sockets: it still reads them (so it sees a FIN, an RST or an error: the program redirects every
 * byte, so those reads only ever return EOF or an error), forwards a FIN with shutdown() once the bytes before it are
 * sent, runs the timeouts on the kernel's byte counters, counts the stats from them, and closes.
 *
 * One program and its maps per worker process (getSplicer), loaded on first use; nothing is pinned, they go with the
 * process. The kernel removes a closed socket from the socket hashes by itself; the `pairs` entries are the
 * proxy's, deleted when both sockets have closed.
 *
 * Ordering (DEVELOPERS.md, "TCP-mode splice"): a pair is inserted only when Node holds none of its bytes (nothing
 * buffered unread, nothing pending in a write queue) and no skb in a receive queue is half read (the kernel would
 * redirect the whole skb again: a socket Node has read from must have an empty receive queue). Bytes already in a socket's kernel receive queue when it is
 * added to the map are not redirected until the socket's next data_ready (measured on 6.18: they wait, in order,
 * for the next segment, and would stall a request waiting for its answer), so after the insertion the proxy sets
 * SO_RCVLOWAT, which runs data_ready under the socket lock: the queued bytes go through the program at once, before
 * any later segment.
 */
import type net from 'node:net';
import { TierlbError } from '../../common/errors.js';
import { log } from '../../common/log.js';
import { BPF_SK_SKB_VERDICT, BpfError, type BpfMap, BpfObject, builtObjectPath, possibleCpus } from '../../sys/bpf.js';
import { IPPROTO_TCP, SIOCINQ, SIOCOUTQ, SO_COOKIE, SO_RCVLOWAT, SOL_SOCKET } from '../../sys/constants.js';
import { fdOf, getsockoptBuf, ioctlInt, setsockoptInt } from '../../sys/libc.js';

export type SpliceMode = 'auto' | 'on' | 'off';

export type SpliceErrorCode =
  /** `splice: on` but the program cannot be loaded (no capability, no object, no kernel support) */
  'ESPLICE_UNAVAILABLE';

export class SpliceError extends TierlbError {
  constructor(
    override readonly code: SpliceErrorCode,
    message: string,
  ) {
    super(code, message);
    this.name = 'SpliceError';
  }
}

export const PROG_NAME = 'tierlb_splice';
/** per-CPU counter indexes of splice.bpf.c (enum C_*), in order */
export const COUNTER_NAMES = ['redirected', 'noPair', 'noPeer', 'fin'] as const;
export type SpliceCounter = (typeof COUNTER_NAMES)[number];

/** the socket hashes' size (MAX_SOCKS of splice.bpf.c): two sockets per pair */
const MAX_PAIRS = 65536 / 2;
const TCP_INFO = 11;
const TCP_INFO_SIZE = 232;
/** struct tcp_info: tcpi_bytes_acked (u64) */
const TCPI_BYTES_ACKED = 120;

/** The object next to this module (dist/) or, under tsx, the one npm run build put in dist/. */
export function defaultObjectPath(): string {
  return builtObjectPath('TIERLB_SPLICE_OBJECT', import.meta.url, 'listeners/splice', 'splice.bpf.o');
}

function cookieOf(fd: number): Buffer {
  const b = Buffer.alloc(8);
  getsockoptBuf(fd, SOL_SOCKET, SO_COOKIE, b);
  return b;
}

const info = Buffer.alloc(TCP_INFO_SIZE);
const EOPNOTSUPP = 95;
const TCP_ESTABLISHED = 1;

/** tcpi_state is TCP_ESTABLISHED */
function established(fd: number): boolean {
  getsockoptBuf(fd, IPPROTO_TCP, TCP_INFO, info);
  return info[0] === TCP_ESTABLISHED;
}

/** Bytes this socket has handed to TCP since it opened: acked, plus in the send queue (unacked or unsent). */
function handedBytes(fd: number): number {
  getsockoptBuf(fd, IPPROTO_TCP, TCP_INFO, info);
  return Number(info.readBigUInt64LE(TCPI_BYTES_ACKED)) + ioctlInt(fd, SIOCOUTQ, 'SIOCOUTQ');
}

/** Node never read from the socket, or nothing is left in its receive queue (so no skb there is half read). */
function pristine(s: net.Socket, fd: number): boolean {
  return s.bytesRead === 0 || ioctlInt(fd, SIOCINQ, 'SIOCINQ') === 0;
}

/** One spliced pair: the kernel's byte counts, the drain check before a FIN is forwarded, the release. */
export class SplicedPair {
  private closes = 0;
  private final: [number, number] | undefined;
  private readonly value = Buffer.alloc(24);
  /** what each socket had handed to TCP when the pair was spliced */
  private readonly handed0: [number, number];

  constructor(
    private readonly splicer: Splicer,
    readonly a: net.Socket,
    readonly b: net.Socket,
    private readonly fds: [number, number],
    private readonly keys: [Buffer, Buffer],
  ) {
    this.handed0 = [handedBytes(fds[0]), handedBytes(fds[1])];
  }

  /** Bytes the kernel carried: [a → b, b → a] (final once both sockets closed). */
  bytes(): [number, number] {
    if (this.final) return this.final;
    return [this.read(0), this.read(1)];
  }

  /** the sum of both directions: what a timer compares to tell a pair busy in the kernel from an idle one */
  total(): number {
    const [x, y] = this.bytes();
    return x + y;
  }

  private read(i: 0 | 1): number {
    return this.splicer.pairs.lookup(this.keys[i], this.value) ? Number(this.value.readBigUInt64LE(8)) : 0;
  }

  /**
   * Whether every byte the kernel redirected towards socket `to` (0: a, 1: b) has been handed to its TCP, so a
   * shutdown() now sends the FIN after them (redirected bytes wait in the peer's psock queue for a kernel worker).
   */
  drained(to: 0 | 1): boolean {
    const fd = this.fds[to];
    const into = this.read(to === 0 ? 1 : 0);
    try {
      return handedBytes(fd) - this.handed0[to] >= into;
    } catch {
      return true; // the socket is gone: nothing more will be sent
    }
  }

  /** One of the two sockets closed; at the second, the counts are kept and the entries deleted. */
  closed(): void {
    if (++this.closes < 2 || this.final) return;
    this.final = [this.read(0), this.read(1)];
    this.splicer.release(this.keys);
  }
}

/** The worker's splice program and maps. */
export class Splicer {
  readonly pairs: BpfMap;
  private readonly targets: BpfMap;
  private readonly sources: BpfMap;
  private readonly counters: BpfMap;
  /** pairs spliced since the start (this process), and those whose entries are still in the maps */
  splicedTotal = 0;
  live = 0;

  private constructor(private readonly obj: BpfObject) {
    this.targets = obj.map('targets');
    this.sources = obj.map('sources');
    this.pairs = obj.map('pairs');
    this.counters = obj.map('counters');
    obj.attachToMap(PROG_NAME, this.sources, BPF_SK_SKB_VERDICT);
  }

  /** Load and attach; throws BpfError (BPF_PERM, BPF_NO_OBJECT, BPF_LOAD, BPF_ATTACH, BPF_NO_LIBBPF). */
  static open(path = defaultObjectPath()): Splicer {
    const obj = BpfObject.load(path);
    try {
      return new Splicer(obj);
    } catch (e) {
      obj.close();
      throw e;
    }
  }

  /**
   * Splice `a` and `b` now, if Node holds none of their bytes (nothing buffered unread, nothing waiting to be
   * written); undefined otherwise, or when either is not a plain TCP socket. The caller has stopped reading both in
   * this tick (Node reads only between ticks).
   */
  splice(a: net.Socket, b: net.Socket): SplicedPair | undefined {
    if (a.writableLength || b.writableLength || a.readableLength || b.readableLength) return undefined;
    if (a.destroyed || b.destroyed || a.writableEnded || b.writableEnded) return undefined;
    // (a full map would fail half-way through an insertion)
    if (this.live >= MAX_PAIRS) return undefined;
    const fa = fdOf(a);
    const fb = fdOf(b);
    if (fa < 0 || fb < 0) return undefined;
    // bytes in a receive queue are redirected from the start of its first skb, even the part recv() took already
    // (6.18: tcp_read_skb hands whole skbs to the program): a socket Node has read from is spliced only when its
    // queue is empty, so no skb of it is half read
    if (!pristine(a, fa) || !pristine(b, fb)) return undefined;
    // (only an established socket can go into a sockmap: one that got a FIN already stays in Node)
    if (!established(fa) || !established(fb)) return undefined;
    const ka = cookieOf(fa);
    const kb = cookieOf(fb);
    // order (splice.bpf.c): both targets, both entries, then the sources; a FIN that comes meanwhile makes an
    // insertion fail with EOPNOTSUPP: before the first source nothing is in the kernel yet, so it is undone
    const undo = (e: unknown, targets: Buffer[], entries: boolean): undefined => {
      for (const k of targets) this.targets.delete(k);
      if (entries) this.release([ka, kb], false);
      if (e instanceof BpfError && e.errno === EOPNOTSUPP) return undefined;
      throw e;
    };
    try {
      this.targets.updateSocket(ka, fa);
    } catch (e) {
      return undo(e, [], false);
    }
    try {
      this.targets.updateSocket(kb, fb);
    } catch (e) {
      return undo(e, [ka], false);
    }
    const pair = new SplicedPair(this, a, b, [fa, fb], [ka, kb]);
    this.pairs.update(ka, Buffer.concat([kb, Buffer.alloc(16)]));
    this.pairs.update(kb, Buffer.concat([ka, Buffer.alloc(16)]));
    try {
      this.sources.updateSocket(ka, fa);
    } catch (e) {
      return undo(e, [ka, kb], true);
    }
    // from here a's bytes are the kernel's: a pair whose b cannot follow (its FIN came) is spliced one way, and
    // b's bytes (then its EOF) stay in Node, which alone writes to a
    try {
      this.sources.updateSocket(kb, fb);
      setsockoptInt(fb, SOL_SOCKET, SO_RCVLOWAT, 1, 'SO_RCVLOWAT');
    } catch (e) {
      if (!(e instanceof BpfError && e.errno === EOPNOTSUPP))
        log.warn({ err: (e as Error).message }, 'TCP splice: one way only');
    }
    // bytes queued before the insertion: through the program now (SO_RCVLOWAT runs data_ready)
    setsockoptInt(fa, SOL_SOCKET, SO_RCVLOWAT, 1, 'SO_RCVLOWAT');
    this.splicedTotal++;
    this.live++;
    return pair;
  }

  release(keys: [Buffer, Buffer], counted = true): void {
    if (counted) this.live--;
    for (const k of keys) {
      try {
        this.pairs.delete(k);
      } catch {
        // (a map error here would only leak an entry)
      }
    }
  }

  /** The program's counters, summed over CPUs. */
  programCounters(): Record<SpliceCounter, number> {
    const n = possibleCpus();
    const v = Buffer.alloc(8 * n);
    const out = {} as Record<SpliceCounter, number>;
    COUNTER_NAMES.forEach((name, i) => {
      const k = Buffer.alloc(4);
      k.writeUInt32LE(i, 0);
      let sum = 0;
      if (this.counters.lookup(k, v)) for (let c = 0; c < n; c++) sum += Number(v.readBigUInt64LE(8 * c));
      out[name] = sum;
    });
    return out;
  }

  close(): void {
    this.obj.close();
  }
}

let shared: Splicer | undefined;
let failure: Error | undefined;
let warned = false;

/**
 * The worker's splicer for a listener's `splice` mode: undefined for `off`, and for `auto` when it cannot be loaded
 * (logged once per process: the listener relays in Node). For `on`, a failure throws SpliceError naming the fix.
 */
export function getSplicer(mode: SpliceMode, listener: string): Splicer | undefined {
  if (mode === 'off') return undefined;
  if (!shared && !failure) {
    try {
      shared = Splicer.open();
    } catch (e) {
      failure = e as Error;
    }
  }
  if (shared) return shared;
  if (mode === 'on')
    throw new SpliceError(
      'ESPLICE_UNAVAILABLE',
      `listener ${listener}: splice: on, but the in-kernel splice cannot be loaded (${failure?.message}); fix: run the listeners as root (or with CAP_BPF and CAP_NET_ADMIN), run npm run build, or set splice: auto`,
    );
  if (!warned) {
    warned = true;
    log.warn(
      { listener, err: failure?.message },
      'TCP splice unavailable: relaying in Node (the in-kernel splice needs root, or CAP_BPF and CAP_NET_ADMIN, and npm run build)',
    );
  }
  return undefined;
}

/** the process's splicer, if one was loaded (for stats) */
export function loadedSplicer(): Splicer | undefined {
  return shared;
}

/** tests: forget a failed load (e.g. after dropping privileges), or close the loaded one */
export function resetSplicer(): void {
  shared?.close();
  shared = undefined;
  failure = undefined;
  warned = false;
}
