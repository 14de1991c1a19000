/**
 * HTTP mode's way to the servers: the relay's own HTTP/1.1 client (./h1/server-pool.ts: keep-alive connections per
 * server owned by the relay, heads written as one buffer, bodies streamed by their framing, answers read strictly by
 * ./h1/response-parser.ts), so that a response goes from the server's socket to the client's response with no
 * stream in between. (It replaced undici, which replaced http-proxy-3: bench/results/l7.json, README "Design notes".)
 * WebSocket upgrades still go through http-proxy-3 (upgrade.ts).
 *
 * One Attempt per try of a request: it writes the server's answer to the client's response and reports the attempt's
 * phases to its owner (connected, failed). A small response (headers, one chunk, end in one read from the server)
 * leaves in one write: the response (./h1/client-messages.ts, node:http2's) sends stored headers with the first data,
 * so the first chunk is held back until
 * the end or the next chunk (at most until the current read is handled: a microtask flushes it).
 */
import type { Timeouts } from '../config.js';
import type { ServerTarget } from '../ipc.js';
import { applyHeaderOps, type HeaderOp } from '../routing/headers.js';
import { type RelayHandler, type RelayRequest, ServerPool, type ServerSsl } from './h1/server-pool.js';
import type { ExchangeRequest, ExchangeResponse } from './messages.js';

type Abort = (err?: Error) => void;

/** What an Attempt tells the request (./http-exchange.ts) it belongs to. */
export interface AttemptOwner {
  /** a server connection carries the request now (the connect phase is over) */
  connected(x: Attempt): void;
  /** the attempt failed; `x.responded` says whether the client already has the status line */
  failed(x: Attempt, err: Error): void;
}

/**
 * Hop-by-hop fields (RFC 9110 7.6.1) stay on their connection; `expect` too (./h1/client-session.ts answers
 * 100-continue to the client itself) and `trailer` (trailers are not relayed). Checked by length first: most fields are not hop-by-hop.
 */
export function isHopByHop(name: string): boolean {
  switch (name.length) {
    case 2:
      return name.toLowerCase() === 'te';
    case 6:
      return name.toLowerCase() === 'expect';
    case 7: {
      const l = name.toLowerCase();
      return l === 'upgrade' || l === 'trailer';
    }
    case 10: {
      const l = name.toLowerCase();
      return l === 'connection' || l === 'keep-alive';
    }
    case 16:
      return name.toLowerCase() === 'proxy-connection';
    case 17:
      return name.toLowerCase() === 'transfer-encoding';
    default:
      return false;
  }
}

/** The fields a `Connection` header names besides the standard tokens: they are hop-by-hop too. */
function connectionTokens(value: string | undefined): Set<string> | undefined {
  if (!value) return undefined;
  let out: Set<string> | undefined;
  for (const t of value.split(',')) {
    const n = t.trim().toLowerCase();
    if (n && n !== 'close' && n !== 'keep-alive' && n !== 'upgrade') (out ??= new Set()).add(n);
  }
  return out;
}

/** flat fields without those named (lower case) */
function dropNamed(fields: string[], named: Set<string>): string[] {
  const out: string[] = [];
  for (let i = 0; i < fields.length; i += 2)
    if (!named.has(fields[i]!.toLowerCase())) out.push(fields[i]!, fields[i + 1]!);
  return out;
}

/** whether an answer with this status to this method has a body (RFC 9110 6.4.1) */
function hasBody(status: number, method: string | undefined): boolean {
  return method !== 'HEAD' && status !== 204 && status !== 304;
}

const XF = new Set(['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host']);

/**
 * The request's fields as the server gets them: the client's raw fields in order, without hop-by-hop ones; with
 * `forwardedFor` (option forwardfor) X-Forwarded-For gets the client appended and X-Forwarded-Proto/-Host are set.
 * Flat [name, value, ...] as undici and node:http take them.
 */
export function serverRequestHeaders(req: ExchangeRequest, forwardedFor: string | undefined): string[] {
  if (req.httpVersionMajor === 2) return h2RequestHeaders(req, forwardedFor);
  const raw = req.rawHeaders;
  const out: string[] = [];
  // (from the raw fields: the headers object is made only when something asks for it)
  let named: Set<string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i]!;
    if (k.length === 10 && k.toLowerCase() === 'connection') {
      const more = connectionTokens(raw[i + 1]);
      if (more) named = named ? new Set([...named, ...more]) : more;
    }
  }
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i]!;
    if (isHopByHop(k)) continue;
    if (named !== undefined || forwardedFor !== undefined) {
      const l = k.toLowerCase();
      if (named?.has(l) || (forwardedFor !== undefined && XF.has(l))) continue;
    }
    out.push(k, raw[i + 1]!);
  }
  if (forwardedFor !== undefined) forwarded(req, out, forwardedFor);
  return out;
}

/** option forwardfor: X-Forwarded-For (the client appended), -Proto (https on a TLS connection), -Host */
function forwarded(req: ExchangeRequest, out: string[], forwardedFor: string): void {
  // X-Forwarded-For fields joined, the first Host (as node:http's headers object has them)
  const raw = req.rawHeaders;
  let xff: string | undefined;
  let host: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i]!;
    if (k.length === 15 && k.toLowerCase() === 'x-forwarded-for') xff = xff ? `${xff}, ${raw[i + 1]}` : raw[i + 1];
    else if (k.length === 4 && host === undefined && k.toLowerCase() === 'host') host = raw[i + 1];
  }
  if (req.httpVersionMajor === 2) host = req.headers.host as string | undefined;
  const tls = (req.socket as { encrypted?: boolean } | null)?.encrypted === true;
  out.push(
    'x-forwarded-for',
    xff ? `${xff}, ${forwardedFor}` : forwardedFor,
    'x-forwarded-proto',
    tls ? 'https' : 'http',
  );
  if (host) out.push('x-forwarded-host', host);
}

/**
 * An HTTP/2 request's fields for an HTTP/1.1 server: no pseudo-fields (`:authority` becomes Host when the client sent
 * no Host), the cookie fields an h2 client may split joined into one (RFC 9113 8.2.3). node:http2 has already
 * refused connection-specific fields (8.2.2); `te: trailers`, the one allowed, is hop-by-hop here.
 */
function h2RequestHeaders(req: ExchangeRequest, forwardedFor: string | undefined): string[] {
  const raw = req.rawHeaders;
  const out: string[] = [];
  let authority: string | undefined;
  let host = false;
  let cookies: string[] | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i]!;
    if (k.charCodeAt(0) === 58 /* : */) {
      if (k === ':authority') authority = raw[i + 1];
      continue;
    }
    if (isHopByHop(k)) continue;
    const l = k.toLowerCase();
    if (l === 'cookie') {
      (cookies ??= []).push(raw[i + 1]!);
      continue;
    }
    if (forwardedFor !== undefined && XF.has(l)) continue;
    if (l === 'host') host = true;
    out.push(k, raw[i + 1]!);
  }
  if (!host && authority !== undefined) out.unshift('host', authority);
  if (cookies) out.push('cookie', cookies.join('; '));
  if (forwardedFor !== undefined) forwarded(req, out, forwardedFor);
  return out;
}

/** bytes of `name: value\r\n` lines (and the blank line) of flat fields */
function fieldBytes(fields: readonly (string | Buffer)[]): number {
  let n = 2;
  for (let i = 0; i < fields.length; i++) n += fields[i]!.length;
  return n + (fields.length >> 1) * 4;
}

/** One attempt of a request to one server. */
export class Attempt implements RelayHandler {
  /** the client's abort of this request, once it has a connection */
  private abortFn: Abort | undefined = undefined;
  private resumeFn: (() => void) | undefined = undefined;
  /** the first body chunk, held back to leave with the end (undefined: none yet, null: flushed) */
  private held: Buffer | null | undefined = undefined;
  private readonly flushHeld = () => {
    if (this.held) {
      this.res.write(this.held);
      this.held = null;
    }
  };
  connected = false;
  /** the server's status line reached the client's response */
  responded = false;
  /** the attempt is over (answered, failed or cancelled) */
  over = false;
  private cancelled = false;
  /** bytes to the server (request line, fields, body) and from it (status line, fields, body) */
  sent = 0;
  received = 0;

  constructor(
    private readonly owner: AttemptOwner,
    readonly res: ExchangeResponse,
    /** add `Connection: close` to the answer (the worker drains) */
    private readonly closing: () => boolean,
    requestLineBytes: number,
    fields: string[],
    /** http_response header edits of the routing rules, for the server's status */
    private readonly resOps?: (status: number) => readonly HeaderOp[],
  ) {
    this.sent = requestLineBytes + fieldBytes(fields);
  }

  /** The client is gone: stop the attempt (its server connection is closed if the request is on it). */
  cancel(): void {
    if (this.over) return;
    this.cancelled = true;
    this.abortFn?.();
  }

  onConnect(abort: Abort): void {
    if (this.cancelled) {
      abort();
      return;
    }
    this.abortFn = abort;
    this.connected = true;
    this.owner.connected(this);
  }

  onBodySent(chunkSize: number): void {
    this.sent += chunkSize;
  }

  onHeaders(status: number, raw: string[], resume: () => void, statusText: string): boolean {
    let bytes = 13 + statusText.length + 2 + 2;
    let fields: string[] | undefined;
    let named: Set<string> | undefined;
    let length = false;
    for (let i = 0; i < raw.length; i += 2) {
      const k = raw[i]!;
      const v = raw[i + 1]!;
      bytes += k.length + v.length + 4;
      if (isHopByHop(k)) {
        if (k.length === 10 && k.toLowerCase() === 'connection') {
          const more = connectionTokens(v);
          if (more) named = named ? new Set([...named, ...more]) : more;
        }
        // the fields without the hop-by-hop ones: a copy only when there is one to drop
        fields ??= raw.slice(0, i);
        continue;
      }
      if (k.length === 14 && !length && k.toLowerCase() === 'content-length') length = true;
      fields?.push(k, v);
    }
    fields ??= raw;
    this.received += bytes;
    // an interim answer (103 Early Hints, ...): not relayed, the final one follows
    if (status < 200) return true;
    this.resumeFn = resume;
    // fields the server's Connection names are hop-by-hop too
    let out = named ? dropNamed(fields, named) : fields;
    if (this.resOps) {
      const ops = this.resOps(status);
      if (ops.length) out = applyHeaderOps(out, ops);
    }
    const res = this.res;
    // the client connection's own Connection field (keep-alive or close, no Keep-Alive hint);
    // an HTTP/1.0 client cannot take chunks: a body of unknown length ends with the connection
    const req = res.req;
    this.responded = true;
    // HTTP/2 (./h2.ts): no connection field, no reason phrase
    if (req.httpVersionMajor === 2) {
      res.writeHead(status, out);
      return true;
    }
    const closeDelimited =
      !length && req.httpVersionMinor === 0 && req.httpVersionMajor === 1 && hasBody(status, req.method);
    out.push('connection', this.closing() || !res.shouldKeepAlive || closeDelimited ? 'close' : 'keep-alive');
    res.writeHead(status, statusText || undefined, out);
    return true;
  }

  onData(chunk: Buffer): boolean {
    this.received += chunk.length;
    if (this.held === undefined) {
      this.held = chunk;
      queueMicrotask(this.flushHeld);
      return true;
    }
    const res = this.res;
    if (this.held !== null) {
      res.write(this.held);
      this.held = null;
    }
    if (res.write(chunk)) return true;
    res.once('drain', this.resumeFn!);
    return false;
  }

  onComplete(): void {
    this.over = true;
    const held = this.held;
    this.held = null;
    if (held) this.res.end(held);
    else this.res.end();
  }

  onError(err: Error): void {
    this.over = true;
    if (this.held) this.flushHeld();
    this.owner.failed(this, err);
  }
}

/** a server's way in: one server's connections (./h1/server-pool.ts) */
export interface ServerDispatcher {
  dispatch(req: RelayRequest, h: RelayHandler): void;
  destroy(): Promise<void>;
}

/** what tells two `ssl:` settings apart (targets come over IPC: a new object per pick) */
function sslKey(ssl: ServerSsl | undefined): string {
  return ssl ? `${ssl.verify} ${ssl.sni ?? ''} ${ssl.ca ?? ''}` : '';
}

/** The keep-alive connections to each server, and private ones for servers sent a PROXY header. */
export class ServerPools {
  private readonly pools = new Map<string, { host: string; port: number; ssl: string; pool: ServerPool }>();

  constructor(private readonly timeout: Timeouts) {}

  /** the shared pool of `t` (servers without send-proxy) */
  pool(t: ServerTarget): ServerDispatcher {
    const p = this.pools.get(t.name);
    const ssl = sslKey(t.ssl);
    if (p && p.host === t.host && p.port === t.port && p.ssl === ssl) return p.pool;
    p?.pool.destroy().catch(() => {});
    const pool = new ServerPool({ host: t.host, port: t.port, ssl: t.ssl }, this.timeout);
    this.pools.set(t.name, { host: t.host, port: t.port, ssl, pool });
    return pool;
  }

  /** Connections of one client's own to `t`, opened with `header` (PROXY protocol) first: not shared (HAProxy
   * keeps such server connections private to the client session). The caller destroys them with the client's. */
  private(t: ServerTarget, header: Buffer): ServerDispatcher {
    return new ServerPool({ host: t.host, port: t.port, ssl: t.ssl }, this.timeout, header);
  }
}
