/**
 * Where a listener's request goes: the framing checks a proxy owes the server, the listener's routing rules
 * (../routing/rules.ts: redirect, deny, header edits, the group), then the group's exchange (./http-exchange.ts) or
 * upgrade (./upgrade.ts). The rules read a RequestView (method, path, host, headers, client address, TLS), so an
 * HTTP/2 request (node:http2's compatibility request has the same method/url/headers) routes as an HTTP/1.1 one.
 *
 * Framing (issue 15, both answered as HAProxy 2.6 does):
 *  - an HTTP/1.0 request with Transfer-Encoding is answered, then the connection is closed (RFC 9112 §6.1: the
 *    framing of such a message is faulty; the server MUST close after it);
 *  - an absolute-form target (`GET http://other.example/x HTTP/1.1`) whose authority is not the Host field is
 *    refused with 400 (RFC 9112 §3.2.2 has a proxy replace Host by the authority; HAProxy refuses the mismatch, and
 *    so does tierlb, so the server, X-Forwarded-Host and the rules never disagree about the site). The authority
 *    and Host compare case-insensitively, a default port (:80, :443 for https) equal to none. A matching
 *    absolute-form target is relayed as it came.
 * A request line naming another major version than 1 on an HTTP/1.x connection (`HTTP/2.0`) is answered 505
 * and the connection closed (the head reader takes any digit; the exchange would take it for an h2 stream and never
 * answer; HAProxy 2.6 relays it as HTTP/1.1 instead).
 * After any of these, nothing more is read from the connection: a request pipelined behind it is dropped unanswered,
 * and the connection closes after the answer.
 */
import http from 'node:http';
import type net from 'node:net';
import type { ProxyServer } from 'http-proxy-3';
import type { ListenerSpec } from '../config.js';
import { applyHeaderOpsToObject, HttpRequestView } from '../routing/headers.js';
import type { Router } from '../routing/rules.js';
import type { ClientConn, ClientInfo } from './client-conn.js';
import { errorResponse, replyError } from './error-pages.js';
import type { GroupHost } from './groups.js';
import { HttpExchange } from './http-exchange.js';
import type { ExchangeRequest, ExchangeResponse } from './messages.js';
import type { ListenerCounters } from './runtime.js';
import { relayUpgrade } from './upgrade.js';

/** What a request needs of its listener. */
export interface Frontend {
  readonly spec: ListenerSpec;
  /** the listener's counters (FRONTEND row) */
  readonly counters: ListenerCounters;
  /** its compiled rules (undefined: none, every request goes to the default group, no view is made) */
  readonly router: Router | undefined;
  readonly isDraining: () => boolean;
  /** the way into a group (undefined: the default group) */
  host(group: string | undefined): GroupHost;
}

/** The client connection is TLS (a TLSSocket; for HTTP/2, the session's socket). */
export function isTls(sock: unknown): boolean {
  return (sock as { encrypted?: boolean } | null)?.encrypted === true;
}

/** `http://h:80/x` → `h:80` (undefined: not an absolute-form target) */
function authorityOf(url: string): { scheme: string; authority: string } | undefined {
  const m = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\/([^/?#]*)/.exec(url);
  return m ? { scheme: m[1]!.toLowerCase(), authority: m[2]! } : undefined;
}

function sameAuthority(a: string, host: string, scheme: string): boolean {
  const dflt = scheme === 'https' ? ':443' : ':80';
  const norm = (s: string) => {
    const l = s.trim().toLowerCase();
    return l.endsWith(dflt) ? l.slice(0, -dflt.length) : l;
  };
  return norm(a) === norm(host);
}

/** connections whose framing is no longer trusted: their answer in flight is the last, later requests are dropped */
const lastRequest = new WeakSet<net.Socket>();

/** An HTTP/1.x request's target is unacceptable (400): absolute form naming another site than Host, or more than
 * one Host field (RFC 9112 §3.2: a server MUST answer 400; the relay would pass both on). */
function badTarget(req: ExchangeRequest): boolean {
  const raw = req.rawHeaders;
  let hosts = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i]!;
    if (k.length === 4 && k.toLowerCase() === 'host' && ++hosts > 1) return true;
  }
  const url = req.url ?? '';
  if (url.charCodeAt(0) === 47 /* / */ || url === '*') return false;
  const t = authorityOf(url);
  if (!t) return false;
  if (t.authority.includes('@')) return true;
  const host = req.headers.host;
  return host !== undefined && !sameAuthority(t.authority, host, t.scheme);
}

/** An answer of the listener's own (redirect, deny, 400): the connection waits for the next request after it. */
function answerLocal(fe: Frontend, conn: ClientConn, res: ExchangeResponse, status: number, location?: string): void {
  conn.stopWait();
  conn.busy++;
  const sock = res.socket;
  res.once('close', () => {
    conn.busy--;
    if (res.writableFinished) fe.counters.hrsp(status);
    if (fe.isDraining() && !res.writableFinished) sock?.destroy();
    else if (sock && !sock.destroyed) conn.awaitRequest(true);
  });
  if (fe.isDraining()) res.setHeader('connection', 'close');
  if (location === undefined) {
    replyError(res, status);
    return;
  }
  const h: Record<string, string | number> = { 'content-length': 0, location };
  if (status === 302 || status === 303) h['cache-control'] = 'no-cache';
  res.writeHead(status, h);
  res.end();
}

/** A request's headers are in: check its framing, apply the rules, relay it to its group. */
export function serveRequest(fe: Frontend, req: ExchangeRequest, res: ExchangeResponse, conn: ClientConn): void {
  if (lastRequest.has(req.socket)) {
    // pipelined behind a request after which the connection closes: never relayed, never answered
    // (Node closes the connection once the answer before it is sent)
    req.resume();
    return;
  }
  if (req.httpVersionMajor !== 1 && !('stream' in req)) {
    // `GET / HTTP/2.0` (or 3.0) over an HTTP/1.x connection: the head reader takes any digit (HAProxy 2.6 relays it
    // as HTTP/1.1; a 505 is RFC 9110 15.6.6's answer, and nothing of it is taken for an h2 stream)
    fe.counters.stats.ereq++;
    res.shouldKeepAlive = false;
    lastRequest.add(req.socket);
    answerLocal(fe, conn, res, 505);
    return;
  }
  if (req.httpVersionMajor === 1) {
    // RFC 9112 §6.1: HTTP/1.0 with Transfer-Encoding: answer, then close
    if (req.httpVersionMinor === 0 && req.headers['transfer-encoding'] !== undefined) {
      res.shouldKeepAlive = false;
      lastRequest.add(req.socket);
    }
    if (badTarget(req)) {
      fe.counters.stats.ereq++;
      res.shouldKeepAlive = false;
      lastRequest.add(req.socket);
      answerLocal(fe, conn, res, 400);
      return;
    }
  }
  // (no rules: no view, no decision; the default group)
  const r = fe.router;
  const d = r ? r.decide(new HttpRequestView(req, conn.info.src, isTls(req.socket))) : undefined;
  if (d && d.kind !== 'forward') {
    answerLocal(fe, conn, res, d.status, d.kind === 'redirect' ? d.location : undefined);
    return;
  }
  const host = fe.host(d?.group);
  HttpExchange.start(host, req, res, conn, host.pickRequest(conn, req), d?.request, d?.response);
}

/** An Upgrade (WebSocket) request: the rules as for any request (header edits on the request), then the relay. */
export function serveUpgrade(
  fe: Frontend,
  proxy: ProxyServer,
  req: ExchangeRequest,
  socket: net.Socket,
  head: Buffer,
  conn: ClientConn,
): void {
  if (badTarget(req)) {
    fe.counters.stats.ereq++;
    fe.counters.hrsp(400);
    socket.end(errorResponse(400));
    return;
  }
  const d = fe.router?.decide(new HttpRequestView(req, conn.info.src, isTls(socket)));
  if (d && d.kind !== 'forward') {
    fe.counters.hrsp(d.status);
    if (d.kind === 'deny') socket.end(errorResponse(d.status));
    else
      socket.end(
        `HTTP/1.1 ${d.status} ${http.STATUS_CODES[d.status]}\r\ncontent-length: 0\r\n` +
          `location: ${d.location}\r\nconnection: close\r\n\r\n`,
      );
    return;
  }
  if (d?.request.length) applyHeaderOpsToObject(req.headers, d.request);
  const host = fe.host(d?.group);
  void relayUpgrade(host, proxy, req, socket, head, conn, (r) => host.pickRequest(conn, r));
}

/** A tcp listener's group for a connection (use_group on src / tls). */
export function tcpGroup(fe: Frontend, info: ClientInfo, sock: net.Socket): GroupHost {
  const d = fe.router?.decide({
    method: '',
    path: '',
    query: '',
    host: '',
    header: () => undefined,
    rawHost: () => '',
    edit: () => {},
    src: info.src,
    tls: isTls(sock),
  });
  return fe.host(d?.kind === 'forward' ? d.group : undefined);
}
