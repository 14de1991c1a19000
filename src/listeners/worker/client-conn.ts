/**
 * A client connection as an HTTP listener keeps it: who the client is (the PROXY header's source when accept_proxy,
 * else the socket's peer), its requests in flight, its send-proxy server connections, and the wait for a request's
 * headers on the injected timers (HAProxy's `timeout http-request` and `timeout http-keep-alive`):
 *
 *  - the first request has `timeout http-request`; after a response the idle wait is `timeout http-keep-alive`
 *    (http-request when that is 0); if a request has begun when the keep-alive wait ends, that request gets
 *    http-request from then on;
 *  - nothing received when a wait ends: a silent close (an idle keep-alive connection); part of a request: 408;
 *  - a wait of 0 is no wait (`timeout client`, the socket's inactivity timeout, still applies, as in HAProxy);
 *  - on the hot path (keep-alive, one request after another) the connection's one deadline is only re-armed; the
 *    deadline's bookkeeping is fields of the connection itself (../../common/timers.ts `arm`): an idle connection
 *    holds no Timeout or closure of its own.
 */
import type { Deadline, DeadlineTimers, TimerHandle } from '../../common/timers.js';
import type { Timeouts } from '../config.js';
import { errorResponse } from './error-pages.js';
import type { ServerDispatcher } from './http-relay.js';

/** The client as the listener sees it. */
export interface ClientInfo {
  src: string;
  srcPort: number;
  dst: string;
  dstPort: number;
}

/** a client's addresses as its socket (a net.Socket) has them */
export function peerOf(sock: {
  remoteAddress?: string;
  remotePort?: number;
  localAddress?: string;
  localPort?: number;
}): ClientInfo {
  return {
    src: sock.remoteAddress ?? '',
    srcPort: sock.remotePort ?? 0,
    dst: sock.localAddress ?? '',
    dstPort: sock.localPort ?? 0,
  };
}

/** What the waits use of the client's socket (a net.Socket; tests give a fake). */
export interface WaitSocket {
  readonly bytesRead: number;
  readonly destroyed: boolean;
  destroy(): void;
  end(data: string): void;
}

/** What a listener gives its connections: timers, timeouts, and where a 408 is counted. */
export interface ConnContext {
  readonly timers: DeadlineTimers;
  readonly timeout: Timeouts;
  /** a request was cut by timeout http-request (the 408 is being sent) */
  requestTimedOut(): void;
}

/** how long a 408 is given to leave before the connection is destroyed */
export const LINGER_MS = 1000;

export class ClientConn implements Deadline {
  /** requests (or an upgrade) in flight: no wait runs meanwhile */
  busy = 0;
  /** send-proxy servers: this client's own server connections (closed with the client's) */
  own: Map<string, ServerDispatcher> | undefined = undefined;
  /** a wait is on */
  private armed = false;
  /** bytes read when the wait began */
  private before = 0;
  /** the wait is the keep-alive one (else a request's) */
  private idle = false;
  private linger: TimerHandle | undefined = undefined;
  /** the wait's deadline (the timers' bookkeeping) */
  dlNext: Deadline | undefined = undefined;
  dlPrev: Deadline | undefined = undefined;
  dlDue = 0;
  dlIn: unknown = undefined;
  /** the client (undefined: the socket's peer, read when first asked for) */
  private peer: ClientInfo | undefined;

  constructor(
    info: ClientInfo | undefined,
    protected readonly sock: WaitSocket,
    protected readonly cx: ConnContext,
  ) {
    this.peer = info;
  }

  /** who the client is (the socket's addresses are read on first use: an idle connection never asks) */
  get info(): ClientInfo {
    return (this.peer ??= this.peerInfo());
  }

  /** the client as the socket knows it (the default: nothing known) */
  protected peerInfo(): ClientInfo {
    return { src: '', srcPort: 0, dst: '', dstPort: 0 };
  }

  /** Wait for a request's headers: the first (afterResponse false) or the next one on a kept-alive connection. */
  awaitRequest(afterResponse: boolean): void {
    const t = this.cx.timeout;
    const idle = afterResponse && t.httpKeepAlive > 0;
    this.before = this.sock.bytesRead;
    this.idle = idle;
    this.startWait(idle ? t.httpKeepAlive : t.httpRequest);
  }

  /** A request's headers are in (or the connection was upgraded): no wait until its response. */
  stopWait(): void {
    this.armed = false;
  }

  /** The connection closed: nothing of it waits any more. */
  closed(): void {
    this.busy = 0;
    this.armed = false;
    this.cx.timers.disarm(this);
    this.cx.timers.clear(this.linger);
    if (this.own) for (const c of this.own.values()) c.destroy().catch(() => {});
  }

  /** a request was cut by its wait (408 follows): nothing more of the connection is read */
  protected timedOut(): void {}

  private startWait(ms: number): void {
    this.armed = ms > 0;
    if (ms <= 0) return;
    this.cx.timers.arm(this, ms);
  }

  /** the wait is over (../../common/timers.ts Deadline) */
  deadline(): void {
    const sock = this.sock;
    if (!this.armed || this.busy > 0 || sock.destroyed) return;
    if (sock.bytesRead === this.before) {
      sock.destroy();
      return;
    }
    if (this.idle) {
      // a request began during the keep-alive wait: from now on it has timeout http-request
      this.idle = false;
      this.startWait(this.cx.timeout.httpRequest);
      return;
    }
    this.armed = false;
    this.cx.requestTimedOut();
    this.timedOut();
    sock.end(errorResponse(408));
    this.linger = this.cx.timers.set(LINGER_MS, () => sock.destroy());
  }
}

/** where a listener keeps the ClientConn of a socket */
const CONN = Symbol('tierlb.conn');
type Tagged = { [CONN]?: ClientConn };

export function connOf(sock: object): ClientConn | undefined {
  return (sock as Tagged)[CONN];
}

export function setConn<C extends ClientConn>(sock: object, c: C): C {
  (sock as Tagged)[CONN] = c;
  return c;
}
