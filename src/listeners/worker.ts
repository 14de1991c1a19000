/**
 * A cluster worker: the listeners of one config generation. It accepts connections (the primary owns the listening
 * sockets and hands them round-robin to workers), reads the PROXY header when `accept_proxy`, asks the primary
 * for a server (see ./shared.ts for how all workers share one balancing state) and relays: TCP by two-way piping with
 * half-close; HTTP requests through undici's keep-alive pools (./http-relay.ts), WebSocket upgrades through
 * http-proxy-3. It counts everything in a WorkerSnapshot the primary collects.
 *
 * On `drain` it stops accepting, answers in-flight HTTP requests with `Connection: close`, and exits when its last
 * connection closes (or at the drain deadline).
 */
import http from 'node:http';
import net from 'node:net';
import { ProxyServer } from 'http-proxy-3';
import type { Client } from 'undici';
import { log } from '../common/log.js';
import { isHashing, type PickRequest } from './balance/index.js';
import type { ListenerSpec, ListenersConfig } from './config.js';
import { Exchange, type ExchangeOwner, ServerPools, serverRequestHeaders } from './worker/http-relay.js';
import type { FromWorker, ServerTarget, ToWorker } from './ipc.js';
import { decode, encode, headerFor } from './proxy-protocol.js';
import { openRegion, type ShmInfo } from './shared.js';
import { SharedPicker } from './shared-picker.js';
import {
  emptyListenerStats,
  emptyServerStats,
  type WorkerListenerStats,
  type WorkerServerStats,
  type WorkerSnapshot,
} from './stats.js';

type PickReply = Extract<ToWorker, { t: 'picked' }>;

/** how often a worker retries its queued requests (slots freed by other workers) */
const QUEUE_POLL_MS = 5;

/** The client as the listener sees it: the PROXY header's source when accept_proxy, else the socket's peer. */
interface ClientInfo {
  src: string;
  srcPort: number;
  dst: string;
  dstPort: number;
}

const ERR_PAGES: Record<number, [string, string]> = {
  400: ['Bad request', 'Your browser sent an invalid request.'],
  408: ['Request Time-out', "Your browser didn't send a complete request in time."],
  502: ['Bad Gateway', 'The server returned an invalid or incomplete response.'],
  503: ['Service Unavailable', 'No server is available to handle this request.'],
  504: ['Gateway Time-out', "The server didn't respond in time."],
};

/** HAProxy's built-in error page for `code`: its reason phrase and HTML body. */
function errorPage(code: number): [reason: string, body: string] {
  const [reason, text] = ERR_PAGES[code] ?? ['Error', 'Error'];
  return [reason, `<html><body><h1>${code} ${reason}</h1>\n${text}\n</body></html>\n`];
}

/** The error page as a whole HTTP/1.1 response (used on raw sockets). */
function errorResponse(code: number): string {
  const [reason, body] = errorPage(code);
  return (
    `HTTP/1.1 ${code} ${reason}\r\ncontent-length: ${body.length}\r\ncache-control: no-cache\r\n` +
    `content-type: text/html\r\nconnection: close\r\n\r\n${body}`
  );
}

function send(msg: FromWorker): void {
  process.send?.(msg);
}

/** errors after which a request that has no body and no answer yet is tried again (undici's codes included:
 * connect timeout, and the server closing the connection — a kept-alive one it dropped, or a crash — the latter
 * only for an idempotent method) */
const RETRYABLE = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ETIMEDOUT',
  'EPIPE',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_SOCKET',
]);

/** methods a request may be sent again with once it has reached a server connection (RFC 9110 9.2.2) */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

class Listener {
  readonly stats: WorkerListenerStats = emptyListenerStats();
  private readonly server: net.Server;
  private readonly http?: http.Server;
  /** WebSocket upgrades */
  private readonly proxy?: ProxyServer;
  private readonly pools: ServerPools;
  readonly sockets = new Set<net.Socket>();
  draining = false;
  readonly isDraining = (): boolean => this.draining;
  /** balance hdr(name): the header, lower case */
  private readonly hdrName?: string;
  /** the balance algorithm hashes a key of the request */
  private readonly hashing: boolean;

  constructor(
    readonly spec: ListenerSpec,
    private readonly w: WorkerRuntime,
  ) {
    this.hdrName = /^hdr\((.+)\)$/.exec(spec.balance)?.[1]?.toLowerCase();
    this.hashing = isHashing(spec.balance);
    this.pools = new ServerPools(spec.timeout);
    this.server = net.createServer({ allowHalfOpen: spec.mode === 'tcp', pauseOnConnect: true }, (s) =>
      this.onConnection(s),
    );
    if (spec.mode === 'http') {
      this.http = http.createServer({
        // idle keep-alive connections are closed by our own timer at exactly timeout http-keep-alive (armRequestTimer);
        // Node's own idle timeout (keepAliveTimeout + 1 s on the socket) is a backstop behind it
        keepAliveTimeout: spec.timeout.httpKeepAlive,
        // timeout http-request is our own timer (armRequestTimer); Node's checks would cut requests on their own
        // clock (headers 60 s, a whole request, body included, 300 s) and through 'clientError' (answered 400)
        headersTimeout: 0,
        requestTimeout: 0,
      });
      // timeout client: Node sets each socket's timeout to server.timeout at the connection and again at every
      // request (after a response it holds keepAliveTimeout): a timeout set on the socket alone lasts one request
      this.http.timeout = spec.timeout.client;
      this.http.on('request', (req, res) => void this.onRequest(req, res));
      this.http.on('upgrade', (req, socket, head) => void this.onUpgrade(req, socket as net.Socket, head));
      this.http.on('clientError', (err: NodeJS.ErrnoException, socket: net.Socket) => {
        if (err.code === 'ECONNRESET' || !socket.writable) {
          socket.destroy();
          return;
        }
        this.stats.ereq++;
        this.hrsp(400);
        socket.end(errorResponse(400));
      });
      this.proxy = new ProxyServer({ xfwd: false, ws: true });
      this.proxy.on('econnreset', () => {});
      this.proxy.on('error', () => {});
    }
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ host: this.spec.host, port: this.spec.port }, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
  }

  private serverStats(name: string): WorkerServerStats {
    return (this.stats.servers[name] ??= emptyServerStats());
  }

  hrsp(code: number): void {
    const c = code >= 100 && code < 600 ? `${Math.floor(code / 100)}xx` : 'other';
    this.stats.hrsp[c] = (this.stats.hrsp[c] ?? 0) + 1;
  }

  // ---- connections ----

  private onConnection(sock: net.Socket): void {
    const st = this.stats;
    st.scur++;
    st.stot++;
    if (st.scur > st.smax) st.smax = st.scur;
    this.sockets.add(sock);
    sock.on('error', () => {});
    sock.once('close', () => {
      st.scur--;
      st.bin += sock.bytesRead;
      st.bout += sock.bytesWritten;
      this.sockets.delete(sock);
      const c = connOf(sock);
      if (c) {
        c.busy = 0;
        if (c.timer) clearTimeout(c.timer);
        if (c.own) for (const cl of c.own.values()) cl.destroy().catch(() => {});
      }
      this.w.maybeExit();
    });
    const peer: ClientInfo = {
      src: sock.remoteAddress ?? '',
      srcPort: sock.remotePort ?? 0,
      dst: sock.localAddress ?? '',
      dstPort: sock.localPort ?? 0,
    };
    if (!this.spec.acceptProxy) {
      (sock as Tagged<ConnState>)[CONN] = new ConnState(peer);
      this.dispatch(sock, undefined);
      return;
    }
    // accept-proxy: read the PROXY header (v1 or v2) before anything else
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => sock.destroy(), this.spec.timeout.httpRequest || this.spec.timeout.client);
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const r = decode(buf);
      if (r.status === 'incomplete') return;
      clearTimeout(timer);
      sock.off('data', onData);
      sock.pause();
      if (r.status === 'error') {
        st.ereq++;
        log.debug({ listener: this.spec.name, reason: r.reason }, 'bad PROXY header');
        sock.destroy();
        return;
      }
      const h = r.header;
      (sock as Tagged<ConnState>)[CONN] = new ConnState(
        h.command === 'PROXY' && h.src && h.dst
          ? { src: h.src, srcPort: h.srcPort ?? 0, dst: h.dst, dstPort: h.dstPort ?? 0 }
          : peer,
      );
      this.dispatch(sock, buf.subarray(r.length));
    };
    sock.on('data', onData);
    sock.resume();
  }

  private dispatch(sock: net.Socket, rest: Buffer | undefined): void {
    if (this.spec.mode === 'tcp') {
      void this.tcp(sock, rest);
      return;
    }
    if (rest?.length) sock.unshift(rest);
    // (timeout client: this.http.timeout, applied by Node on 'connection'; on expiry it destroys the socket)
    this.armRequestTimer(sock, false);
    this.http!.emit('connection', sock);
    sock.resume();
  }

  /**
   * The wait for a request's headers, one timer per connection. The first request has `timeout http-request`. After
   * a response the idle wait is `timeout http-keep-alive` (http-request when that is 0); if a request has begun when
   * it ends, that request gets http-request from then on. Nothing received: a silent close (an idle keep-alive
   * connection); part of a request: 408. A wait of 0 is no wait (timeout client still applies, as in HAProxy).
   * On the hot path (keep-alive, one request after another) the timer is only refreshed.
   */
  private armRequestTimer(sock: net.Socket, afterResponse: boolean): void {
    const c = this.conn(sock);
    const t = this.spec.timeout;
    const idle = afterResponse && t.httpKeepAlive > 0;
    c.before = sock.bytesRead;
    c.idle = idle;
    this.startWait(sock, c, idle ? t.httpKeepAlive : t.httpRequest);
  }

  private startWait(sock: net.Socket, c: ConnState, ms: number): void {
    c.armed = ms > 0;
    if (ms <= 0) return;
    if (c.timer && c.timerMs === ms) {
      // (a timer that fired or was disarmed is reactivated by refresh)
      c.timer.refresh();
      return;
    }
    if (c.timer) clearTimeout(c.timer);
    c.timerMs = ms;
    c.timer = setTimeout(() => this.waitOver(sock, c), ms);
    c.timer.unref();
  }

  private waitOver(sock: net.Socket, c: ConnState): void {
    if (!c.armed || c.busy > 0 || sock.destroyed) return;
    if (sock.bytesRead === c.before) {
      sock.destroy();
      return;
    }
    if (c.idle) {
      // a request began during the keep-alive wait: from now on it has timeout http-request
      c.idle = false;
      this.startWait(sock, c, this.spec.timeout.httpRequest);
      return;
    }
    this.stats.ereq++;
    this.hrsp(408);
    sock.end(errorResponse(408));
    setTimeout(() => sock.destroy(), 1000).unref();
  }

  private stopRequestTimer(sock: net.Socket): void {
    const c = connOf(sock);
    if (c) c.armed = false;
  }

  /** the connection's state (made here for a socket that did not come through onConnection) */
  private conn(sock: net.Socket): ConnState {
    const t = sock as Tagged<ConnState>;
    return (t[CONN] ??= new ConnState({
      src: sock.remoteAddress ?? '',
      srcPort: sock.remotePort ?? 0,
      dst: '',
      dstPort: 0,
    }));
  }

  private clientOf(sock: net.Socket): ClientInfo {
    return this.conn(sock).info;
  }

  private pickRequest(client: ClientInfo, req?: http.IncomingMessage): PickRequest {
    // only the hashing algorithms (source, uri, hdr) read the request
    if (!this.hashing) return NO_KEYS;
    const pr: PickRequest = { src: client.src };
    if (req) {
      pr.uri = req.url;
      if (this.hdrName) pr.headers = { [this.hdrName]: req.headers[this.hdrName] };
    }
    return pr;
  }

  // ---- tcp ----

  private async tcp(client: net.Socket, head: Buffer | undefined): Promise<void> {
    const info = this.clientOf(client);
    const tried = new Set<string>();
    let closed = false;
    client.once('close', () => (closed = true));
    let target: ServerTarget | undefined;
    for (let attempt = 0; ; attempt++) {
      const redispatch = attempt > 0 && this.spec.redispatch;
      if (!target || redispatch) {
        if (target) this.w.release(this.spec.name, target.name);
        const r = await this.w.pick(this.spec.name, this.pickRequest(info), [...tried]);
        if (!r.server) {
          client.destroy();
          return;
        }
        if (target && r.server.name !== target.name) this.serverStats(r.server.name).wredis++;
        target = r.server;
      }
      if (closed) {
        this.w.release(this.spec.name, target.name);
        return;
      }
      tried.add(target.name);
      const ss = this.serverStats(target.name);
      const up = await this.connect(target, info);
      if (up) {
        ss.stot++;
        this.pipe(client, up, target, head);
        return;
      }
      ss.econ++;
      if (attempt >= this.spec.retries || closed) {
        this.w.release(this.spec.name, target.name);
        client.destroy();
        return;
      }
      ss.wretr++;
    }
  }

  private connect(t: ServerTarget, info: ClientInfo): Promise<net.Socket | null> {
    return new Promise((resolve) => {
      const s = net.connect({ host: t.host, port: t.port, allowHalfOpen: true });
      const timer = setTimeout(() => {
        s.destroy();
        resolve(null);
      }, this.spec.timeout.connect);
      s.once('connect', () => {
        clearTimeout(timer);
        s.removeAllListeners('error');
        resolve(s);
      });
      s.once('error', () => {
        clearTimeout(timer);
        resolve(null);
      });
      if (t.sendProxy)
        s.write(encode(headerFor(info.src, info.srcPort, info.dst, info.dstPort), t.sendProxy === 'v1' ? 1 : 2));
    });
  }

  private pipe(client: net.Socket, server: net.Socket, t: ServerTarget, head: Buffer | undefined): void {
    const ss = this.serverStats(t.name);
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      ss.bin += server.bytesWritten;
      ss.bout += server.bytesRead;
      this.w.release(this.spec.name, t.name);
    };
    server.on('error', () => {
      ss.eresp++;
      client.destroy();
    });
    client.on('error', () => server.destroy());
    server.once('close', () => {
      finish();
      if (!client.writableEnded) client.destroy();
    });
    client.once('close', () => {
      if (!server.destroyed && !server.writableEnded) server.destroy();
    });
    client.setTimeout(this.spec.timeout.client, () => {
      client.destroy();
      server.destroy();
    });
    server.setTimeout(this.spec.timeout.server, () => {
      server.destroy();
      client.destroy();
    });
    if (head?.length) server.write(head);
    client.pipe(server); // client FIN → server FIN (half-close), and the other way:
    server.pipe(client);
    client.resume();
  }

  // ---- http ----
  // The per-request path allocates one ReqCtx, the server request's fields and one Exchange per attempt, adds one
  // 'close' listener to the response (a shared function, no closure), reads the request for the pick only when the
  // algorithm hashes it, and takes no promise when the pick is immediate (the shared-memory picker).

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const sock = req.socket;
    // (timeout client is the socket's timeout, set by Node from this.http.timeout with each request; activity re-arms it)
    const conn = this.conn(sock);
    conn.armed = false;
    conn.busy++;
    if (this.draining) res.setHeader('connection', 'close');
    const h = req.headers;
    const bodyless = !h['transfer-encoding'] && (h['content-length'] === undefined || h['content-length'] === '0');
    const ctx = new ReqCtx(this, req, res, sock, conn, bodyless, this.pickRequest(conn.info, req));
    (res as Tagged<ReqCtx>)[CTX] = ctx;
    res.on('close', onResClose);
    this.attempt(ctx);
  }

  /** Pick a server for the request's next attempt and forward it there. */
  private attempt(ctx: ReqCtx): void {
    this.w.pickThen(
      this.spec.name,
      ctx.pick,
      this.spec.redispatch && ctx.tried.length ? ctx.tried : NONE,
      ctx.onPicked ?? (ctx.onPicked = (r) => this.picked(ctx, r)),
    );
  }

  private picked(ctx: ReqCtx, r: PickReply): void {
    if (!r.server) {
      if (!ctx.clientGone) this.reply(ctx.res, 503);
      return;
    }
    if (ctx.clientGone) {
      this.w.release(this.spec.name, r.server.name);
      return;
    }
    if (ctx.target && r.server.name !== ctx.target.name) this.serverStats(r.server.name).wredis++;
    ctx.target = r.server;
    ctx.released = false;
    if (!ctx.tried.includes(r.server.name)) ctx.tried.push(r.server.name);
    this.forward(ctx);
  }

  /** One attempt: ends with the response (the client's 'close', see onResClose) or with an error (failed). */
  private forward(ctx: ReqCtx): void {
    const t = ctx.target!;
    const { req, res } = ctx;
    // the server request's fields, made once for all attempts (hop-by-hop fields dropped, forwardfor added)
    const fields = (ctx.fields ??= serverRequestHeaders(req, this.spec.forwardfor ? ctx.conn.info.src : undefined));
    const method = req.method!;
    const path = req.url!;
    // request line: METHOD SP path SP HTTP/1.1 CRLF
    const x = new Exchange(ctx, res, this.isDraining, method.length + path.length + 12, fields);
    ctx.x = x;
    ctx.live = true;
    const to = t.sendProxy ? this.ownConnection(ctx.conn, t) : this.pools.pool(t);
    try {
      to.dispatch({ path, method, headers: fields, body: ctx.bodyless ? null : req }, x);
    } catch (e) {
      // undici refuses what it cannot send (e.g. a request target that is not a path): the request is bad
      x.onError(e as Error);
    }
  }

  /** send-proxy: the client connection's own connection to `t`, the PROXY header first */
  private ownConnection(conn: ConnState, t: ServerTarget): Client {
    const own = (conn.own ??= new Map());
    let c = own.get(t.name);
    if (!c) {
      const i = conn.info;
      c = this.pools.private(t, encode(headerFor(i.src, i.srcPort, i.dst, i.dstPort), t.sendProxy === 'v1' ? 1 : 2));
      own.set(t.name, c);
    }
    return c;
  }

  /** the attempt's end: its server's bytes */
  endAttempt(ctx: ReqCtx): void {
    if (!ctx.live) return;
    ctx.live = false;
    const x = ctx.x;
    if (x && ctx.target) {
      const ss = this.serverStats(ctx.target.name);
      ss.bin += x.sent;
      ss.bout += x.received;
    }
  }

  /** the attempt has a server connection */
  connected(ctx: ReqCtx): void {
    this.serverStats(ctx.target!.name).stot++;
  }

  failed(ctx: ReqCtx, err: Error): void {
    this.endAttempt(ctx);
    this.releaseAttempt(ctx);
    // a request the client gave up: not the server's error
    if (ctx.clientGone) return;
    const x = ctx.x!;
    const ss = this.serverStats(ctx.target!.name);
    const code = (err as NodeJS.ErrnoException).code ?? '';
    if (code === 'UND_ERR_INVALID_ARG') {
      this.stats.ereq++;
      this.reply(ctx.res, 400);
      return;
    }
    if (!x.connected || code === 'UND_ERR_CONNECT_TIMEOUT') ss.econ++;
    else ss.eresp++;
    const res = ctx.res;
    if (res.headersSent) {
      res.destroy();
      return;
    }
    // a request that reached a server connection may have been acted on: sent again only when idempotent
    const retryable =
      ctx.bodyless && !x.responded && RETRYABLE.has(code) && (!x.connected || IDEMPOTENT.has(ctx.req.method!));
    if (retryable && ctx.attempt < this.spec.retries) {
      ctx.attempt++;
      ss.wretr++;
      // (the next pick after the failed attempt's own events)
      queueMicrotask(() => this.attempt(ctx));
      return;
    }
    // timeout server while waiting for the answer: 504; anything else: 502
    this.reply(res, code === 'UND_ERR_HEADERS_TIMEOUT' ? 504 : 502);
  }

  /** the client's response closed (sent, or the client went away) */
  resClosed(ctx: ReqCtx): void {
    const { res, conn, sock } = ctx;
    conn.busy--;
    if (this.draining && !res.writableFinished) sock.destroy();
    else if (!sock.destroyed) this.armRequestTimer(sock, true);
    ctx.clientGone = true;
    ctx.x?.cancel();
    this.releaseAttempt(ctx);
    this.endAttempt(ctx);
  }

  releaseAttempt(ctx: ReqCtx): void {
    if (ctx.released || !ctx.target) return;
    ctx.released = true;
    this.w.release(this.spec.name, ctx.target.name);
  }

  reply(res: http.ServerResponse, code: number): void {
    if (res.headersSent || res.destroyed) return;
    const [reason, body] = errorPage(code);
    res.writeHead(code, reason, {
      'content-type': 'text/html',
      'cache-control': 'no-cache',
      'content-length': body.length,
    });
    res.end(body);
  }

  private async onUpgrade(req: http.IncomingMessage, socket: net.Socket, head: Buffer): Promise<void> {
    this.stopRequestTimer(socket);
    this.conn(socket).busy++;
    const info = this.clientOf(socket);
    if (this.spec.forwardfor) {
      const xff = req.headers['x-forwarded-for'];
      req.headers['x-forwarded-for'] = xff ? `${xff}, ${info.src}` : info.src;
      req.headers['x-forwarded-proto'] = 'http';
    }
    const r = await this.w.pick(this.spec.name, this.pickRequest(info, req), []);
    if (!r.server) {
      this.hrsp(503);
      socket.end(errorResponse(503));
      return;
    }
    const t = r.server;
    const ss = this.serverStats(t.name);
    ss.stot++;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.w.release(this.spec.name, t.name);
    };
    if (socket.destroyed) {
      release();
      return;
    }
    socket.once('close', release);
    socket.setTimeout(this.spec.timeout.tunnel, () => socket.destroy());
    this.hrsp(101);
    this.proxy!.ws(
      req,
      socket,
      head,
      { target: { host: t.host, port: t.port, protocol: 'http:' }, agent: false },
      () => {
        ss.econ++;
        release();
        if (!socket.destroyed) socket.end(errorResponse(502));
      },
    );
  }

  /** Stop accepting; in-flight requests finish with `Connection: close`. */
  drain(): void {
    this.draining = true;
    this.server.close();
    for (const s of this.sockets) {
      // idle keep-alive connections: close once the current request (if any) is answered
      if (this.spec.mode === 'http' && (connOf(s)?.busy ?? 0) === 0) {
        // a request may be on its way: give it the keep-alive timeout to arrive, then close
        setTimeout(
          () => {
            if ((connOf(s)?.busy ?? 0) === 0) s.destroy();
          },
          Math.min(this.spec.timeout.httpKeepAlive, 2000),
        ).unref();
      }
    }
  }
}

/** what tierlb keeps on a client socket (CONN) and on a request and its response (CTX) */
const CONN = Symbol('tierlb.conn');
const CTX = Symbol('tierlb.req');
type Tagged<T> = { [CONN]?: T; [CTX]?: T };
const connOf = (s: net.Socket): ConnState | undefined => (s as Tagged<ConnState>)[CONN];
const NONE: readonly string[] = [];
const NO_KEYS: PickRequest = Object.freeze({});

/** A client connection: who the client is, its requests in flight, its `timeout http-request` timer. */
class ConnState {
  busy = 0;
  armed = false;
  before = 0;
  /** the wait is the keep-alive one (else a request's) */
  idle = false;
  timer: NodeJS.Timeout | undefined = undefined;
  timerMs = 0;
  /** send-proxy servers: this client's own server connections (closed with the client's) */
  own: Map<string, Client> | undefined = undefined;
  constructor(readonly info: ClientInfo) {}
}

/** One HTTP request through its attempts. */
class ReqCtx implements ExchangeOwner {
  /** servers tried (redispatch excludes them) */
  readonly tried: string[] = [];
  attempt = 0;
  target: ServerTarget | undefined = undefined;
  released = true;
  clientGone = false;
  /** the server request's fields (all attempts) */
  fields: string[] | undefined = undefined;
  /** the current attempt, and whether its bytes are still to be counted */
  x: Exchange | undefined = undefined;
  live = false;
  onPicked: ((r: PickReply) => void) | undefined = undefined;
  constructor(
    readonly l: Listener,
    readonly req: http.IncomingMessage,
    readonly res: http.ServerResponse,
    /** the client connection (req.socket is gone once undici has sent the request's body) */
    readonly sock: net.Socket,
    readonly conn: ConnState,
    readonly bodyless: boolean,
    readonly pick: PickRequest,
  ) {}
  connected(x: Exchange): void {
    if (x === this.x) this.l.connected(this);
  }
  failed(x: Exchange, err: Error): void {
    if (x === this.x) this.l.failed(this, err);
  }
}

/** the response closed: sent whole (its status counted), or cut (the client left, or the answer broke off) */
function onResClose(this: http.ServerResponse): void {
  const ctx = (this as Tagged<ReqCtx>)[CTX];
  if (!ctx) return;
  if (this.writableFinished) ctx.l.hrsp(this.statusCode);
  ctx.l.resClosed(ctx);
}

export class WorkerRuntime {
  private readonly listeners: Listener[] = [];
  private readonly pending = new Map<number, (r: PickReply) => void>();
  private nextId = 1;
  private draining = false;
  /** listener → its balancing over the shared memory; empty when the worker asks the primary for every pick */
  private readonly pickers = new Map<string, { picker: SharedPicker; replies: PickReply[] }>();
  private queueTimer?: NodeJS.Timeout;

  constructor(
    readonly cfg: ListenersConfig,
    shm?: ShmInfo,
  ) {
    if (shm) this.attach(shm);
  }

  private attach(shm: ShmInfo): void {
    let words: Int32Array;
    try {
      words = openRegion(shm.path);
    } catch (e) {
      log.warn({ err: String(e) }, 'listeners: no shared memory, picking through the primary');
      return;
    }
    for (const spec of this.cfg.listeners) {
      const l = shm.listeners[spec.name];
      if (!l) continue;
      const picker = new SharedPicker(
        words,
        l.slot,
        spec.servers.map((s, i) => ({ name: s.name, maxconn: s.maxconn, slot: l.servers[i]! })),
        shm.worker,
        { balance: spec.balance, maxqueue: spec.maxqueue, queueTimeout: spec.timeout.queue },
      );
      // the replies of a pick are made once: a server's target never changes within a generation
      const replies = spec.servers.map(
        (s): PickReply => ({
          t: 'picked',
          id: 0,
          server: { name: s.name, host: s.host, port: s.port, sendProxy: s.sendProxy },
        }),
      );
      this.pickers.set(spec.name, { picker, replies });
    }
  }

  async start(): Promise<void> {
    for (const spec of this.cfg.listeners) {
      const l = new Listener(spec, this);
      await l.listen();
      this.listeners.push(l);
    }
  }

  pick(listener: string, req: PickRequest, ex: readonly string[]): Promise<PickReply> {
    return new Promise((resolve) => this.pickThen(listener, req, ex, resolve));
  }

  /** pick(), calling `done` (at once when a server is free and the picks are local) instead of a promise */
  pickThen(listener: string, req: PickRequest, ex: readonly string[], done: (r: PickReply) => void): void {
    const local = this.pickers.get(listener);
    if (local) {
      const { picker, replies } = local;
      let exclude: Set<number> | undefined;
      if (ex.length) {
        exclude = new Set();
        for (const n of ex) {
          const i = picker.index(n);
          if (i !== undefined) exclude.add(i);
        }
      }
      picker.acquire(req, exclude, (r) => done(typeof r === 'number' ? replies[r]! : { t: 'picked', id: 0, err: r }));
      if (picker.waiting) this.armQueueTimer();
      return;
    }
    const id = this.nextId++;
    this.pending.set(id, done);
    send({ t: 'pick', id, l: listener, req, ex: ex.length ? [...ex] : undefined });
  }

  /** While requests wait for a slot: retry them every few ms (slots freed by other workers, weights raised). */
  private armQueueTimer(): void {
    if (this.queueTimer) return;
    this.queueTimer = setInterval(() => {
      let waiting = 0;
      for (const { picker } of this.pickers.values()) {
        picker.serveQueue();
        waiting += picker.waiting;
      }
      if (waiting === 0) {
        clearInterval(this.queueTimer);
        this.queueTimer = undefined;
      }
    }, QUEUE_POLL_MS);
  }

  release(listener: string, server: string): void {
    const local = this.pickers.get(listener);
    if (local) {
      const i = local.picker.index(server);
      if (i !== undefined) local.picker.release(i);
      return;
    }
    send({ t: 'release', l: listener, s: server });
  }

  onPicked(m: PickReply): void {
    const r = this.pending.get(m.id);
    if (!r) return;
    this.pending.delete(m.id);
    r(m);
  }

  snapshot(): WorkerSnapshot {
    const out: WorkerSnapshot = {};
    for (const l of this.listeners) {
      // bytes of connections still open are added live
      const st = structuredClone(l.stats);
      for (const s of l.sockets) {
        st.bin += s.bytesRead;
        st.bout += s.bytesWritten;
      }
      out[l.spec.name] = st;
    }
    return out;
  }

  drain(deadline: number): void {
    this.draining = true;
    for (const l of this.listeners) l.drain();
    setTimeout(() => process.exit(0), deadline).unref();
    this.maybeExit();
  }

  maybeExit(): void {
    if (!this.draining) return;
    if (this.listeners.some((l) => l.sockets.size > 0)) return;
    // let the last releases reach the primary
    setTimeout(() => process.exit(0), 50);
  }
}

/** The worker process: wait for the config, listen, report ready, serve. */
export function runWorker(): void {
  let rt: WorkerRuntime | undefined;
  process.on('message', (m: ToWorker) => {
    switch (m.t) {
      case 'config':
        if (rt) return;
        rt = new WorkerRuntime(m.cfg, m.shm);
        rt.start().then(
          () => send({ t: 'ready', gen: m.gen }),
          (e: NodeJS.ErrnoException) => {
            send({ t: 'fatal', error: `${e.code ?? ''} ${e.message}`.trim() });
            setTimeout(() => process.exit(3), 50);
          },
        );
        break;
      case 'picked':
        rt?.onPicked(m);
        break;
      case 'drain':
        rt?.drain(m.deadline);
        break;
      case 'stats?':
        send({ t: 'stats', id: m.id, snap: rt?.snapshot() ?? {} });
        break;
    }
  });
  process.on('disconnect', () => process.exit(0));
  // only now can the config be received (a message sent before the listener exists would be lost)
  send({ t: 'hello' });
}
