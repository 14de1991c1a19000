/**
 * HTTP/2 to clients: a TLS connection whose ALPN chose `h2` becomes a node:http2 session (the http2 server here
 * never listens: ./listener.ts hands it the TLS socket), and each of its streams becomes the same HttpExchange an
 * HTTP/1.1 request does (node:http2's compatibility request and response), relayed to the servers over HTTP/1.1 with
 * the same balancing, retries, timeouts, stats and forwardfor. What differs is the connection's life:
 *
 *  - the wait between requests is the session's: no stream for `timeout http-keep-alive` (the first one:
 *    `timeout http-request`) closes it with GOAWAY; `timeout client` is the session's inactivity timeout;
 *  - a drain sends GOAWAY: streams in flight finish, new ones go to a new connection;
 *  - the request's connection-specific fields are refused by node:http2 (RFC 9113 8.2.2, a malformed request);
 *    `:authority` becomes Host; the servers' connection-specific response fields are dropped (./http-relay.ts);
 *  - what node:http2 lets through but RFC 9113 8.2.1 / 8.3.1 call malformed is refused here (RST_STREAM
 *    PROTOCOL_ERROR, nothing relayed; see `malformed`): a field name that is not a lower-case token, a value with
 *    CR, LF or NUL or starting or ending with white space, pseudo-field values with spaces or controls, and a Host
 *    naming another site than `:authority`. Relayed to an HTTP/1.1 server, a CR LF in a value would become a field
 *    line (or a request) of its own. (nghttp2 today drops a regular field whose name or value is invalid, silently,
 *    so only pseudo-fields and Host reach these checks; they stay so that a change of node:http2 cannot let such a
 *    field through toward an HTTP/1.1 server.)
 */
import http2 from 'node:http2';
import type tls from 'node:tls';
import type { Timer } from '../../common/timers.js';
import { ClientConn, type ClientInfo, type ConnContext } from './client-conn.js';

/** a lower-case token (RFC 9110 5.1, RFC 9113 8.2.1) */
const FIELD_NAME = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;
/** CR, LF, NUL anywhere, or white space at either end (RFC 9113 8.2.1) */
const BAD_VALUE = /[\0\r\n]|^[ \t]|[ \t]$/;
/** pseudo-field values are a method, scheme, authority or target: no white space or controls at all */
const BAD_PSEUDO = /[\0-\x20\x7f]/;

/** A request RFC 9113 calls malformed that node:http2 passed: its name and value checks, Host against :authority. */
export function malformed(req: Pick<http2.Http2ServerRequest, 'rawHeaders'>): boolean {
  const raw = req.rawHeaders;
  let authority: string | undefined;
  const hosts: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1] ?? '';
    if (name.charCodeAt(0) === 58 /* : */) {
      if (BAD_PSEUDO.test(value)) return true;
      if (name === ':authority') authority = value;
      continue;
    }
    if (!FIELD_NAME.test(name) || BAD_VALUE.test(value)) return true;
    if (name === 'host') hosts.push(value);
  }
  if (hosts.length > 1) return true;
  // RFC 9113 8.3.1: a Host naming another site than :authority (the server would see Host, the rules :authority)
  return authority !== undefined && hosts.length === 1 && hosts[0]!.toLowerCase() !== authority.toLowerCase();
}

/** An h2 client connection: its streams are its requests in flight (`busy`), the wait between them the session's. */
export class H2Conn extends ClientConn {
  session: http2.ServerHttp2Session | undefined = undefined;
  private idleWait: Timer | undefined = undefined;

  constructor(
    info: ClientInfo,
    sock: tls.TLSSocket,
    private readonly ctx: ConnContext,
  ) {
    super(info, sock, ctx);
  }

  override awaitRequest(afterResponse: boolean): void {
    if (this.busy > 0) return;
    const t = this.ctx.timeout;
    const ms = afterResponse && t.httpKeepAlive > 0 ? t.httpKeepAlive : t.httpRequest;
    if (ms <= 0) return;
    (this.idleWait ??= this.ctx.timers.timer(() => {
      if (this.busy === 0 && this.session && !this.session.closed) this.session.close();
    })).arm(ms);
  }

  override stopWait(): void {
    this.idleWait?.stop();
  }

  override closed(): void {
    this.idleWait?.stop();
    super.closed();
  }
}

export type H2Request = (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse, conn: H2Conn) => void;

/** The h2 side of a listener: its sessions (for the drain) and their requests. */
export class H2Front {
  private readonly server: http2.Http2Server;
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private readonly conns = new WeakMap<http2.ServerHttp2Session, H2Conn>();
  /** the connection whose session is being made (http2 makes it synchronously on 'connection') */
  private accepting: H2Conn | undefined = undefined;

  constructor(clientTimeout: number, onRequest: H2Request) {
    // HAProxy's tune.h2.max-concurrent-streams
    this.server = http2.createServer({ settings: { maxConcurrentStreams: 100 } });
    this.server.on('session', (session: http2.ServerHttp2Session) => {
      const conn = this.accepting!;
      conn.session = session;
      this.conns.set(session, conn);
      this.sessions.add(session);
      session.on('error', () => {});
      session.once('close', () => this.sessions.delete(session));
      if (clientTimeout > 0) session.setTimeout(clientTimeout, () => session.destroy());
    });
    this.server.on('request', (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => {
      const conn = this.conns.get(req.stream.session as http2.ServerHttp2Session);
      if (!conn) {
        res.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
        return;
      }
      if (malformed(req)) {
        req.stream.close(http2.constants.NGHTTP2_PROTOCOL_ERROR);
        return;
      }
      const h = req.headers;
      if (h.host === undefined && h[':authority'] !== undefined) h.host = h[':authority'];
      onRequest(req, res, conn);
    });
    this.server.on('sessionError', () => {});
  }

  /** A TLS connection that chose h2. */
  accept(sock: tls.TLSSocket, conn: H2Conn): void {
    this.accepting = conn;
    try {
      this.server.emit('connection', sock);
    } finally {
      this.accepting = undefined;
    }
    conn.awaitRequest(false);
  }

  /** GOAWAY to every session: what is in flight finishes, nothing new starts here. */
  drain(): void {
    for (const s of this.sessions) if (!s.closed) s.close();
  }
}
