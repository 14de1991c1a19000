/**
 * A cluster worker: the listeners of one config generation. It accepts connections (the primary owns the listening
 * sockets and hands them round-robin to workers), reads the PROXY header when `accept_proxy`, asks the primary
 * for a server (see ./pool.ts for why the choice is central) and relays: TCP by two-way piping with half-close,
 * HTTP through http-proxy-3 with keep-alive agents. It counts everything in a WorkerSnapshot the primary collects.
 *
 * On `drain` it stops accepting, answers in-flight HTTP requests with `Connection: close`, and exits when its last
 * connection closes (or at the drain deadline).
 */
import http from 'node:http';
import net from 'node:net';
import type { Readable } from 'node:stream';
import { ProxyServer } from 'http-proxy-3';
import { log } from '../log.js';
import type { PickRequest } from './balance/index.js';
import type { ListenerSpec, ListenersConfig } from './config.js';
import type { FromWorker, ServerTarget, ToWorker } from './ipc.js';
import { SharedPicker } from './picker.js';
import { decode, encode, headerFor } from './proxy-protocol.js';
import { openRegion, type ShmInfo } from './shared.js';
import {
  emptyListenerStats,
  emptyServerStats,
  type WorkerListenerStats,
  type WorkerServerStats,
  type WorkerSnapshot,
} from './stats.js';

type PickReply = Extract<ToWorker, { t: 'picked' }>;

/** What http-proxy-3 pipes to the server request of a bodyless request: nothing, then the end. */
const EMPTY_BODY = {
  pipe<T extends NodeJS.WritableStream>(dest: T): T {
    dest.end();
    return dest;
  },
};

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

/** HAProxy's built-in error page for `code`, as a whole HTTP/1.1 response (used on raw sockets). */
export function errorResponse(code: number): string {
  const [reason, text] = ERR_PAGES[code] ?? ['Error', 'Error'];
  const body = `<html><body><h1>${code} ${reason}</h1>\n${text}\n</body></html>\n`;
  return (
    `HTTP/1.1 ${code} ${reason}\r\ncontent-length: ${body.length}\r\ncache-control: no-cache\r\n` +
    `content-type: text/html\r\nconnection: close\r\n\r\n${body}`
  );
}

function send(msg: FromWorker): void {
  process.send?.(msg);
}

const RETRYABLE = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ETIMEDOUT',
  'ECONNTIMEOUT',
  'EPIPE',
]);

/** An http.Agent that writes a PROXY header first on each (never reused) server connection. */
class ProxyHeaderAgent extends http.Agent {
  constructor(
    private readonly header: Buffer,
    timeout: number,
  ) {
    super({ keepAlive: false, timeout });
  }
  override createConnection(opts: net.NetConnectOpts, cb?: (err: Error | null, s: net.Socket) => void): net.Socket {
    const s = net.connect(opts);
    s.write(this.header);
    void cb;
    return s;
  }
}

class Listener {
  readonly stats: WorkerListenerStats = emptyListenerStats();
  private readonly server: net.Server;
  private readonly http?: http.Server;
  private readonly proxy?: ProxyServer;
  private readonly agents = new Map<string, http.Agent>();
  readonly sockets = new Set<net.Socket>();
  /** per server (by name): the options handed to http-proxy-3, built once (bodyless / with a body) */
  private readonly webOpts = new Map<string, [WebOpts, WebOpts]>();
  draining = false;
  /** balance hdr(name): the header, lower case */
  private readonly hdrName?: string;

  constructor(
    readonly spec: ListenerSpec,
    private readonly w: WorkerRuntime,
  ) {
    this.hdrName = /^hdr\((.+)\)$/.exec(spec.balance)?.[1]?.toLowerCase();
    this.server = net.createServer({ allowHalfOpen: spec.mode === 'tcp', pauseOnConnect: true }, (s) =>
      this.onConnection(s),
    );
    if (spec.mode === 'http') {
      this.http = http.createServer({
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
      this.proxy.on('proxyReq', (proxyReq: http.ClientRequest, req: http.IncomingMessage) =>
        this.onProxyReq(proxyReq, req),
      );
      this.proxy.on('proxyRes', (proxyRes: http.IncomingMessage, req: http.IncomingMessage) => {
        const ctx = (req as Tagged<ReqCtx>)[CTX];
        if (ctx) ctx.responded = true;
        // hop-by-hop: the server's keep-alive hint (e.g. timeout=30) is not the listener's timeout http-keep-alive
        if (proxyRes.headers['keep-alive'] !== undefined) delete proxyRes.headers['keep-alive'];
        if (this.draining) proxyRes.headers.connection = 'close';
      });
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
    this.armRequestTimer(sock);
    this.http!.emit('connection', sock);
    sock.resume();
  }

  /** timeout http-request: the next request's headers must be complete in time, else 408 (or a silent close if the
   * client sent nothing at all — an idle keep-alive connection). One timer per connection, re-armed per request. */
  private armRequestTimer(sock: net.Socket): void {
    const c = this.conn(sock);
    c.before = sock.bytesRead;
    c.armed = true;
    if (c.timer) {
      // (a cleared timer cannot be refreshed: stopRequestTimer only disarms it)
      c.timer.refresh();
      return;
    }
    c.timer = setTimeout(() => {
      if (!c.armed || c.busy > 0 || sock.destroyed) return;
      if (sock.bytesRead > c.before) {
        this.stats.ereq++;
        this.hrsp(408);
        sock.end(errorResponse(408));
        setTimeout(() => sock.destroy(), 1000).unref();
      } else sock.destroy();
    }, this.spec.timeout.httpRequest);
    c.timer.unref();
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
  // The per-request path allocates one ReqCtx, adds one 'finish' and one 'close' listener to the response (shared
  // functions, no closures) and takes no promise when the pick is immediate (the shared-memory picker).

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const sock = req.socket;
    // (timeout client is the socket's timeout, set by Node from this.http.timeout with each request; activity re-arms it)
    const conn = this.conn(sock);
    conn.armed = false;
    conn.busy++;
    if (this.draining) res.setHeader('connection', 'close');
    // hop-by-hop headers stay on this hop: the server connection is kept alive by our agent
    const h = req.headers;
    if (h.connection !== undefined) delete h.connection;
    if (h['keep-alive'] !== undefined) delete h['keep-alive'];
    if (h['proxy-connection'] !== undefined) delete h['proxy-connection'];
    const info = conn.info;
    if (this.spec.forwardfor) {
      const xff = h['x-forwarded-for'];
      h['x-forwarded-for'] = xff ? `${xff}, ${info.src}` : info.src;
      h['x-forwarded-proto'] = 'http';
      if (h.host) h['x-forwarded-host'] = h.host;
    }
    const bodyless = !h['transfer-encoding'] && (h['content-length'] === undefined || h['content-length'] === '0');
    const ctx = new ReqCtx(this, req, res, conn, bodyless, this.pickRequest(info, req));
    (req as Tagged<ReqCtx>)[CTX] = ctx;
    (res as Tagged<ReqCtx>)[CTX] = ctx;
    res.on('finish', onResFinish);
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
    ctx.connected = false;
    ctx.upstream = undefined;
    ctx.live = true;
    const gen = ++ctx.gen;
    const { req, res } = ctx;
    let opts: WebOpts;
    if (t.sendProxy) {
      const info = ctx.conn.info;
      opts = {
        target: { host: t.host, port: t.port, protocol: 'http:' },
        agent: new ProxyHeaderAgent(
          encode(headerFor(info.src, info.srcPort, info.dst, info.dstPort), t.sendProxy === 'v1' ? 1 : 2),
          this.spec.timeout.server,
        ),
        buffer: ctx.bodyless ? (EMPTY_BODY as unknown as Readable) : undefined,
      };
    } else opts = this.opts(t)[ctx.bodyless ? 0 : 1];
    this.proxy!.web(req, res, opts, (err: Error) => {
      if (gen === ctx.gen && ctx.live) this.failed(ctx, err);
    });
  }

  /** the attempt's end: its server's bytes */
  endAttempt(ctx: ReqCtx): void {
    if (!ctx.live) return;
    ctx.live = false;
    const s = ctx.upstream;
    if (s && ctx.target) {
      const ss = this.serverStats(ctx.target.name);
      ss.bin += s.bytesWritten - ctx.w0;
      ss.bout += s.bytesRead - ctx.r0;
    }
  }

  private failed(ctx: ReqCtx, err: Error): void {
    this.endAttempt(ctx);
    const ss = this.serverStats(ctx.target!.name);
    const code = (err as NodeJS.ErrnoException).code ?? '';
    const connectPhase = !ctx.connected || code === 'ECONNTIMEOUT';
    if (connectPhase) ss.econ++;
    else ss.eresp++;
    this.releaseAttempt(ctx);
    if (ctx.clientGone) return;
    const res = ctx.res;
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const retryable = ctx.bodyless && !ctx.responded && RETRYABLE.has(code) && code !== 'ESERVERTIMEOUT';
    if (retryable && ctx.attempt < this.spec.retries) {
      ctx.attempt++;
      ss.wretr++;
      // (the next pick after the failed attempt's own events, as the promise did before)
      queueMicrotask(() => this.attempt(ctx));
      return;
    }
    this.reply(res, code === 'ESERVERTIMEOUT' ? 504 : 502);
  }

  /** the client's response closed (sent, or the client went away) */
  resClosed(ctx: ReqCtx): void {
    const { res, conn } = ctx;
    const sock = ctx.req.socket;
    conn.busy--;
    if (this.draining && !res.writableFinished) sock.destroy();
    else if (!sock.destroyed) this.armRequestTimer(sock);
    ctx.clientGone = true;
    this.releaseAttempt(ctx);
    this.endAttempt(ctx);
  }

  releaseAttempt(ctx: ReqCtx): void {
    if (ctx.released || !ctx.target) return;
    ctx.released = true;
    this.w.release(this.spec.name, ctx.target.name);
  }

  /** the options of a request to `t`, made once per server */
  private opts(t: ServerTarget): [WebOpts, WebOpts] {
    let o = this.webOpts.get(t.name);
    if (!o || o[0].target.host !== t.host || o[0].target.port !== t.port) {
      const target = { host: t.host, port: t.port, protocol: 'http:' };
      const agent = this.agent(t);
      // no body to send (and a retry could not read the request again): end the server request at once
      o = [
        { target, agent, buffer: EMPTY_BODY as unknown as Readable },
        { target, agent, buffer: undefined },
      ];
      this.webOpts.set(t.name, o);
    }
    return o;
  }

  onProxyReq(proxyReq: http.ClientRequest, req: http.IncomingMessage): void {
    const ctx = (req as Tagged<ReqCtx>)[CTX];
    if (!ctx) return;
    const sock = proxyReq.socket;
    if (sock) {
      this.serverStats(ctx.target!.name).stot++;
      ctx.upstream = sock;
      ctx.w0 = sock.bytesWritten;
      ctx.r0 = sock.bytesRead;
      // timeout server: the agents' socket timeout (a server's keep-alive hint may have lowered it on an idle socket)
      if (sock.timeout !== this.spec.timeout.server) sock.setTimeout(this.spec.timeout.server);
    }
    if (sock?.connecting) {
      const timer = setTimeout(() => {
        proxyReq.destroy(Object.assign(new Error('connect timeout'), { code: 'ECONNTIMEOUT' }));
      }, this.spec.timeout.connect);
      sock.once('connect', () => {
        ctx.connected = true;
        clearTimeout(timer);
      });
      sock.once('close', () => clearTimeout(timer));
    } else ctx.connected = true;
    // the request's 'timeout' comes from its socket's (the agent's `timeout`)
    proxyReq.on('timeout', onServerTimeout);
  }

  private agent(t: ServerTarget): http.Agent {
    let a = this.agents.get(t.name);
    if (!a) {
      a = new http.Agent({
        keepAlive: true,
        keepAliveMsecs: 1000,
        maxFreeSockets: 256,
        // the most recently used idle connection first: the others may time out, the hot ones stay warm
        scheduling: 'lifo',
        timeout: this.spec.timeout.server,
      });
      this.agents.set(t.name, a);
    }
    return a;
  }

  reply(res: http.ServerResponse, code: number): void {
    if (res.headersSent || res.destroyed) return;
    const [reason, text] = ERR_PAGES[code] ?? ['Error', 'Error'];
    const body = `<html><body><h1>${code} ${reason}</h1>\n${text}\n</body></html>\n`;
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

interface WebOpts {
  target: { host: string; port: number; protocol: string };
  agent: http.Agent;
  buffer: Readable | undefined;
}

/** A client connection: who the client is, its requests in flight, its `timeout http-request` timer. */
class ConnState {
  busy = 0;
  armed = false;
  before = 0;
  timer: NodeJS.Timeout | undefined = undefined;
  constructor(readonly info: ClientInfo) {}
}

/** One HTTP request through its attempts. */
class ReqCtx {
  /** servers tried (redispatch excludes them) */
  readonly tried: string[] = [];
  attempt = 0;
  target: ServerTarget | undefined = undefined;
  responded = false;
  connected = false;
  released = true;
  clientGone = false;
  /** the current attempt: its number, whether it is still running, its server connection and its byte counts then */
  gen = 0;
  live = false;
  upstream: net.Socket | undefined = undefined;
  w0 = 0;
  r0 = 0;
  onPicked: ((r: PickReply) => void) | undefined = undefined;
  constructor(
    readonly l: Listener,
    readonly req: http.IncomingMessage,
    readonly res: http.ServerResponse,
    readonly conn: ConnState,
    readonly bodyless: boolean,
    readonly pick: PickRequest,
  ) {}
}

function onResFinish(this: http.ServerResponse): void {
  (this as Tagged<ReqCtx>)[CTX]?.l.hrsp(this.statusCode);
}

function onResClose(this: http.ServerResponse): void {
  const ctx = (this as Tagged<ReqCtx>)[CTX];
  if (ctx) ctx.l.resClosed(ctx);
}

function onServerTimeout(this: http.ClientRequest): void {
  this.destroy(Object.assign(new Error('server timeout'), { code: 'ESERVERTIMEOUT' }));
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
      picker.acquire(req, exclude, Date.now(), (r) =>
        done(typeof r === 'number' ? replies[r]! : { t: 'picked', id: 0, err: r }),
      );
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
      const now = Date.now();
      for (const { picker } of this.pickers.values()) {
        picker.serveQueue(now);
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
      if (i !== undefined) local.picker.release(i, Date.now());
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
      case 'state':
        break;
    }
  });
  process.on('disconnect', () => process.exit(0));
  // only now can the config be received (a message sent before the listener exists would be lost)
  send({ t: 'hello' });
}
