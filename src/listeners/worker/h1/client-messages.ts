/**
 * The request and response objects of the listener's own HTTP/1 server side (./client-session.ts), as the request
 * path uses them (../messages.ts): light, no streams. The request's body is read by its session only when its
 * reader has resumed it; the response writes its head with its first bytes (a small answer leaves in one write),
 * chunks a body of unknown length for an HTTP/1.1 client, and says when the connection closes after it.
 */
import http, { type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import type net from 'node:net';
import type { ExchangeRequest, ExchangeResponse } from '../messages.js';
import { writeHeadNow, writeNow } from '../send-now.js';
import type { RequestHead } from './request-head.js';

/** What the messages ask of their connection. */
export interface MessageConn {
  readonly socket: net.Socket;
  pauseBody(req: H1Request): void;
  resumeBody(req: H1Request): void;
  responseEnded(res: H1Response): void;
  /** bytes were written (timeout client starts again) */
  active(): void;
}

/** fields of which Node keeps the first only (http.IncomingMessage.headers) */
const FIRST_ONLY = new Set([
  'age',
  'authorization',
  'content-length',
  'content-type',
  'etag',
  'expires',
  'from',
  'host',
  'if-modified-since',
  'if-unmodified-since',
  'last-modified',
  'location',
  'max-forwards',
  'proxy-authorization',
  'referer',
  'retry-after',
  'server',
  'user-agent',
]);

/** flat fields as node:http's `headers` object (lower-case names, repeated ones joined) */
function headersOf(raw: readonly string[]): IncomingHttpHeaders {
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i]!.toLowerCase();
    const v = raw[i + 1]!;
    const had = out[k];
    if (k === 'set-cookie') {
      if (had) (had as string[]).push(v);
      else out[k] = [v];
    } else if (had === undefined) out[k] = v;
    else if (k === 'cookie') out[k] = `${had}; ${v}`;
    else if (!FIRST_ONLY.has(k)) out[k] = `${had}, ${v}`;
  }
  return out;
}

type DataFn = (chunk: Buffer) => void;
type EndFn = () => void;

export class H1Request implements ExchangeRequest {
  readonly method: string;
  readonly url: string;
  readonly rawHeaders: string[];
  readonly httpVersionMajor: number;
  readonly httpVersionMinor: number;
  /** the body's reader (one: the relay) */
  dataFn: DataFn | undefined = undefined;
  endFn: EndFn | undefined = undefined;
  private hdrs: IncomingHttpHeaders | undefined = undefined;

  constructor(
    private readonly conn: MessageConn,
    h: RequestHead,
    readonly bodyless: boolean,
  ) {
    this.method = h.method;
    this.url = h.url;
    this.rawHeaders = h.fields;
    this.httpVersionMajor = h.major;
    this.httpVersionMinor = h.minor;
  }

  get socket(): net.Socket {
    return this.conn.socket;
  }

  /** (http-proxy-3 reads the socket there) */
  get connection(): net.Socket {
    return this.conn.socket;
  }

  get httpVersion(): string {
    return `${this.httpVersionMajor}.${this.httpVersionMinor}`;
  }

  /** made on first use (the relay's hot path reads the raw fields only) */
  get headers(): IncomingHttpHeaders {
    return (this.hdrs ??= headersOf(this.rawHeaders));
  }

  on(event: 'data' | 'end', fn: DataFn | EndFn): this {
    if (event === 'data') this.dataFn = fn as DataFn;
    else this.endFn = fn as EndFn;
    return this;
  }

  once(event: 'data' | 'end', fn: DataFn | EndFn): this {
    return this.on(event, fn);
  }

  off(event: 'data' | 'end', fn: DataFn | EndFn): this {
    if (event === 'data' && this.dataFn === fn) this.dataFn = undefined;
    else if (event === 'end' && this.endFn === fn) this.endFn = undefined;
    return this;
  }

  pause(): this {
    this.conn.pauseBody(this);
    return this;
  }

  resume(): this {
    this.conn.resumeBody(this);
    return this;
  }
}

/** an answer up to this size leaves with its head in one buffer */
const ONE_WRITE = 16 * 1024;
const CHUNK_END = '\r\n';
const LAST_CHUNK = '0\r\n\r\n';

export class H1Response implements ExchangeResponse {
  statusCode = 200;
  headersSent = false;
  destroyed = false;
  writableFinished = false;
  shouldKeepAlive: boolean;
  /** bytes of the answer went out */
  started = false;
  /** end() was called */
  finished = false;
  /** 'close' was emitted */
  closed = false;
  /** the connection closes after this answer */
  last = false;
  /** the head, until it leaves with the first bytes of the body (or the end) */
  private head: string | undefined = undefined;
  private chunked = false;
  private noBody = false;
  /** setHeader fields (written with the head) */
  private extra = '';
  private connClose = false;
  /** 'close' listeners (called with the response as `this`), the one 'drain' listener (no EventEmitter) */
  private closeFns: (() => void)[] | undefined = undefined;
  private drainFn: (() => void) | undefined = undefined;

  constructor(
    readonly req: H1Request,
    private readonly conn: MessageConn,
    keepAlive: boolean,
  ) {
    this.shouldKeepAlive = keepAlive;
  }

  on(event: 'close' | 'drain', fn: () => void): this {
    if (event === 'drain') this.drainFn = fn;
    else (this.closeFns ??= []).push(fn);
    return this;
  }

  once(event: 'close' | 'drain', fn: () => void): this {
    return this.on(event, fn);
  }

  /** the socket drained: the 'drain' listener, once */
  drained(): void {
    const fn = this.drainFn;
    this.drainFn = undefined;
    fn?.call(this);
  }

  get socket(): net.Socket | null {
    return this.conn.socket;
  }

  setHeader(name: string, value: string): this {
    if (name.toLowerCase() === 'connection') {
      if (value.toLowerCase() === 'close') this.connClose = true;
    } else this.extra += `${name}: ${value}\r\n`;
    return this;
  }

  writeHead(
    status: number,
    reason?: string | string[] | OutgoingHttpHeaders,
    headers?: string[] | OutgoingHttpHeaders,
  ): this {
    if (this.headersSent) return this;
    let fields = headers;
    let phrase: string | undefined;
    if (typeof reason === 'string') phrase = reason;
    else if (reason !== undefined) fields = reason;
    let head = `HTTP/1.1 ${status} ${phrase || http.STATUS_CODES[status] || 'Unknown'}\r\n`;
    let length = false;
    let te = false;
    let conn = false;
    let close = this.connClose || !this.shouldKeepAlive;
    if (Array.isArray(fields)) {
      for (let i = 0; i < fields.length; i += 2) {
        const k = fields[i]!;
        let v = fields[i + 1]!;
        switch (k.length) {
          case 10:
            if (k.toLowerCase() === 'connection') {
              conn = true;
              if (close) v = 'close';
              else if (v.toLowerCase().includes('close')) close = true;
            }
            break;
          case 14:
            if (k.toLowerCase() === 'content-length') length = true;
            break;
          case 17:
            if (k.toLowerCase() === 'transfer-encoding') te = true;
            break;
        }
        head += `${k}: ${v}\r\n`;
      }
    } else if (fields) {
      for (const k in fields) {
        const v = fields[k];
        if (v === undefined) continue;
        const l = k.toLowerCase();
        if (l === 'content-length') length = true;
        else if (l === 'transfer-encoding') te = true;
        else if (l === 'connection') {
          conn = true;
          if (String(v).toLowerCase().includes('close')) close = true;
        }
        if (Array.isArray(v)) for (const one of v) head += `${k}: ${one}\r\n`;
        else head += `${k}: ${v}\r\n`;
      }
    }
    const req = this.req;
    this.noBody = req.method === 'HEAD' || status === 204 || status === 304 || status < 200;
    if (!this.noBody && !length && !te) {
      // a body of unknown length: chunked for HTTP/1.1, delimited by the close for HTTP/1.0
      if (req.httpVersionMinor >= 1) {
        this.chunked = true;
        head += 'transfer-encoding: chunked\r\n';
      } else close = true;
    }
    if (!conn) head += close ? 'connection: close\r\n' : 'connection: keep-alive\r\n';
    this.last = close;
    this.head = `${head}${this.extra}\r\n`;
    this.statusCode = status;
    this.headersSent = true;
    return this;
  }

  write(chunk: Buffer | string): boolean {
    if (this.finished || this.destroyed) return false;
    if (!this.headersSent) this.writeHead(this.statusCode);
    this.conn.active();
    const sock = this.conn.socket;
    const head = this.head;
    if (this.noBody || chunk.length === 0) {
      if (head === undefined) return true;
      this.head = undefined;
      this.started = true;
      return writeHeadNow(sock, head);
    }
    this.started = true;
    if (head === undefined && !this.chunked)
      return typeof chunk === 'string' ? sock.write(chunk) : writeNow(sock, chunk);
    if (head !== undefined && !this.chunked && chunk.length <= ONE_WRITE) {
      this.head = undefined;
      return typeof chunk === 'string' ? sock.write(head + chunk, 'latin1') : writeHeadNow(sock, head, chunk);
    }
    sock.cork();
    if (head !== undefined) {
      this.head = undefined;
      sock.write(head, 'latin1');
    }
    let ok: boolean;
    if (this.chunked) {
      sock.write(`${Buffer.byteLength(chunk).toString(16)}\r\n`, 'latin1');
      sock.write(chunk);
      ok = sock.write(CHUNK_END, 'latin1');
    } else ok = sock.write(chunk);
    sock.uncork();
    return ok;
  }

  end(chunk?: Buffer | string): this {
    if (this.finished || this.destroyed) return this;
    if (!this.headersSent) this.writeHead(this.statusCode);
    this.finished = true;
    this.conn.active();
    const sock = this.conn.socket;
    const head = this.head;
    this.head = undefined;
    const body = !this.noBody && chunk !== undefined && chunk.length > 0;
    if (!body && !this.chunked) {
      if (head !== undefined) writeHeadNow(sock, head);
    } else if (head !== undefined && !this.chunked && chunk!.length <= ONE_WRITE) {
      // a small answer: head and body in one buffer, one write
      if (typeof chunk === 'string') sock.write(head + chunk, 'latin1');
      else writeHeadNow(sock, head, chunk!);
    } else {
      sock.cork();
      if (head !== undefined) sock.write(head, 'latin1');
      if (this.chunked) {
        if (body) {
          sock.write(`${Buffer.byteLength(chunk!).toString(16)}\r\n`, 'latin1');
          sock.write(chunk!);
          sock.write(CHUNK_END, 'latin1');
        }
        sock.write(LAST_CHUNK, 'latin1');
      } else sock.write(chunk!);
      sock.uncork();
    }
    this.started = true;
    this.writableFinished = !sock.destroyed;
    this.conn.responseEnded(this);
    return this;
  }

  destroy(): this {
    if (!this.closed) this.conn.socket.destroy();
    return this;
  }

  /** the answer is over (sent, or cut): 'close', once */
  emitClose(cut: boolean): void {
    if (this.closed) return;
    this.closed = true;
    if (cut) this.destroyed = true;
    const fns = this.closeFns;
    this.closeFns = undefined;
    this.drainFn = undefined;
    if (fns) for (const fn of fns) fn.call(this);
  }
}
