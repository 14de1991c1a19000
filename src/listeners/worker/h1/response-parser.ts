/**
 * A strict reader of HTTP/1.1 responses from a server connection (RFC 9112), for the relay's own client
 * (./server-pool.ts): the status line and fields of each head parsed once into what the relay needs (status, reason,
 * flat latin1 fields, the framing), then the body by its framing: Content-Length counted, chunked decoded and
 * validated, or until the connection closes. Body bytes are handed on as views of the socket's buffers (no copy);
 * a head split over reads is the only thing ever joined.
 *
 * Anything that could frame a response two ways is refused (the connection is then unusable: the relay answers 502
 * and closes it): Content-Length with Transfer-Encoding, several different Content-Lengths, a signed or non-decimal
 * length, a Transfer-Encoding other than `chunked`, bad chunk sizes or chunk ends, obs-fold, a bare LF, NUL or CR
 * inside a line, whitespace before a field's colon, a field name that is not a token, a head over 64 KiB.
 */
import { ListenersError } from '../../errors.js';
import { BAD, ChunkedDecoder, MORE } from './chunked.js';
import { TOKEN } from './request-head.js';

/** what the reader tells its connection */
export interface ResponseSink {
  /** a head: an interim one (1xx) is followed by another */
  head(status: number, reason: string, fields: string[], keepAlive: boolean): void;
  /** body bytes (a view: used before the next read) */
  data(chunk: Buffer): void;
  /** the response is whole */
  complete(): void;
}

export const MAX_HEAD = 64 * 1024;

const S_HEAD = 0;
const S_LENGTH = 1;
const S_CHUNKED = 2;
const S_CLOSE = 3;
const S_DONE = 4;

const CR = 13;
const LF = 10;

/** a response that cannot be framed safely: the message names what was wrong */
export class BadResponse extends ListenersError {
  constructor(what: string) {
    super('ESERVER_BAD_RESPONSE', `the server's answer cannot be relayed: ${what} (fix the server; answered 502)`);
  }
}

export class ResponseParser {
  private state = S_DONE;
  /** HEAD: the answer has no body whatever its fields say */
  private noBody = false;
  /** a head (or a chunk-size/trailer line) begun in an earlier read */
  private partial: Buffer | undefined = undefined;
  /** bytes left of the body (S_LENGTH) */
  private remaining = 0;
  /** a chunked body's framing (S_CHUNKED), made for the connection's first one */
  private chunked: ChunkedDecoder | undefined = undefined;
  /** the connection may carry another request after this response */
  keepAlive = false;

  constructor(private readonly sink: ResponseSink) {}

  /** A request went out: its response is next. */
  expect(head: boolean): void {
    this.state = S_HEAD;
    this.noBody = head;
    this.partial = undefined;
  }

  /** the body runs until the connection closes */
  get untilClose(): boolean {
    return this.state === S_CLOSE;
  }

  /** waiting for (or reading) a response */
  get busy(): boolean {
    return this.state !== S_DONE;
  }

  /** The connection closed: whether that ended a response delimited by the close. */
  closed(): boolean {
    if (this.state !== S_CLOSE) return false;
    this.state = S_DONE;
    this.sink.complete();
    return true;
  }

  /** Bytes from the server. Throws BadResponse; bytes after a whole response (none expected) are refused too. */
  feed(buf: Buffer): void {
    if (this.partial !== undefined && this.state === S_CHUNKED) {
      // rare: a chunk-size or trailer line (or a chunk's CRLF) came in pieces
      buf = Buffer.concat([this.partial, buf]);
      this.partial = undefined;
    }
    let i = 0;
    const n = buf.length;
    while (i < n) {
      switch (this.state) {
        case S_HEAD: {
          i = this.readHead(buf, i);
          break;
        }
        case S_LENGTH: {
          const take = Math.min(this.remaining, n - i);
          this.remaining -= take;
          const view = i === 0 && take === n ? buf : buf.subarray(i, i + take);
          i += take;
          if (this.remaining === 0) this.state = S_DONE;
          this.sink.data(view);
          if (this.state === S_DONE) this.sink.complete();
          break;
        }
        case S_CHUNKED: {
          const c = this.chunked!;
          const next = c.step(buf, i);
          if (next === BAD) throw new BadResponse(c.error);
          if (next === MORE) {
            this.partial = Buffer.from(buf.subarray(i));
            return;
          }
          const from = i;
          i = next;
          if (c.done) this.state = S_DONE;
          if (c.data > 0) this.sink.data(buf.subarray(from, next));
          if (c.done) this.sink.complete();
          break;
        }
        case S_CLOSE: {
          this.sink.data(i === 0 ? buf : buf.subarray(i));
          return;
        }
        default:
          throw new BadResponse('bytes from the server with no request outstanding');
      }
    }
  }

  /** the head from `buf` at `i`: returns where the body begins, or buf.length (the head goes on in the next read) */
  private readHead(buf: Buffer, i: number): number {
    let head: Buffer;
    let start: number;
    let end = buf.indexOf('\r\n\r\n', i, 'latin1');
    if (this.partial) {
      // rare: the head came in pieces
      const joined = Buffer.concat([this.partial, buf.subarray(i)]);
      const e = joined.indexOf('\r\n\r\n', Math.max(0, this.partial.length - 3), 'latin1');
      if (e < 0) {
        if (joined.length > MAX_HEAD) throw new BadResponse('a response head over 64 KiB');
        this.partial = joined;
        return buf.length;
      }
      const consumed = e + 4 - this.partial.length;
      this.partial = undefined;
      head = joined;
      start = 0;
      end = e;
      this.parseHead(head, start, end);
      return i + consumed;
    }
    if (end < 0) {
      if (buf.length - i > MAX_HEAD) throw new BadResponse('a response head over 64 KiB');
      this.partial = Buffer.from(buf.subarray(i));
      return buf.length;
    }
    if (end - i > MAX_HEAD) throw new BadResponse('a response head over 64 KiB');
    this.parseHead(buf, i, end);
    return end + 4;
  }

  /** status line and fields in buf[start, end) (CRLF-separated lines, the blank line after `end`) */
  private parseHead(buf: Buffer, start: number, end: number): void {
    // status line: HTTP/1.x SP 3DIGIT SP reason
    let eol = buf.indexOf(LF, start);
    if (eol < 0 || eol > end) eol = end;
    else if (buf[eol - 1] !== CR) throw new BadResponse('a bare LF ends a line');
    else eol -= 1;
    if (
      eol - start < 12 ||
      buf[start] !== 0x48 || // H
      buf.toString('latin1', start, start + 7) !== 'HTTP/1.' ||
      (buf[start + 7] !== 0x31 && buf[start + 7] !== 0x30) ||
      buf[start + 8] !== 0x20 ||
      (eol - start > 12 && buf[start + 12] !== 0x20)
    )
      throw new BadResponse('not an HTTP/1.x status line');
    const minor = buf[start + 7]! - 0x30;
    const d0 = buf[start + 9]! - 0x30;
    const d1 = buf[start + 10]! - 0x30;
    const d2 = buf[start + 11]! - 0x30;
    if (d0 < 1 || d0 > 5 || d1 < 0 || d1 > 9 || d2 < 0 || d2 > 9) throw new BadResponse('a status that is not 1xx-5xx');
    const status = d0 * 100 + d1 * 10 + d2;
    const reason = eol - start > 13 ? buf.toString('latin1', start + 13, eol) : '';
    checkText(buf, start, eol);

    const fields: string[] = [];
    let length = -1;
    let chunked = false;
    let te = false;
    let close = minor === 0;
    let p = eol + 2;
    while (p < end + 2) {
      let lf = buf.indexOf(LF, p);
      if (lf < 0 || lf > end + 1) lf = end + 1;
      if (buf[lf - 1] !== CR) throw new BadResponse('a bare LF ends a line');
      const le = lf - 1;
      if (le === p) break;
      const c = buf[p]!;
      if (c === 0x20 || c === 0x09) throw new BadResponse('obs-fold (a field line beginning with whitespace)');
      const colon = checkFieldLine(buf, p, le);
      const name = buf.toString('latin1', p, colon);
      let vs = colon + 1;
      let ve = le;
      while (vs < ve && (buf[vs] === 0x20 || buf[vs] === 0x09)) vs++;
      while (ve > vs && (buf[ve - 1] === 0x20 || buf[ve - 1] === 0x09)) ve--;
      const value = buf.toString('latin1', vs, ve);
      fields.push(name, value);
      switch (name.length) {
        case 10:
          if (name.toLowerCase() === 'connection') {
            const v = value.toLowerCase();
            if (v.includes('close')) close = true;
            else if (minor === 0 && v.includes('keep-alive')) close = false;
          }
          break;
        case 14:
          if (name.toLowerCase() === 'content-length') {
            const l = decimal(value);
            if (length >= 0 && l !== length) throw new BadResponse('several different Content-Length fields');
            length = l;
          }
          break;
        case 17:
          if (name.toLowerCase() === 'transfer-encoding') {
            if (te || value.toLowerCase() !== 'chunked')
              throw new BadResponse(`Transfer-Encoding ${JSON.stringify(value)} (only one "chunked" is relayed)`);
            te = true;
            chunked = true;
          }
          break;
      }
      p = lf + 1;
    }
    if (te && length >= 0) throw new BadResponse('both Content-Length and Transfer-Encoding');

    if (status < 200) {
      // interim: another head follows (101 is not asked for: upgrades do not come this way)
      if (status === 101) throw new BadResponse('101 Switching Protocols to a request that asked for no upgrade');
      this.sink.head(status, reason, fields, !close);
      return;
    }
    if (this.noBody || status === 204 || status === 304) {
      this.keepAlive = !close;
      this.state = S_DONE;
    } else if (chunked) {
      this.keepAlive = !close;
      this.chunked ??= new ChunkedDecoder();
      this.chunked.begin();
      this.state = S_CHUNKED;
    } else if (length >= 0) {
      this.keepAlive = !close;
      this.remaining = length;
      this.state = length === 0 ? S_DONE : S_LENGTH;
    } else {
      this.keepAlive = false;
      this.state = S_CLOSE;
    }
    this.sink.head(status, reason, fields, this.keepAlive);
    if (this.state === S_DONE) this.sink.complete();
  }
}

/** a field line in buf[p, le): a token, ':' right after it, a value without NUL/CR/LF; returns the colon's index */
function checkFieldLine(buf: Buffer, p: number, le: number): number {
  let q = p;
  while (q < le && TOKEN[buf[q]!] === 1) q++;
  if (q === p || q === le || buf[q] !== 0x3a)
    throw new BadResponse(
      q < le && (buf[q] === 0x20 || buf[q] === 0x09)
        ? 'whitespace before a field colon'
        : 'a field name that is not a token',
    );
  checkText(buf, q + 1, le);
  return q;
}

/** no NUL, CR or LF (other controls but HTAB too) inside a line */
function checkText(buf: Buffer, s: number, e: number): void {
  for (let k = s; k < e; k++) {
    const c = buf[k]!;
    if (c < 0x20 && c !== 0x09) throw new BadResponse('a control character (NUL, CR, ...) inside a line');
    if (c === 0x7f) throw new BadResponse('DEL inside a line');
  }
}

/** a Content-Length value: decimal digits only (no sign, no list), at most 15 of them */
function decimal(v: string): number {
  if (v.length === 0 || v.length > 15) throw new BadResponse(`Content-Length ${JSON.stringify(v)}`);
  let n = 0;
  for (let k = 0; k < v.length; k++) {
    const d = v.charCodeAt(k) - 0x30;
    if (d < 0 || d > 9) throw new BadResponse(`Content-Length ${JSON.stringify(v)}`);
    n = n * 10 + d;
  }
  return n;
}
