/**
 * One HTTP request through its life: pick a server → relay (./http-relay.ts, one Attempt per try) → on a failure
 * retry (the same server, or another one with `option redispatch`) or answer the error page → release the server
 * slot when the attempt ends. The client's response closing (sent whole, or the client gone) ends the request and
 * starts the connection's wait for the next one (./client-conn.ts).
 *
 * The per-request path allocates one HttpExchange, the server request's fields and one Attempt per try, adds one
 * 'close' listener to the response (a shared function, no closure), reads the request for the pick only when the
 * algorithm hashes it, and takes no promise when the pick is immediate (the shared-memory picker).
 */
import type net from 'node:net';
import type { PickRequest } from '../balance/index.js';
import type { ServerTarget } from '../ipc.js';
import { encode, headerFor } from '../proxy-protocol.js';
import { applyHeaderOps, type HeaderOp } from '../routing/headers.js';
import type { ClientConn } from './client-conn.js';
import { replyError } from './error-pages.js';
import type { RelaySpec } from './groups.js';
import {
  Attempt,
  type AttemptOwner,
  type ServerDispatcher,
  type ServerPools,
  serverRequestHeaders,
} from './http-relay.js';
import type { ExchangeRequest, ExchangeResponse } from './messages.js';
import type { ListenerCounters } from './runtime.js';
import { NO_EXCLUDE, type PickReply } from './server-picks.js';

/** What a request needs of its listener. */
export interface ExchangeHost {
  readonly spec: RelaySpec;
  /** the group's counters (its servers, its responses) */
  readonly counters: ListenerCounters;
  /** the listener's, when they are not the group's (a named group): responses and request errors count there too */
  readonly frontend?: ListenerCounters;
  readonly pools: ServerPools;
  /** the worker drains: answers say `Connection: close` */
  readonly isDraining: () => boolean;
  pickThen(req: PickRequest, exclude: readonly string[], done: (r: PickReply) => void): void;
  release(server: string): void;
}

/** errors after which a request that has no body and no answer yet is tried again (the relay's codes included:
 * connect timeout, and the server closing the connection — a kept-alive one it dropped, or a crash — the latter
 * only for an idempotent method) */
const RETRYABLE = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ETIMEDOUT',
  'EPIPE',
  'ESERVER_CONNECT_TIMEOUT',
  'ESERVER_CLOSED',
]);

/** methods a request may be sent again with once it has reached a server connection (RFC 9110 9.2.2) */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

const NO_OPS: readonly HeaderOp[] = Object.freeze([]);

/** node:http's request (the former server side): no body by its fields */
function bodylessByFields(req: ExchangeRequest): boolean {
  const h = req.headers;
  return !h['transfer-encoding'] && (h['content-length'] === undefined || h['content-length'] === '0');
}

const EXCHANGE = Symbol('tierlb.req');
type Tagged = { [EXCHANGE]?: HttpExchange };

export class HttpExchange implements AttemptOwner {
  /** servers tried (redispatch excludes them) */
  readonly tried: string[] = [];
  /** tries after the first */
  retries = 0;
  target: ServerTarget | undefined = undefined;
  private released = true;
  clientGone = false;
  /** the server request's fields (all attempts) */
  private fields: string[] | undefined = undefined;
  /** the current attempt, and whether its bytes are still to be counted */
  x: Attempt | undefined = undefined;
  private live = false;
  private onPicked: ((r: PickReply) => void) | undefined = undefined;
  /** header edits of the routing rules (../routing/headers.ts): of the server request, of the answer */
  reqOps: readonly HeaderOp[] = NO_OPS;
  resOps: ((status: number) => readonly HeaderOp[]) | undefined = undefined;

  constructor(
    readonly host: ExchangeHost,
    readonly req: ExchangeRequest,
    readonly res: ExchangeResponse,
    /** the client connection (req.socket is gone once the request's body has been read) */
    readonly sock: net.Socket,
    readonly conn: ClientConn,
    readonly bodyless: boolean,
    private readonly pick: PickRequest,
  ) {}

  /** A request's headers are in: its life begins. */
  static start(
    host: ExchangeHost,
    req: ExchangeRequest,
    res: ExchangeResponse,
    conn: ClientConn,
    pick: PickRequest,
    reqOps: readonly HeaderOp[] = NO_OPS,
    resOps?: (status: number) => readonly HeaderOp[],
  ): HttpExchange {
    conn.stopWait();
    conn.busy++;
    // HTTP/2 (./h2.ts): a drain is the session's GOAWAY; a body is whatever the stream has after its headers
    const h2 = req.httpVersionMajor === 2;
    if (host.isDraining() && !h2) res.setHeader('connection', 'close');
    const bodyless = h2
      ? (req as unknown as { stream: { endAfterHeaders: boolean } }).stream.endAfterHeaders
      : (req.bodyless ?? bodylessByFields(req));
    const ex = new HttpExchange(host, req, res, req.socket, conn, bodyless, pick);
    ex.reqOps = reqOps;
    ex.resOps = resOps;
    (res as Tagged)[EXCHANGE] = ex;
    res.on('close', onResClose);
    ex.next();
    return ex;
  }

  /** Pick a server for the next attempt and forward the request there. */
  private next(): void {
    const host = this.host;
    host.pickThen(
      this.pick,
      host.spec.redispatch && this.tried.length ? this.tried : NO_EXCLUDE,
      this.onPicked ?? (this.onPicked = (r) => this.picked(r)),
    );
  }

  private picked(r: PickReply): void {
    if (!r.server) {
      if (!this.clientGone) replyError(this.res, 503);
      return;
    }
    if (this.clientGone) {
      this.host.release(r.server.name);
      return;
    }
    if (this.target && r.server.name !== this.target.name) this.host.counters.server(r.server.name).wredis++;
    this.target = r.server;
    this.released = false;
    if (!this.tried.includes(r.server.name)) this.tried.push(r.server.name);
    this.forward();
  }

  /** One attempt: ends with the response (the client's 'close', see onResClose) or with an error (failed). */
  private forward(): void {
    const t = this.target!;
    const { req, res, host } = this;
    // the server request's fields, made once for all attempts (hop-by-hop fields dropped, forwardfor added)
    const fields = (this.fields ??= this.serverFields());
    const method = req.method!;
    const path = req.url!;
    // request line: METHOD SP path SP HTTP/1.1 CRLF
    const x = new Attempt(this, res, host.isDraining, method.length + path.length + 12, fields, this.resOps);
    this.x = x;
    this.live = true;
    const to = t.sendProxy ? this.ownConnection(t) : host.pools.pool(t);
    try {
      to.dispatch({ path, method, headers: fields, body: this.bodyless ? null : req }, x);
    } catch (e) {
      // the relay refuses what it cannot send (e.g. a request target with controls): the request is bad
      x.onError(e as Error);
    }
  }

  private serverFields(): string[] {
    const f = serverRequestHeaders(this.req, this.host.spec.forwardfor ? this.conn.info.src : undefined);
    return this.reqOps.length ? applyHeaderOps(f, this.reqOps) : f;
  }

  /** send-proxy: the client connection's own connection to `t`, the PROXY header first */
  private ownConnection(t: ServerTarget): ServerDispatcher {
    const conn = this.conn;
    const own = (conn.own ??= new Map());
    let c = own.get(t.name);
    if (!c) {
      const i = conn.info;
      const header = encode(headerFor(i.src, i.srcPort, i.dst, i.dstPort), t.sendProxy === 'v1' ? 1 : 2);
      c = this.host.pools.private(t, header);
      own.set(t.name, c);
    }
    return c;
  }

  /** the attempt's end: its server's bytes */
  private endAttempt(): void {
    if (!this.live) return;
    this.live = false;
    const x = this.x;
    if (x && this.target) {
      const ss = this.host.counters.server(this.target.name);
      ss.bin += x.sent;
      ss.bout += x.received;
    }
  }

  /** the attempt has a server connection */
  connected(x: Attempt): void {
    if (x === this.x) this.host.counters.server(this.target!.name).stot++;
  }

  failed(x: Attempt, err: Error): void {
    if (x !== this.x) return;
    this.endAttempt();
    this.releaseAttempt();
    // a request the client gave up: not the server's error
    if (this.clientGone) return;
    const { host, res } = this;
    const ss = host.counters.server(this.target!.name);
    const code = (err as NodeJS.ErrnoException).code ?? '';
    if (code === 'EREQUEST_INVALID') {
      (host.frontend ?? host.counters).stats.ereq++;
      replyError(res, 400);
      return;
    }
    if (!x.connected || code === 'ESERVER_CONNECT_TIMEOUT') ss.econ++;
    else ss.eresp++;
    if (res.headersSent) {
      res.destroy();
      return;
    }
    // a request that reached a server connection may have been acted on: sent again only when idempotent
    const retryable =
      this.bodyless && !x.responded && RETRYABLE.has(code) && (!x.connected || IDEMPOTENT.has(this.req.method!));
    if (retryable && this.retries < host.spec.retries) {
      this.retries++;
      ss.wretr++;
      // (the next pick after the failed attempt's own events)
      queueMicrotask(() => this.next());
      return;
    }
    // timeout server while waiting for the answer: 504; anything else: 502
    replyError(res, code === 'ESERVER_HEADERS_TIMEOUT' ? 504 : 502);
  }

  /** the client's response closed (sent, or the client went away) */
  resClosed(): void {
    const { res, conn, sock } = this;
    conn.busy--;
    // (an HTTP/2 response cut is its stream's end, not its connection's)
    if (this.host.isDraining() && !res.writableFinished && this.req.httpVersionMajor !== 2) sock.destroy();
    else if (!sock.destroyed) conn.awaitRequest(true);
    this.clientGone = true;
    this.x?.cancel();
    this.releaseAttempt();
    this.endAttempt();
  }

  private releaseAttempt(): void {
    if (this.released || !this.target) return;
    this.released = true;
    this.host.release(this.target.name);
  }
}

/** the response closed: sent whole (its status counted), or cut (the client left, or the answer broke off) */
function onResClose(this: ExchangeResponse): void {
  const ex = (this as Tagged)[EXCHANGE];
  if (!ex) return;
  if (this.writableFinished) {
    ex.host.counters.hrsp(this.statusCode);
    ex.host.frontend?.hrsp(this.statusCode);
  }
  ex.resClosed();
}
