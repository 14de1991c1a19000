/**
 * One listener in a worker: accepts (the primary owns the listening socket and hands connections round-robin to the
 * workers), reads the PROXY header when `accept_proxy`, and dispatches: mode tcp to ./tcp-relay.ts (the group
 * use_group picks by src/tls); mode http to the listener's own HTTP/1 server side (./h1/client-session.ts, one
 * session per connection), whose requests and upgrades go through ./route-request.ts (its routing rules, compiled
 * once here) to their group's ./http-exchange.ts or ./upgrade.ts. It counts in
 * ./runtime.ts (its FRONTEND row); each group (./groups.ts) picks its servers through ./server-picks.ts.
 * With `tls:` the socket goes through ./tls.ts first; ALPN h2 connections go to ./h2.ts, whose streams take the same
 * ./route-request.ts path as HTTP/1.1 requests.
 */
import type http2 from 'node:http2';
import net from 'node:net';
import type tls from 'node:tls';
import type { ProxyServer } from 'http-proxy-3';
import { log } from '../../common/log.js';
import type { DeadlineTimers, TimerHandle } from '../../common/timers.js';
import type { ListenerSpec } from '../config.js';
import { ListenersError } from '../errors.js';
import { decode } from '../proxy-protocol.js';
import { Router } from '../routing/rules.js';
import { getSplicer, type Splicer } from '../splice/splice.js';
import { acceptBatch, acceptMore, plainSocket, reopen } from './accept-batch.js';
import { type AcceptShare, ShareGate } from './accept-share.js';
import { ClientConn, type ClientInfo, type ConnContext, connOf, peerOf, setConn } from './client-conn.js';
import { type FrontendSide, GroupHost, GroupRuntime } from './groups.js';
import type { H1Request, H1Response } from './h1/client-messages.js';
import { type H1Front, H1Session, viewedClient } from './h1/client-session.js';
import { H2Conn, H2Front } from './h2.js';
import type { ExchangeRequest, ExchangeResponse } from './messages.js';
import { type Frontend, serveRequest, serveUpgrade, tcpGroup } from './route-request.js';
import { ListenerCounters } from './runtime.js';
import type { ServerPicks } from './server-picks.js';
import { netConnect, relayedClient, relayTcp } from './tcp-relay.js';
import { type TlsFront, tlsFront } from './tls.js';
import { wsProxy } from './upgrade.js';

/** the handshake timer of a raw socket handed to TLS */
const handshakeTimers = new WeakMap<net.Socket, TimerHandle>();
const LISTENER = Symbol('tierlb.listener');
type Owned = { [LISTENER]?: Listener };
function ignore(): void {}
/** a connection's 'close' (`this`: the socket), one function for all connections */
function onSockClose(this: net.Socket): void {
  (this as Owned)[LISTENER]?.sockClosed(this);
}

export class Listener implements Frontend, FrontendSide, ConnContext, H1Front {
  readonly counters: ListenerCounters;
  readonly timeout: ListenerSpec['timeout'];
  readonly name: string;
  /** the routing rules, compiled once for this config */
  readonly router: Router | undefined;
  /** the way into each group it sends to (made on first use) */
  private readonly hosts = new Map<string, GroupHost>();
  private readonly server: net.Server;
  /** accepting by this worker's share of the connections (shared accept with other workers) */
  private gate: ShareGate | undefined = undefined;
  /** WebSocket upgrades */
  private readonly proxy?: ProxyServer;
  /** TLS termination (./tls.ts), and HTTP/2 on it (./h2.ts) */
  private readonly tls?: TlsFront;
  private readonly h2?: H2Front;
  draining = false;
  /** maxconn: connections admitted in this worker, and those waiting unread (paused) for one of them to close */
  private live = 0;
  private readonly waiting: net.Socket[] = [];
  readonly isDraining = (): boolean => this.draining;
  readonly connect = netConnect;
  /** mode tcp without tls: the worker's in-kernel splice (`splice: auto` and it loads, or `on`) */
  readonly splicer: Splicer | undefined;

  constructor(
    readonly spec: ListenerSpec,
    private readonly picks: ServerPicks,
    readonly timers: DeadlineTimers,
    /** a connection closed (the worker may be done draining) */
    private readonly onClose: () => void,
    /** the worker's groups (../config.ts GroupSpec, by name); default: the listener's own servers alone */
    private readonly groups: ReadonlyMap<string, GroupRuntime> = new Map([[spec.name, new GroupRuntime(spec)]]),
    /** TLS session ticket keys (the same in every worker) */
    ticketKeys?: Buffer,
    /** the processes accepting on the listener's socket (the workers): each takes its share of a burst */
    sharers = 1,
    /** this worker's share of the connections on the listener's bound address (shared accept, several workers) */
    private readonly share?: AcceptShare,
  ) {
    this.timeout = spec.timeout;
    this.name = spec.name;
    // (`splice: on` that cannot load throws SpliceError here: the listener does not start)
    this.splicer = spec.mode === 'tcp' && !spec.tls ? getSplicer(spec.splice, spec.name) : undefined;
    // a listener's own servers are the group named after it: one set of counters for both rows' figures
    this.counters = groups.get(spec.name)?.counters ?? new ListenerCounters();
    const router = spec.routes ? Router.of(spec.routes, { http: spec.mode === 'http' }) : undefined;
    this.router = router?.active ? router : undefined;
    const take = (s: net.Socket) => this.onConnection(s);
    // a plain mode tcp listener opens its clients' descriptors itself, with the relay's onread (./tcp-relay.ts)
    // and a plain HTTP listener with the worker's one read buffer (./h1/client-session.ts)
    const plain = !spec.tls && !spec.acceptProxy;
    const relayed = plain && spec.mode === 'tcp';
    const viewed = plain && spec.mode === 'http';
    const open = relayed ? relayedClient : viewed ? viewedClient : plainSocket(spec.mode === 'tcp');
    // as HAProxy divides tune.maxaccept by twice the processes bound to a listener: every worker is woken by a
    // burst, and each taking a part of it spreads it (one worker taking 64 in a row took all of wrk -c 64)
    const batch = acceptBatch(spec.maxaccept, sharers);
    this.server = net.createServer({ allowHalfOpen: spec.mode === 'tcp', pauseOnConnect: true }, (s) => {
      this.onConnection(relayed || viewed ? reopen(s, open) : s);
      if (this.draining) return;
      // libuv accepted one; the rest of a burst now, not one per turn of the loop (./accept-batch.ts), as many as
      // this worker's share of the connections lets it take (./accept-share.ts)
      const gate = this.gate;
      acceptMore(this.server, gate ? gate.room(batch - 1) : batch - 1, open, take);
      gate?.check();
    });
    if (spec.mode === 'http') this.proxy = wsProxy();
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

  /** Listen on the listener's own address (a worker that is not given the primary's socket). */
  listen(): Promise<void> {
    return this.listenWith((done) =>
      this.server.listen({ host: this.spec.host, port: this.spec.port, backlog: this.spec.backlog }, done),
    );
  }

  /** Listen and accept on the primary's bound socket (shared accept, ../acceptor.ts): every worker accepts on it. */
  async listenOn(handle: unknown): Promise<void> {
    await this.listenWith((done) => this.server.listen(handle as net.Server, this.spec.backlog, done));
    // (a socket the primary could not bind would listen on a random port: never serve there)
    const at = this.server.address();
    if (typeof at === 'object' && at && this.spec.port !== 0 && at.port !== this.spec.port) {
      this.server.close();
      throw new ListenersError(
        'ELISTEN',
        `listener ${this.spec.name}: the shared socket is not bound to port ${this.spec.port}`,
      );
    }
    if (this.share) {
      this.gate = new ShareGate(this.share, this.server, this.spec.backlog);
      this.gate.start();
    }
  }

  private listenWith(listen: (done: () => void) => void): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      listen(() => {
        this.server.off('error', reject);
        resolve();
      });
    });
  }

  /** A connection the primary accepted and handed over (it listens for us; see ../acceptor.ts). */
  accept(socket: net.Socket): void {
    if (this.draining) {
      socket.destroy();
      return;
    }
    // what this listener's own server would have set on a socket it accepted
    socket.allowHalfOpen = this.spec.mode === 'tcp';
    this.server.emit('connection', socket);
  }

  // ---- what the requests, relays and connections ask of their listener ----

  host(group: string | undefined): GroupHost {
    const name = group ?? this.spec.defaultGroup;
    let h = this.hosts.get(name);
    if (!h) {
      const g = this.groups.get(name);
      if (!g)
        throw new ListenersError(
          'EROUTES',
          `listener ${this.spec.name}: group ${name} is not in the worker's config (a bug: the config check should refuse it)`,
        );
      h = new GroupHost(g, this, this.picks);
      this.hosts.set(name, h);
    }
    return h;
  }

  h1Request(req: H1Request, res: H1Response, conn: H1Session): void {
    serveRequest(this, req, res, conn);
  }

  h1Upgrade(req: H1Request, sock: net.Socket, head: Buffer, conn: H1Session): void {
    serveUpgrade(this, this.proxy!, req, sock, head, conn);
  }

  requestTimedOut(): void {
    this.counters.stats.ereq++;
    this.counters.hrsp(408);
  }

  // ---- connections ----

  /** maxconn (this worker's share): beyond it a connection waits unread, as in the kernel's backlog (its bytes stay
   * in the socket's receive buffer, no timeout runs), until an admitted one closes */
  private onConnection(sock: net.Socket): void {
    const max = this.spec.maxconnWorker;
    if (max > 0 && this.live >= max && !this.draining) {
      sock.on('error', () => {});
      this.waiting.push(sock);
      return;
    }
    this.admit(sock);
  }

  /** an admitted connection closed */
  sockClosed(sock: net.Socket): void {
    this.live--;
    this.gate?.closed();
    if (this.waiting.length) this.admitNext();
    this.counters.closed(sock);
    connOf(sock)?.closed();
    this.onClose();
  }

  private admitNext(): void {
    while (this.waiting.length && (this.draining || this.live < this.spec.maxconnWorker)) {
      const s = this.waiting.shift()!;
      if (!s.destroyed) this.admit(s);
    }
  }

  private admit(sock: net.Socket): void {
    this.live++;
    this.gate?.opened();
    this.counters.opened(sock);
    // shared functions, no closure per connection (an idle keep-alive connection holds as little as it can)
    (sock as Owned)[LISTENER] = this;
    sock.on('error', ignore);
    // ('close' comes once: `on`, not `once` and its wrapper)
    sock.on('close', onSockClose);
    if (!this.spec.acceptProxy) {
      // (the client's addresses: read by the HTTP session when first asked for, here for the others)
      this.dispatch(sock, undefined, undefined);
      return;
    }
    const peer = peerOf(sock);
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
      this.dispatch(sock, info, buf.subarray(r.length));
    };
    sock.on('data', onData);
    sock.resume();
  }

  /** `info` undefined: the socket's peer */
  private dispatch(sock: net.Socket, info: ClientInfo | undefined, rest: Buffer | undefined): void {
    if (this.spec.mode === 'http' && !this.tls) {
      // (its 'close' is the listener's: sockClosed closes the session)
      setConn(sock, new H1Session(info, sock, this)).start(rest, true);
      return;
    }
    const conn = setConn(sock, new ClientConn(info ?? peerOf(sock), sock, this));
    if (this.tls) {
      this.handshake(sock, rest);
      return;
    }
    // mode tcp
    const host = tcpGroup(this, conn.info, sock);
    void relayTcp(host, sock, conn.info, host.pickRequest(conn), rest);
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

  /** A TLS connection is up: to the TCP relay, HTTP/2 or HTTP/1.x, with the client as its raw socket knows it. */
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
      const host = tcpGroup(this, info, s);
      void relayTcp(host, s, info, host.pickRequest({ info }), undefined);
      return;
    }
    if (s.alpnProtocol === 'h2' && this.h2) {
      const conn = new H2Conn(info, s, this);
      if (raw) setConn(raw, conn);
      setConn(s, conn);
      this.h2.accept(s, conn);
      return;
    }
    // HTTP/1.1 over TLS: the same server side on the TLS socket, the waits on its decrypted bytes
    const session = new H1Session(info, s, this);
    if (raw) setConn(raw, session);
    setConn(s, session).start(undefined);
  }

  private onH2Request(req: http2.Http2ServerRequest, res: http2.Http2ServerResponse, conn: H2Conn): void {
    serveRequest(this, req as unknown as ExchangeRequest, res as unknown as ExchangeResponse, conn);
  }

  /** Stop accepting; in-flight requests finish with `Connection: close`. */
  drain(): void {
    this.draining = true;
    this.gate?.stop();
    this.server.close();
    this.h2?.drain();
    // connections waiting for maxconn are served now (with Connection: close), not dropped
    this.admitNext();
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
