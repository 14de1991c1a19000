/**
 * The chunked framing of a body (RFC 9112 7.1), read strictly, for both sides of the relay: request bodies from the
 * clients (./client-session.ts) and answers from the servers (./response-parser.ts). One decoder per message
 * reader, stepped over the bytes after the head: each step takes one chunk-size line, a run of chunk data, the CRLF
 * that ends a chunk, or a trailer line (checked and dropped: trailers are not relayed). A step never copies: a line
 * split over reads is the caller's to keep (the step answers MORE), chunk data is where the step found it.
 *
 * Refused (the step answers BAD and `error` says why): a chunk size that is not 1-13 hex digits (optionally followed
 * by BWS and `;` extensions without controls), chunk data longer than its size, a line ended by a bare LF, a line
 * over 8 KiB, a trailer that is not `token:` followed by text without controls.
 */
import { TOKEN } from './request-head.js';

/** a chunk-size line (with extensions) or a trailer line */
const MAX_CHUNK_LINE = 8 * 1024;

/** step(): more bytes are needed (a line is not all there) */
export const MORE = -1;
/** step(): the body is refused (`error` says why) */
export const BAD = -2;

const CR = 13;
const LF = 10;
const SP = 0x20;
const HTAB = 0x09;

const C_SIZE = 0;
const C_DATA = 1;
const C_END = 2;
const C_TRAILERS = 3;
const C_DONE = 4;

export class ChunkedDecoder {
  private state = C_DONE;
  /** bytes left of the chunk being read */
  private remaining = 0;
  /** the last step's chunk data: buf[i, i + data) of the step's `i` (0 when it took framing) */
  data = 0;
  /** why the last step answered BAD */
  error = '';

  /** A chunked body begins (after its head). */
  begin(): void {
    this.state = C_SIZE;
    this.remaining = 0;
  }

  /** the last chunk and the trailers are read: the body is whole */
  get done(): boolean {
    return this.state === C_DONE;
  }

  /** One step over buf[i...] (i < buf.length): the index after what it took, MORE or BAD. */
  step(buf: Buffer, i: number): number {
    this.data = 0;
    switch (this.state) {
      case C_DATA: {
        const take = Math.min(this.remaining, buf.length - i);
        this.remaining -= take;
        if (this.remaining === 0) this.state = C_END;
        this.data = take;
        return i + take;
      }
      case C_END: {
        if (buf.length - i < 2) return buf[i] === CR ? MORE : this.bad('chunk data longer than its size');
        if (buf[i] !== CR || buf[i + 1] !== LF) return this.bad('chunk data longer than its size');
        this.state = C_SIZE;
        return i + 2;
      }
      case C_SIZE:
      case C_TRAILERS: {
        const lf = buf.indexOf(LF, i);
        if (lf < 0) return buf.length - i > MAX_CHUNK_LINE ? this.bad('a chunk-size or trailer line over 8 KiB') : MORE;
        if (lf === i || buf[lf - 1] !== CR) return this.bad('a bare LF ends a line');
        if (lf - i > MAX_CHUNK_LINE) return this.bad('a chunk-size or trailer line over 8 KiB');
        if (this.state === C_TRAILERS) {
          if (lf - 1 === i) this.state = C_DONE;
          else if (!trailerLine(buf, i, lf - 1)) return this.bad('a bad trailer field');
          return lf + 1;
        }
        const size = chunkSize(buf, i, lf - 1);
        if (size < 0) return this.bad('a bad chunk size');
        if (size === 0) this.state = C_TRAILERS;
        else {
          this.remaining = size;
          this.state = C_DATA;
        }
        return lf + 1;
      }
      default:
        return this.bad('bytes after the last chunk');
    }
  }

  private bad(why: string): number {
    this.error = why;
    return BAD;
  }
}

/** a chunk-size line without its CRLF, buf[s, e): hex digits (at most 13), then optional `;` extensions; -1 if bad */
export function chunkSize(buf: Buffer, s: number, e: number): number {
  let n = 0;
  let k = s;
  for (; k < e; k++) {
    const c = buf[k]!;
    const d =
      c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x61 && c <= 0x66 ? c - 87 : c >= 0x41 && c <= 0x46 ? c - 55 : -1;
    if (d < 0) break;
    n = n * 16 + d;
  }
  if (k === s || k - s > 13) return -1;
  if (k < e) {
    // BWS then ';' extensions
    while (k < e && (buf[k] === SP || buf[k] === HTAB)) k++;
    if (buf[k] !== 0x3b) return -1;
    for (; k < e; k++) {
      const c = buf[k]!;
      if ((c < SP && c !== HTAB) || c === 0x7f) return -1;
    }
  }
  return n;
}

/** a trailer line buf[s, e) (without CRLF): a token, ':' right after it, no controls */
function trailerLine(buf: Buffer, s: number, e: number): boolean {
  let q = s;
  while (q < e && TOKEN[buf[q]!] === 1) q++;
  if (q === s || buf[q] !== 0x3a) return false;
  for (let k = q + 1; k < e; k++) {
    const c = buf[k]!;
    if ((c < SP && c !== HTAB) || c === 0x7f) return false;
  }
  return true;
}
