/**
 * The HTTP relay's own HTTP/1.1 client: keep-alive connections to one server (plain, or TLS with the server's `ssl`
 * option), owned by the relay. One request at a time per connection: its head written as one buffer, its body
 * streamed by its framing (the client's Content-Length kept, anything else re-chunked), the answer read by
 * ./response-parser.ts and handed to a RelayHandler (../http-relay.ts Attempt) as it comes; a connection whose answer
 * was whole and framed goes back to the pool (most recently used first), anything else is closed.
 *
 * Timeouts are the sockets' own: `timeout connect` while connecting, then `timeout server` as inactivity (waiting
 * for the answer, between its bytes, and as the longest an idle pooled connection is kept; less when the server's
 * Keep-Alive hint says so). Errors keep the socket's errno code (ECONNREFUSED, ECONNRESET, ...) or carry one of
 * ../../errors.ts ESERVER_* codes, which ../http-exchange.ts maps to retries, 502 and 504.
 */
import net from 'node:net';
import tls from 'node:tls';
import type { Timeouts } from '../../config.js';
import { ListenersError } from '../../errors.js';
import type { SslSpec } from '../../tls-schema.js';
import type { RelayBody } from '../messages.js';
import { writeHeadNow, writeNow } from '../send-now.js';
import { BadResponse, ResponseParser, type ResponseSink } from './response-parser.js';

/** What the client tells the relay of one request's attempt (the names are undici's dispatch handler's). */
export interface RelayHandler {
  /** a connection carries the request now; `abort` closes it (no callback follows) */
  onConnect(abort: () => void): void;
  /** body bytes went to the server */
  onBodySent(bytes: number): void;
  /** a head (1xx ones too); `resume` restarts reading after onData returned false */
  onHeaders(status: number, fields: string[], resume: () => void, reason: string): boolean;
  /** body bytes (a view of the socket's buffer); false: stop reading until `resume` */
  onData(chunk: Buffer): boolean;
  onComplete(): void;
  onError(err: Error): void;
}

export interface RelayRequest {
  method: string;
  path: string;
  /** flat [name, value, ...], hop-by-hop fields already dropped */
  headers: readonly string[];
  /** the client's request, when it has a body */
  body: RelayBody | null;
}

/** re-encryption to a server (the server's `ssl:` option) */
/** TLS to the server (`ssl:` on a server or group: ../../tls-schema.ts), its CA file read with the config */
export type ServerSsl = SslSpec;

export interface ServerAddress {
  host: string;
  port: number;
  ssl?: ServerSsl;
}

/** a request target the relay sends as it came: origin-form, absolute-form or `*`, no whitespace or controls */
function sendable(path: string): boolean {
  if (!(path[0] === '/' || path === '*' || path.startsWith('http://') || path.startsWith('https://'))) return false;
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f) return false;
  }
  return true;
}

/** The connections of one server (a listener's shared pool, or one client's own with `preface` = PROXY header). */
export class ServerPool {
  /** idle connections, most recently used last */
  private readonly idle: ServerConn[] = [];
  private readonly all = new Set<ServerConn>();
  private destroyed = false;

  constructor(
    readonly address: ServerAddress,
    readonly timeout: Timeouts,
    /** sent first on each new connection (the PROXY header of send-proxy) */
    readonly preface?: Buffer,
  ) {}

  dispatch(req: RelayRequest, h: RelayHandler): void {
    if (!sendable(req.path))
      throw new ListenersError('EREQUEST_INVALID', `request target ${JSON.stringify(req.path)} cannot be relayed`);
    let c = this.idle.pop();
    while (c?.dead) c = this.idle.pop();
    if (!c) {
      c = new ServerConn(this, this.open());
      this.all.add(c);
    }
    c.start(req, h);
  }

  /** a connection's answer is whole and it may carry another request */
  reuse(c: ServerConn, idleMs: number): void {
    if (this.destroyed) {
      c.destroy();
      return;
    }
    c.idle(idleMs);
    this.idle.push(c);
  }

  forget(c: ServerConn): void {
    this.all.delete(c);
    const i = this.idle.lastIndexOf(c);
    if (i >= 0) this.idle.splice(i, 1);
  }

  /** Close every connection (a busy one's request fails). */
  destroy(): Promise<void> {
    this.destroyed = true;
    for (const c of [...this.all]) c.destroy();
    return Promise.resolve();
  }

  private open(): net.Socket {
    const { host, port, ssl } = this.address;
    // (plain: the reads land in one buffer the worker's connections share, not a new one per read; see onRead)
    if (!ssl) return net.connect({ host, port, noDelay: true, onread: { buffer: READ_BUF, callback: onRead } });
    return tls.connect({
      host,
      port,
      servername: ssl.sni ?? (net.isIP(host) ? undefined : host),
      rejectUnauthorized: ssl.verify === 'required',
      ...(ssl.caPem ? { ca: ssl.caPem } : {}),
      ALPNProtocols: ['http/1.1'],
    });
  }
}

const NO_BODY_METHOD = 'HEAD';

/**
 * The read buffer of every plain server connection of the worker (net's `onread`): a read is handled whole before
 * the next one, and nothing keeps a view of it: the parser copies what it keeps (strings, a partial head or line),
 * and body bytes are copied before they go on (ServerConn.data). TLS connections read as streams.
 */
const READ_BUF = Buffer.alloc(64 * 1024);
const CONN = Symbol('tierlb.serverConn');
type Tagged = { [CONN]?: ServerConn };
/** a read into READ_BUF (`this`: the socket) */
function onRead(this: net.Socket, n: number, buf: Uint8Array): boolean {
  (this as Tagged)[CONN]?.read((buf as Buffer).subarray(0, n));
  return true;
}

class ServerConn implements ResponseSink {
  private readonly parser = new ResponseParser(this);
  private h: RelayHandler | undefined = undefined;
  private body: RelayBody | null = null;
  /** the body is re-chunked (the client's had no Content-Length) */
  private chunked = false;
  /** the request (with its body) is all written; the answer is whole */
  private sent = false;
  private answered = false;
  /** a final head came */
  private headed = false;
  private connecting = true;
  /** reads come in READ_BUF (onread): body bytes are copied before they go on */
  private readonly shared: boolean;
  dead = false;
  /** the server's Keep-Alive hint, ms (0: none) */
  private hint = 0;
  private pending: RelayRequest | undefined = undefined;
  readonly resume = (): void => {
    this.sock.resume();
  };
  private readonly abort = (): void => {
    this.h = undefined;
    this.destroy();
  };
  /** the socket's timeout now */
  private tmo = -1;
  private readonly onBodyData = (chunk: Buffer): void => this.bodyData(chunk);
  private readonly onBodyEnd = (): void => this.bodyEnd();
  private readonly onDrain = (): void => {
    this.body?.resume();
  };

  constructor(
    private readonly pool: ServerPool,
    private readonly sock: net.Socket,
  ) {
    this.timeoutMs(pool.timeout.connect);
    sock.once(sock instanceof tls.TLSSocket ? 'secureConnect' : 'connect', () => this.onOpen());
    this.shared = !pool.address.ssl;
    if (this.shared) (sock as Tagged)[CONN] = this;
    else sock.on('data', (d: Buffer) => this.read(d));
    sock.on('timeout', () => this.timedOut());
    sock.on('error', (e: Error) => this.fail(e));
    sock.on('close', () => this.closed());
  }

  start(req: RelayRequest, h: RelayHandler): void {
    this.h = h;
    this.sent = false;
    this.answered = false;
    this.headed = false;
    this.hint = 0;
    if (this.connecting) {
      this.pending = req;
      return;
    }
    this.timeoutMs(this.pool.timeout.server);
    this.send(req);
  }

  /** back in the pool: kept `ms` at most */
  idle(ms: number): void {
    this.timeoutMs(ms);
  }

  /** the socket's inactivity timeout (set only when it changes: reads and writes re-arm it anyway) */
  private timeoutMs(ms: number): void {
    if (ms === this.tmo) return;
    this.tmo = ms;
    this.sock.setTimeout(ms);
  }

  destroy(): void {
    if (this.dead) return;
    this.dead = true;
    this.detachBody();
    this.sock.destroy();
    this.pool.forget(this);
  }

  private onOpen(): void {
    this.connecting = false;
    if (this.pool.preface) this.sock.write(this.pool.preface);
    this.timeoutMs(this.pool.timeout.server);
    const req = this.pending;
    this.pending = undefined;
    if (req && this.h) this.send(req);
  }

  private send(req: RelayRequest): void {
    const h = this.h!;
    h.onConnect(this.abort);
    if (this.h !== h) return; // aborted at once
    const f = req.headers;
    let head = `${req.method} ${req.path} HTTP/1.1\r\n`;
    let host = false;
    let length = false;
    for (let i = 0; i < f.length; i += 2) {
      const k = f[i]!;
      if (k.length === 4 && !host && k.toLowerCase() === 'host') host = true;
      else if (k.length === 14 && !length && k.toLowerCase() === 'content-length') length = true;
      head += `${k}: ${f[i + 1]}\r\n`;
    }
    if (!host) {
      const a = this.pool.address;
      head += `host: ${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}\r\n`;
    }
    const body = req.body;
    this.chunked = body !== null && !length;
    head += this.chunked
      ? 'connection: keep-alive\r\ntransfer-encoding: chunked\r\n\r\n'
      : 'connection: keep-alive\r\n\r\n';
    this.parser.expect(req.method === NO_BODY_METHOD);
    writeHeadNow(this.sock, head);
    if (body === null) {
      this.sent = true;
      return;
    }
    this.body = body;
    body.on('data', this.onBodyData);
    body.once('end', this.onBodyEnd);
    body.resume();
  }

  private bodyData(chunk: Buffer): void {
    const sock = this.sock;
    let ok: boolean;
    if (this.chunked) {
      if (chunk.length === 0) return;
      sock.cork();
      sock.write(`${chunk.length.toString(16)}\r\n`, 'latin1');
      sock.write(chunk);
      ok = sock.write('\r\n', 'latin1');
      sock.uncork();
    } else ok = writeNow(sock, chunk);
    this.h?.onBodySent(chunk.length);
    if (!ok) {
      this.body?.pause();
      sock.once('drain', this.onDrain);
    }
  }

  private bodyEnd(): void {
    if (this.chunked) this.sock.write('0\r\n\r\n', 'latin1');
    this.detachBody();
    this.sent = true;
    if (this.answered) this.done();
  }

  private detachBody(): void {
    const b = this.body;
    if (!b) return;
    this.body = null;
    b.off('data', this.onBodyData);
    b.off('end', this.onBodyEnd);
    this.sock.off('drain', this.onDrain);
  }

  read(d: Buffer): void {
    try {
      this.parser.feed(d);
    } catch (e) {
      if (!(e instanceof BadResponse)) throw e;
      this.fail(e);
    }
  }

  // ---- the parser's callbacks ----

  head(status: number, reason: string, fields: string[], keepAlive: boolean): void {
    if (status >= 200) {
      this.headed = true;
      if (keepAlive) this.hint = keepAliveHint(fields);
    }
    const h = this.h;
    if (h) h.onHeaders(status, fields, this.resume, reason);
  }

  data(chunk: Buffer): void {
    const h = this.h;
    // (a view of READ_BUF is copied: the client's socket may keep it past this read)
    if (h && !h.onData(this.shared ? Buffer.from(chunk) : chunk)) this.sock.pause();
  }

  complete(): void {
    this.answered = true;
    const h = this.h;
    // an answer before the whole request body: the connection cannot carry another request
    if (!this.sent) {
      this.h = undefined;
      this.destroy();
      h?.onComplete();
      return;
    }
    this.done();
    h?.onComplete();
  }

  private done(): void {
    this.h = undefined;
    if (this.dead) return;
    if (!this.parser.keepAlive) {
      this.destroy();
      return;
    }
    this.sock.resume();
    const server = this.pool.timeout.server;
    this.pool.reuse(this, this.hint > 0 ? Math.min(server, this.hint) : server);
  }

  // ---- the socket's end ----

  private timedOut(): void {
    const h = this.h;
    const code = this.connecting
      ? 'ESERVER_CONNECT_TIMEOUT'
      : this.headed
        ? 'ESERVER_BODY_TIMEOUT'
        : 'ESERVER_HEADERS_TIMEOUT';
    this.h = undefined;
    this.destroy();
    if (!h) return;
    const what = this.connecting ? 'connect' : this.headed ? 'the answer to go on' : 'the answer';
    h.onError(new ListenersError(code, `timeout ${this.connecting ? 'connect' : 'server'}: waited for ${what}`));
  }

  private fail(e: Error): void {
    const h = this.h;
    this.h = undefined;
    this.destroy();
    h?.onError(e);
  }

  private closed(): void {
    if (this.h && this.parser.closed()) {
      // the body ran until the close (complete() has run)
      this.dead = true;
      this.pool.forget(this);
      return;
    }
    const h = this.h;
    this.h = undefined;
    this.dead = true;
    this.detachBody();
    this.pool.forget(this);
    h?.onError(new ListenersError('ESERVER_CLOSED', 'the server closed its connection before the whole answer'));
  }
}

/** Keep-Alive: timeout=N of an answer, in ms less a second (the server may close at N), 0 if none */
function keepAliveHint(fields: string[]): number {
  for (let i = 0; i < fields.length; i += 2) {
    const k = fields[i]!;
    if (k.length !== 10 || k.toLowerCase() !== 'keep-alive') continue;
    const m = /(?:^|[\s,])timeout\s*=\s*(\d+)/i.exec(fields[i + 1]!);
    if (m) return Math.max(1, Number(m[1]) * 1000 - 1000);
  }
  return 0;
}
