/**
 * The listener's own HTTP/1.x server side: one H1Session per client connection (plain, or TLS without h2), over the
 * socket's 'data' with no node:http in between. It reads a request's head (./request-head.ts, strict, one pass),
 * hands the request path (../route-request.ts) a light request and response (./client-messages.ts), streams the
 * request's body by its framing (Content-Length, or chunked: validated and decoded) to whoever resumed it, with
 * backpressure (unread bytes beyond HIGH pause the socket), and reads the next request only once the answer is
 * done (pipelined requests are answered in order, as node:http does). After an answer given before the request's
 * body was read, the rest of the body is read and dropped, then the connection carries on.
 *
 *  - a request the reader cannot take (any framing or syntax fault) is answered 400 and the connection closed
 *    (counted as a request error, as node:http's 'clientError' was);
 *  - `Expect: 100-continue` on an HTTP/1.1 request with a body: `100 Continue` is sent before the request goes on;
 *    any other expectation: 417, then close;
 *  - HTTP/1.0: kept alive only when asked (`Connection: keep-alive`); HTTP/1.1 unless `Connection: close`;
 *  - an Upgrade (`Upgrade` and the `upgrade` connection token): the socket leaves the session, with the bytes read
 *    after the head, for ../upgrade.ts;
 *  - `timeout client` is the connection's inactivity timeout (destroyed when it expires), kept as net.Socket's
 *    setTimeout kept it (re-armed by every read and write; a write queue still moving when it expires is not
 *    inactivity) but as a deadline on the listener's timers, without a Timeout and bound function per socket; the
 *    waits for a request (http-request, http-keep-alive) are the ClientConn's (../client-conn.ts), which this extends.
 * An idle connection holds its ClientConn fields and nothing else: no buffer, no request, no parser object.
 */
import net from 'node:net';
import { log } from '../../../common/log.js';
import type { Deadline } from '../../../common/timers.js';
import { ClientConn, type ClientInfo, type ConnContext, peerOf } from '../client-conn.js';
import { errorResponse } from '../error-pages.js';
import type { ListenerCounters } from '../runtime.js';
import { BAD, ChunkedDecoder, MORE } from './chunked.js';
import { H1Request, H1Response, type MessageConn } from './client-messages.js';
import { bareLf, MAX_REQUEST_HEAD, parseRequestHead, RequestHead } from './request-head.js';

/** What a session gives its requests to (the listener). */
export interface H1Front extends ConnContext {
  readonly counters: ListenerCounters;
  readonly name: string;
  h1Request(req: H1Request, res: H1Response, conn: H1Session): void;
  h1Upgrade(req: H1Request, sock: net.Socket, head: Buffer, conn: H1Session): void;
}

const S_HEAD = 0;
const S_LENGTH = 1;
const S_CHUNKED = 2;
/** the request is read; its answer is on its way */
const S_WAIT = 3;
/** closed, upgraded, or refused: nothing more is read */
const S_GONE = 4;

/** unread bytes beyond which the socket is paused */
const HIGH = 16 * 1024;
const EMPTY = Buffer.alloc(0);
const CONTINUE = 'HTTP/1.1 100 Continue\r\n\r\n';
const EXPECTATION_FAILED = 'HTTP/1.1 417 Expectation Failed\r\ncontent-length: 0\r\nconnection: close\r\n\r\n';

/** the head being parsed (parsing is synchronous: one for all connections) */
const HEAD = new RequestHead();

const SESSION = Symbol('tierlb.h1');
type Tagged = { [SESSION]?: H1Session };
function onData(this: net.Socket, d: Buffer): void {
  (this as Tagged)[SESSION]?.data(d);
}

/**
 * A plain listener's clients are read into one buffer per worker (net's `onread`, no buffer allocated per read):
 * the session takes the bytes during the call and copies what it keeps (an unfinished head, bytes of the next
 * request, body bytes it hands on). An upgraded socket (gone to ../upgrade.ts) gets its bytes as 'data', copied.
 */
const VIEW_READ: net.OnReadOpts = {
  buffer: Buffer.allocUnsafeSlow(64 * 1024),
  callback(this: net.Socket, n: number, buf: Uint8Array): boolean {
    const view = Buffer.from(buf.buffer, buf.byteOffset, n);
    (this as Tagged)[SESSION]?.view(view);
    return true;
  },
};

/** An accepted client descriptor of a plain HTTP listener, opened paused, read into the worker's one buffer. */
export const viewedClient = (fd: number): net.Socket =>
  new net.Socket({
    fd,
    readable: true,
    writable: true,
    pauseOnCreate: true,
    onread: VIEW_READ,
  } as net.SocketConstructorOpts);
function onDrain(this: net.Socket): void {
  (this as Tagged)[SESSION]?.drained();
}

/** timeout client: a session's inactivity deadline */
class ClientTimeout implements Deadline {
  dlNext: Deadline | undefined = undefined;
  dlPrev: Deadline | undefined = undefined;
  dlDue = 0;
  dlIn: unknown = undefined;
  /** the socket's unwritten bytes when it last expired */
  queued = 0;
  constructor(private readonly s: H1Session) {}
  deadline(): void {
    this.s.clientTimedOut(this);
  }
}
function onClose(this: net.Socket): void {
  (this as Tagged)[SESSION]?.closed();
}
function afterResponse(s: H1Session, res: H1Response): void {
  s.responseDone(res);
}

export class H1Session extends ClientConn implements MessageConn {
  private state = S_HEAD;
  /** bytes read and not yet taken */
  private pending: Buffer | undefined = undefined;
  /** where the search for the head's end resumes in `pending` */
  private scanned = 0;
  /** bytes left of the body (S_LENGTH) */
  private remaining = 0;
  /** a chunked body's framing (S_CHUNKED), made for the connection's first one */
  private chunked: ChunkedDecoder | undefined = undefined;
  private req: H1Request | undefined = undefined;
  private res: H1Response | undefined = undefined;
  /** the body's reader has not resumed it (or paused it) */
  private bodyPaused = true;
  /** the answer is over before the body: the rest is read and dropped */
  private dumping = false;
  /** the socket is paused: too many unread bytes */
  private held = false;
  private running = false;
  private ended = false;
  /** between an answer and the next request's head */
  private betweenRequests = false;
  /** the bytes being read are a view of the worker's read buffer (VIEW_READ): whatever is kept is copied */
  private viewing = false;
  /** the socket went to ../upgrade.ts */
  private upgraded = false;
  /** timeout client (none when 0) */
  private inactivity: ClientTimeout | undefined = undefined;

  /** `info` undefined: the socket's peer, read when first asked for */
  constructor(info: ClientInfo | undefined, socket: net.Socket, fe: H1Front) {
    super(info, socket, fe);
  }

  get socket(): net.Socket {
    return this.sock as net.Socket;
  }

  private get fe(): H1Front {
    return this.cx as H1Front;
  }

  protected override peerInfo(): ClientInfo {
    return peerOf(this.socket);
  }

  /** Begin: `rest` is what was read with the PROXY header; `closeSeen`: the socket's owner calls closed() on its
   * 'close' (the listener, for a socket it accepted), the session adds no listener of its own. */
  start(rest: Buffer | undefined, closeSeen = false): void {
    const sock = this.socket;
    (sock as Tagged)[SESSION] = this;
    sock.on('data', onData);
    sock.on('drain', onDrain);
    // ('close' comes once: `on`, not `once` and its wrapper)
    if (!closeSeen) sock.on('close', onClose);
    // (answers are written whole: no Nagle delay behind an unacknowledged one, as node:http's noDelay)
    sock.setNoDelay(true);
    if (this.fe.timeout.client > 0) {
      this.inactivity = new ClientTimeout(this);
      this.active();
    }
    this.awaitRequest(false);
    if (rest?.length) this.data(rest);
    sock.resume();
  }

  // ---- reading ----

  data(d: Buffer): void {
    if (this.state === S_GONE) return;
    this.active();
    this.pending = this.pending ? Buffer.concat([this.pending, d]) : d;
    this.run();
  }

  /** bytes read into the worker's buffer (VIEW_READ): valid during this call only */
  view(d: Buffer): void {
    if (this.upgraded) {
      this.socket.emit('data', Buffer.from(d));
      return;
    }
    this.viewing = true;
    try {
      this.data(d);
    } finally {
      this.viewing = false;
      const p = this.pending;
      if (p !== undefined && p.buffer === d.buffer) this.pending = Buffer.from(p);
    }
  }

  private run(): void {
    if (this.running) return;
    this.running = true;
    try {
      while (this.pending !== undefined && this.step());
      if (this.pending !== undefined && this.pending.length > HIGH && !this.held && this.state !== S_GONE) {
        this.held = true;
        this.socket.pause();
      }
    } finally {
      this.running = false;
    }
  }

  /** take what the state can from `pending`; false: wait for more bytes (or for the reader) */
  private step(): boolean {
    const buf = this.pending!;
    const state = this.state;
    if (state === S_HEAD) return this.readHead(buf);
    if (state >= S_WAIT) return false;
    if (this.bodyPaused && !this.dumping) return false;
    if (state === S_LENGTH) {
      const take = Math.min(this.remaining, buf.length);
      this.remaining -= take;
      this.take(take);
      if (this.remaining === 0) this.state = S_WAIT;
      this.body(buf, take);
      if (this.state === S_WAIT) this.bodyDone();
      return true;
    }
    // S_CHUNKED
    const c = this.chunked!;
    const next = c.step(buf, 0);
    if (next === MORE) return false;
    if (next === BAD) return this.refuse(c.error);
    this.take(next);
    if (c.data > 0) this.body(buf, c.data);
    if (c.done && this.state === S_CHUNKED) {
      this.state = S_WAIT;
      this.bodyDone();
    }
    return true;
  }

  /** body bytes buf[0, n) to the request's reader (copied when they are a view of the read buffer) */
  private body(buf: Buffer, n: number): void {
    const fn = this.req?.dataFn;
    if (!fn || this.dumping) return;
    const chunk = n === buf.length ? buf : buf.subarray(0, n);
    fn(this.viewing ? Buffer.from(chunk) : chunk);
  }

  private take(n: number): void {
    const buf = this.pending!;
    this.pending = n >= buf.length ? undefined : buf.subarray(n);
  }

  private readHead(buf: Buffer): boolean {
    // (empty lines before a request line are ignored: RFC 9112 2.2)
    if (buf[0] === 13 && this.scanned === 0) {
      if (buf.length < 2) return false;
      if (buf[1] !== 10) return this.refuse('a bare CR');
      this.take(2);
      return true;
    }
    const end = buf.indexOf('\r\n\r\n', this.scanned > 3 ? this.scanned - 3 : 0, 'latin1');
    if (end < 0) {
      if (buf.length > MAX_REQUEST_HEAD) return this.refuse('a request head over 16 KiB');
      if (bareLf(buf, this.scanned, buf.length)) return this.refuse('a bare LF ends a line');
      this.scanned = buf.length;
      return false;
    }
    this.scanned = 0;
    if (end > MAX_REQUEST_HEAD) return this.refuse('a request head over 16 KiB');
    const h = HEAD;
    const bad = parseRequestHead(buf, 0, end, h);
    if (bad !== undefined) return this.refuse(bad);
    this.take(end + 4);
    this.betweenRequests = false;
    if (h.method === 'CONNECT') return this.refuse('CONNECT (not a method a listener relays)');
    const bodyless = !h.chunked && h.length <= 0;
    const req = new H1Request(this, h, bodyless);
    const res = new H1Response(req, this, !h.close);
    this.req = req;
    this.res = res;
    this.bodyPaused = true;
    this.dumping = false;
    if (h.upgrade) {
      this.upgrade(req);
      return false;
    }
    if (h.chunked) {
      this.chunked ??= new ChunkedDecoder();
      this.chunked.begin();
      this.state = S_CHUNKED;
    } else if (h.length > 0) {
      this.remaining = h.length;
      this.state = S_LENGTH;
    } else this.state = S_WAIT;
    if (h.expect !== 0 && h.major === 1 && h.minor >= 1) {
      if (h.expect === 2) {
        this.state = S_GONE;
        this.pending = undefined;
        this.socket.end(EXPECTATION_FAILED);
        return false;
      }
      if (!bodyless) this.socket.write(CONTINUE, 'latin1');
    }
    this.fe.h1Request(req, res, this);
    return true;
  }

  /** the socket leaves for ../upgrade.ts with what was read after the head */
  private upgrade(req: H1Request): void {
    const sock = this.socket;
    const head = this.pending === undefined ? EMPTY : this.viewing ? Buffer.from(this.pending) : this.pending;
    this.pending = undefined;
    this.state = S_GONE;
    // (a socket read into the worker's buffer gets its next bytes as 'data' from here: view())
    this.upgraded = true;
    sock.off('data', onData);
    sock.off('drain', onDrain);
    // (no timeout client from here: the upgrade sets timeout tunnel)
    if (this.inactivity) this.fe.timers.disarm(this.inactivity);
    this.unhold();
    this.fe.h1Upgrade(req, sock, head, this);
  }

  private bodyDone(): void {
    const req = this.req;
    const fn = req?.endFn;
    if (this.dumping) {
      this.next();
      return;
    }
    if (req) {
      req.dataFn = undefined;
      req.endFn = undefined;
    }
    if (fn) fn();
  }

  /** a request the reader cannot take: 400, close */
  private refuse(reason: string): false {
    if (this.state === S_GONE) return false;
    this.state = S_GONE;
    this.pending = undefined;
    log.debug({ listener: this.fe.name, src: this.info.src, reason }, 'bad request');
    const c = this.fe.counters;
    c.stats.ereq++;
    c.hrsp(400);
    const res = this.res;
    const sock = this.socket;
    if (res?.started && !res.finished) sock.destroy();
    else if (sock.writable) sock.end(errorResponse(400));
    else sock.destroy();
    if (res && !res.finished) res.emitClose(true);
    return false;
  }

  // ---- the body's reader ----

  pauseBody(req: H1Request): void {
    if (req === this.req) this.bodyPaused = true;
  }

  resumeBody(req: H1Request): void {
    if (req !== this.req || this.state === S_GONE) return;
    this.bodyPaused = false;
    this.unhold();
    if (this.pending !== undefined) this.run();
  }

  /** idle after an answer, and a keep-alive wait runs (timeout http-keep-alive) */
  idleKeepAlive(): boolean {
    return this.betweenRequests && this.pending === undefined && this.fe.timeout.httpKeepAlive > 0;
  }

  // ---- the answer ----

  drained(): void {
    this.active();
    const res = this.res;
    if (res && !res.finished) res.drained();
  }

  /** the connection read or wrote: timeout client starts again */
  active(): void {
    const t = this.inactivity;
    if (t && this.state !== S_GONE) this.fe.timers.arm(t, this.fe.timeout.client);
  }

  /** timeout client expired (`t`: its deadline) */
  clientTimedOut(t: ClientTimeout): void {
    const sock = this.socket;
    if (sock.destroyed || t !== this.inactivity) return;
    // a write in progress whose queue moved since the last expiry is not inactivity (as net.Socket's _onTimeout)
    const queued = sock.writableLength;
    if (queued > 0 && queued !== t.queued) {
      t.queued = queued;
      this.fe.timers.arm(t, this.fe.timeout.client);
      return;
    }
    t.queued = queued;
    // idle between requests with a keep-alive wait: that wait closes the connection (../client-conn.ts), not timeout
    // client (node:http held the socket's timeout at http-keep-alive + 1 s meanwhile); the next bytes re-arm it
    if (this.idleKeepAlive()) return;
    sock.destroy();
  }

  responseEnded(res: H1Response): void {
    process.nextTick(afterResponse, this, res);
  }

  /** after the answer's end: 'close', then the next request (or the close) */
  responseDone(res: H1Response): void {
    res.emitClose(false);
    if (res !== this.res || this.state === S_GONE) return;
    if (res.last || this.socket.destroyed) {
      this.state = S_GONE;
      this.pending = undefined;
      this.socket.end();
      return;
    }
    if (this.state !== S_WAIT) {
      // the body is not all read: read it and drop it, then the next request
      this.dumping = true;
      this.unhold();
      if (this.pending !== undefined) this.run();
      return;
    }
    this.next();
  }

  private next(): void {
    this.betweenRequests = true;
    this.req = undefined;
    this.res = undefined;
    this.dumping = false;
    this.state = S_HEAD;
    this.unhold();
    if (this.pending !== undefined) this.run();
  }

  private unhold(): void {
    if (this.held) {
      this.held = false;
      this.socket.resume();
    }
  }

  protected override timedOut(): void {
    this.state = S_GONE;
    this.pending = undefined;
  }

  override closed(): void {
    if (this.ended) return;
    this.ended = true;
    {
      this.state = S_GONE;
      this.pending = undefined;
      const res = this.res;
      this.res = undefined;
      this.req = undefined;
      if (res && !res.closed) res.emitClose(!res.finished);
    }
    if (this.inactivity) this.fe.timers.disarm(this.inactivity);
    super.closed();
  }
}
