/**
 * One listener in a worker: accepts (the primary owns the listening socket and hands connections round-robin to the
 * workers), reads the PROXY header when `accept_proxy`, and dispatches: mode tcp to ./tcp-relay.ts; mode http to
 * node:http, whose requests become ./http-exchange.ts and whose upgrades go to ./upgrade.ts. It counts in
 * ./runtime.ts and picks its servers through ./server-picks.ts.
 */
import http from 'node:http';
import type http2 from 'node:http2';
import net from 'node:net';
import type tls from 'node:tls';
import type { ProxyServer } from 'http-proxy-3';
import { log } from '../../common/log.js';
import type { TimerHandle, Timers } from '../../common/timers.js';
import { isHashing, type PickRequest } from '../balance/index.js';
import type { ListenerSpec } from '../config.js';
import { decode } from '../proxy-protocol.js';
import { ClientConn, type ClientInfo, type ConnContext, connOf, setConn } from './client-conn.js';
import { errorResponse } from './error-pages.js';
import { H2Conn, H2Front } from './h2.js';
import { type ExchangeHost, HttpExchange } from './http-exchange.js';
import { ServerPools } from './http-relay.js';
import { ListenerCounters } from './runtime.js';
import type { PickReply, ServerPicks } from './server-picks.js';
import { netConnect, relayTcp, type TcpHost } from './tcp-relay.js';
import { type TlsFront, tlsFront } from './tls.js';
import { relayUpgrade, type UpgradeHost, wsProxy } from './upgrade.js';

const NO_KEYS: PickRequest = Object.freeze({});

/** the handshake timer of a raw socket handed to TLS */
const handshakeTimers = new WeakMap<net.Socket, TimerHandle>();

export class Listener implements ExchangeHost, TcpHost, UpgradeHost, ConnContext {
  readonly counters = new ListenerCounters();
  readonly pools: ServerPools;
  readonly timeout: ListenerSpec['timeout'];
  private readonly server: net.Server;
  private readonly http?: http.Server;
  /** WebSocket upgrades */
  private readonly proxy?: ProxyServer;
  /** TLS termination (./tls.ts), and HTTP/2 on it (./h2.ts) */
  private readonly tls?: TlsFront;
  private readonly h2?: H2Front;
  draining = false;
  readonly isDraining = (): boolean => this.draining;
  /** balance hdr(name): the header, lower case */
  private readonly hdrName?: string;
  /** the balance algorithm hashes a key of the request */
  private readonly hashing: boolean;
  readonly connect = netConnect;

  constructor(
    readonly spec: ListenerSpec,
    private readonly picks: ServerPicks,
    readonly timers: Timers,
    /** a connection closed (the worker may be done draining) */
    private readonly onClose: () => void,
    /** TLS session ticket keys (the same in every worker) */
    ticketKeys?: Buffer,
  ) {
    this.timeout = spec.timeout;
    this.hdrName = /^hdr\((.+)\)$/.exec(spec.balance)?.[1]?.toLowerCase();
    this.hashing = isHashing(spec.balance);
    this.pools = new ServerPools(spec.timeout);
    this.server = net.createServer({ allowHalfOpen: spec.mode === 'tcp', pauseOnConnect: true }, (s) =>
      this.onConnection(s),
    );
    if (spec.mode === 'http') {
      this.http = http.createServer({
        // idle keep-alive connections are closed by our own timer at exactly timeout http-keep-alive (ClientConn);
        // Node's own idle timeout (keepAliveTimeout + 1 s on the socket) is a backstop behind it
        keepAliveTimeout: spec.timeout.httpKeepAlive,
        // timeout http-request is our own timer (ClientConn); Node's checks would cut requests on their own
        // clock (headers 60 s, a whole request, body included, 300 s) and through 'clientError' (answered 400)
        headersTimeout: 0,
        requestTimeout: 0,
      });
      // timeout client: Node sets each socket's timeout to server.timeout at the connection and again at every
      // request (after a response it holds keepAliveTimeout): a timeout set on the socket alone lasts one request
      this.http.timeout = spec.timeout.client;
      this.http.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
        const conn = this.conn(req.socket);
        HttpExchange.start(this, req, res, conn, this.pickRequest(conn.info, req));
      });
      this.http.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
        void relayUpgrade(this, this.proxy!, req, socket, head, this.conn(socket), (r) =>
          this.pickRequest(this.conn(socket).info, r),
        );
      });
      this.http.on('clientError', (err: NodeJS.ErrnoException, socket: net.Socket) => {
        if (err.code === 'ECONNRESET' || !socket.writable) {
          socket.destroy();
          return;
        }
        this.counters.stats.ereq++;
        this.counters.hrsp(400);
        socket.end(errorResponse(400));
      });
      this.proxy = wsProxy();
    }
    if (spec.tls) {
      this.tls = tlsFront(
        spec,
        ticketKeys,
        (s) => this.onSecure(s),
        (err, s) => {
          // (a failed handshake is no request error: HAProxy counts it apart, in its SSL stats)
          log.debug({ listener: spec.name, src: s.remoteAddress, err: err.message }, 'TLS handshake failed');
        },
      );
      if (spec.mode === 'http' && spec.tls.alpn.includes('h2'))
        this.h2 = new H2Front(spec.timeout.client, (req, res, conn) => this.onH2Request(req, res, conn));
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

  // ---- what the requests, relays and connections ask of their listener ----

  pickThen(req: PickRequest, exclude: readonly string[], done: (r: PickReply) => void): void {
    this.picks.pickThen(this.spec.name, req, exclude, done);
  }

  pick(req: PickRequest, exclude: readonly string[]): Promise<PickReply> {
    return this.picks.pick(this.spec.name, req, exclude);
  }

  release(server: string): void {
    this.picks.release(this.spec.name, server);
  }

  requestTimedOut(): void {
    this.counters.stats.ereq++;
    this.counters.hrsp(408);
  }

  // ---- connections ----

  private onConnection(sock: net.Socket): void {
    this.counters.opened(sock);
    sock.on('error', () => {});
    sock.once('close', () => {
      this.counters.closed(sock);
      connOf(sock)?.closed();
      this.onClose();
    });
    const peer: ClientInfo = {
      src: sock.remoteAddress ?? '',
      srcPort: sock.remotePort ?? 0,
      dst: sock.localAddress ?? '',
      dstPort: sock.localPort ?? 0,
    };
    if (!this.spec.acceptProxy) {
      this.dispatch(sock, setConn(sock, new ClientConn(peer, sock, this)), undefined);
      return;
    }
    // accept-proxy: read the PROXY header (v1 or v2) before anything else
    let buf = Buffer.alloc(0);
    const timer = this.timers.set(this.spec.timeout.httpRequest || this.spec.timeout.client, () => sock.destroy());
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const r = decode(buf);
      if (r.status === 'incomplete') return;
      this.timers.clear(timer);
      sock.off('data', onData);
      sock.pause();
      if (r.status === 'error') {
        this.counters.stats.ereq++;
        log.debug({ listener: this.spec.name, reason: r.reason }, 'bad PROXY header');
        sock.destroy();
        return;
      }
      const h = r.header;
      const info =
        h.command === 'PROXY' && h.src && h.dst
          ? { src: h.src, srcPort: h.srcPort ?? 0, dst: h.dst, dstPort: h.dstPort ?? 0 }
          : peer;
      this.dispatch(sock, setConn(sock, new ClientConn(info, sock, this)), buf.subarray(r.length));
    };
    sock.on('data', onData);
    sock.resume();
  }

  private dispatch(sock: net.Socket, conn: ClientConn, rest: Buffer | undefined): void {
    if (this.tls) {
      this.handshake(sock, rest);
      return;
    }
    if (this.spec.mode === 'tcp') {
      void relayTcp(this, sock, conn.info, this.pickRequest(conn.info), rest);
      return;
    }
    if (rest?.length) sock.unshift(rest);
    // (timeout client: this.http.timeout, applied by Node on 'connection'; on expiry it destroys the socket)
    conn.awaitRequest(false);
    this.http!.emit('connection', sock);
    sock.resume();
  }

  // ---- TLS ----

  /** Hand the socket to the TLS server; the handshake has `timeout http-request` (mode tcp: `timeout client`). */
  private handshake(sock: net.Socket, rest: Buffer | undefined): void {
    // (bytes read with the PROXY header go back to the socket: TLS takes them from there; the socket stays paused)
    if (rest?.length) sock.unshift(rest);
    const t = this.spec.timeout;
    const ms = this.spec.mode === 'http' ? t.httpRequest || t.client : t.client;
    if (ms > 0) {
      const timer = this.timers.set(ms, () => sock.destroy());
      sock.once('close', () => this.timers.clear(timer));
      handshakeTimers.set(sock, timer);
    }
    this.tls!.server.emit('connection', sock);
  }

  /** A TLS connection is up: to the TCP relay, HTTP/2 or node:http, with the client as its raw socket knows it. */
  private onSecure(s: tls.TLSSocket): void {
    const raw = (s as unknown as { _parent?: net.Socket })._parent;
    const timer = raw && handshakeTimers.get(raw);
    if (timer) this.timers.clear(timer);
    const info = (raw && connOf(raw)?.info) ?? {
      src: s.remoteAddress ?? '',
      srcPort: s.remotePort ?? 0,
      dst: s.localAddress ?? '',
      dstPort: s.localPort ?? 0,
    };
    s.on('error', () => {});
    if (this.spec.mode === 'tcp') {
      void relayTcp(this, s, info, this.pickRequest(info), undefined);
      return;
    }
    if (s.alpnProtocol === 'h2' && this.h2) {
      const conn = new H2Conn(info, s, this);
      if (raw) setConn(raw, conn);
      setConn(s, conn);
      this.h2.accept(s, conn);
      return;
    }
    // HTTP/1.1 over TLS: node:http on the TLS socket, the waits on its decrypted bytes
    const conn = new ClientConn(info, s, this);
    if (raw) setConn(raw, conn);
    setConn(s, conn);
    conn.awaitRequest(false);
    this.http!.emit('connection', s);
  }

  private onH2Request(req: http2.Http2ServerRequest, res: http2.Http2ServerResponse, conn: H2Conn): void {
    const r = req as unknown as http.IncomingMessage;
    HttpExchange.start(this, r, res as unknown as http.ServerResponse, conn, this.pickRequest(conn.info, r));
  }

  /** the connection's state (made here for a socket that did not come through onConnection) */
  private conn(sock: net.Socket): ClientConn {
    return (
      connOf(sock) ??
      setConn(
        sock,
        new ClientConn(
          { src: sock.remoteAddress ?? '', srcPort: sock.remotePort ?? 0, dst: '', dstPort: 0 },
          sock,
          this,
        ),
      )
    );
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

  /** Stop accepting; in-flight requests finish with `Connection: close`. */
  drain(): void {
    this.draining = true;
    this.server.close();
    this.h2?.drain();
    for (const s of this.counters.sockets) {
      // idle keep-alive connections: close once the current request (if any) is answered
      if (this.spec.mode === 'http' && (connOf(s)?.busy ?? 0) === 0) {
        // a request may be on its way: give it the keep-alive timeout to arrive, then close
        this.timers.set(Math.min(this.spec.timeout.httpKeepAlive, 2000), () => {
          if ((connOf(s)?.busy ?? 0) === 0) s.destroy();
        });
      }
    }
  }
}
