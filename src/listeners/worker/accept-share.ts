/**
 * Connections spread over the workers by their load, as HAProxy hands a new connection to its least loaded thread.
 * Every worker accepts on the primary's one listening socket (../acceptor.ts), so whoever wakes first takes a
 * connection: `wrk -c 64` against two workers left them 47 and 17 connections (the one with 47 at 100% CPU, the
 * other half idle, p99 twice that of an even split).
 *
 * Each worker publishes in the node's shared memory (../shared.ts) its open connections per bound address, and a
 * heartbeat. After an accept, a worker holding more than its share (at least the connections of the least loaded
 * worker accepting there, plus a slack of 2 and 1/8 of those) stops accepting: it closes its own descriptor of the
 * listening socket (the socket stays open in the primary and the other workers) and listens on a duplicate again
 * once it is back within its share, looked at every RECHECK_MS and when one of its connections closes. Two workers
 * cannot both be over their shares (the slack is over 0), so when all have stopped, one starts again within
 * RECHECK_MS. A worker whose heartbeat is older than STALE_MS (stopped, or stuck in a long turn) does not count, so
 * no connection waits for a worker that cannot take it.
 */
import type net from 'node:net';
import { log } from '../../common/log.js';
import { close, dupCloexec, fdOf } from '../../sys/libc.js';
import { createServerHandle } from '../acceptor.js';
import { aw, H_ROWS, hb } from '../shared.js';

/** how often a worker writes its heartbeat */
export const HEARTBEAT_MS = 100;
/** a heartbeat older than this: the worker does not count */
export const STALE_MS = 500;
/** how often a worker that stopped accepting looks again */
export const RECHECK_MS = 2;

const MOD = 0x80000000;
/** Date.now() modulo 2^31: one word */
const stamp = (now: number): number => now % MOD;

/** the slack over the least loaded worker: 2, and 1/8 of its connections */
export const slack = (least: number): number => 2 + (least >> 3);

let beating = false;

/** Write this worker's heartbeat now and every HEARTBEAT_MS (once per process). */
export function startHeartbeat(words: Int32Array, worker: number, now: () => number = Date.now): void {
  if (beating) return;
  beating = true;
  const beat = () => Atomics.store(words, hb(worker), stamp(now()));
  beat();
  setInterval(beat, HEARTBEAT_MS).unref();
}

/** One listener's share of the connections on its bound address, in one worker. */
export class AcceptShare {
  /** this worker's connections there */
  private conns = 0;
  private accepting = false;

  constructor(
    private readonly words: Int32Array,
    private readonly worker: number,
    /** the accept slot of the listener's bound address */
    private readonly slot: number,
    private readonly now: () => number = Date.now,
  ) {}

  private publish(): void {
    Atomics.store(this.words, aw(this.worker, this.slot), this.accepting ? this.conns + 1 : 0);
  }

  /** this worker accepts there (true) or stopped for good: draining (false) */
  setAccepting(on: boolean): void {
    this.accepting = on;
    this.publish();
  }

  opened(): void {
    this.conns++;
    this.publish();
  }

  closed(): void {
    this.conns--;
    this.publish();
  }

  /** The fewest connections of another live worker accepting there (undefined: there is none). */
  private least(): number | undefined {
    const words = this.words;
    const rows = Atomics.load(words, H_ROWS);
    const now = stamp(this.now());
    let least: number | undefined;
    for (let w = 0; w < rows; w++) {
      if (w === this.worker) continue;
      const v = Atomics.load(words, aw(w, this.slot));
      if (v === 0) continue;
      // (modulo 2^31: a heartbeat from before a wrap is still recent)
      if ((now - Atomics.load(words, hb(w)) + MOD) % MOD > STALE_MS) continue;
      if (least === undefined || v - 1 < least) least = v - 1;
    }
    return least;
  }

  /** How many more connections this worker may take now, at most `max`. */
  room(max: number): number {
    const least = this.least();
    if (least === undefined) return max;
    return Math.max(0, Math.min(max, least + slack(least) - this.conns));
  }

  /** this worker holds more than its share: it should stop accepting for now */
  over(): boolean {
    return this.room(1) === 0;
  }
}

/**
 * A listener's accepting by its share: stop (close this worker's descriptor of the listening socket) when over it,
 * listen again on a duplicate of the descriptor once back within it.
 */
export class ShareGate {
  /** a duplicate of the listening socket's descriptor, kept to listen again (-1: none, the gate does nothing) */
  private spare = -1;
  private stopped = false;
  private recheck: NodeJS.Timeout | undefined = undefined;
  private done = false;

  constructor(
    private readonly share: AcceptShare,
    private readonly server: net.Server,
    private readonly backlog: number,
  ) {}

  /** The server listens: keep a duplicate of its descriptor and accept. */
  start(): void {
    const fd = fdOf(this.server);
    const copy = fd < 0 ? -1 : dupCloexec(fd);
    if (copy < 0) {
      log.warn({ errno: -copy }, 'listeners: no spare listening descriptor: connections are not spread by load');
      return;
    }
    this.spare = copy;
    this.share.setAccepting(true);
  }

  /** How many more connections to take in this wakeup, at most `max`. */
  room(max: number): number {
    return this.spare < 0 ? max : this.share.room(max);
  }

  /** After an accept: stop accepting while over the share. */
  check(): void {
    if (this.spare < 0 || this.stopped || this.done || !this.share.over()) return;
    this.stopped = true;
    this.server.close();
    this.recheck = setInterval(() => this.maybeResume(), RECHECK_MS);
    this.recheck.unref();
  }

  /** One of this worker's connections there opened. */
  opened(): void {
    this.share.opened();
  }

  /** One closed: accept again if that brings this worker back within its share. */
  closed(): void {
    this.share.closed();
    this.maybeResume();
  }

  /** (on a close, and every RECHECK_MS while stopped) accept again once within the share */
  private maybeResume(): void {
    if (!this.stopped || this.done || this.share.over()) return;
    this.stopped = false;
    clearInterval(this.recheck);
    this.recheck = undefined;
    const copy = dupCloexec(this.spare);
    // (the gate exists only with shared accept, which needs Node's createServerHandle)
    const handle = copy < 0 ? copy : createServerHandle!('', 0, 4, copy, 0);
    if (typeof handle === 'number') {
      if (copy >= 0) close(copy);
      log.error({ errno: -handle }, 'listeners: could not listen again after a pause: this worker no longer accepts');
      this.stop();
      return;
    }
    this.server.listen(handle as unknown as net.Server, this.backlog);
  }

  /** Draining: no more accepting, the spare descriptor closed. */
  stop(): void {
    if (this.done) return;
    this.done = true;
    clearInterval(this.recheck);
    this.share.setAccepting(false);
    if (this.spare >= 0) close(this.spare);
    this.spare = -1;
  }
}
