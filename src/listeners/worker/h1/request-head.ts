/**
 * A strict reader of HTTP/1.x request heads (RFC 9112) for the listener's own HTTP/1 server side
 * (./client-session.ts): the request line and fields parsed in one pass over the bytes into what the relay needs
 * (method, target, version, flat latin1 fields, the framing); a chunked body's framing is ./chunked.ts's.
 *
 * Anything that could frame a request two ways, or be read differently by the server behind, is refused (the
 * listener answers 400 and closes): Content-Length with Transfer-Encoding, more than one Content-Length, a signed,
 * listed or non-decimal length, a Transfer-Encoding other than one `chunked`, obs-fold, a bare LF, NUL, CR or
 * other controls inside a line, whitespace before a field's colon, a field name that is not a token, a request line
 * that is not `token SP target SP HTTP/d.d`. Errors are returned as a reason
 * (a string), never thrown: a bad request is the client's, not the worker's.
 */

/** the longest request head (request line and fields): HAProxy's tune.bufsize, Node's default max header size */
export const MAX_REQUEST_HEAD = 16 * 1024;

const CR = 13;
const LF = 10;
const SP = 0x20;
const HTAB = 0x09;

/** tchar (RFC 9110 5.6.2) by byte (the answer parser's too) */
export const TOKEN = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~") TOKEN[c.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) TOKEN[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) TOKEN[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) TOKEN[c] = 1;

/** method characters: upper-case letters, '-' and '_' */
const METHOD = new Uint8Array(256);
for (let c = 0x41; c <= 0x5a; c++) METHOD[c] = 1;
METHOD[0x2d] = 1;
METHOD[0x5f] = 1;

/** a bare LF (not after CR) in buf[from, to) */
export function bareLf(buf: Buffer, from: number, to: number): boolean {
  for (let lf = buf.indexOf(LF, from); lf >= 0 && lf < to; lf = buf.indexOf(LF, lf + 1))
    if (lf === 0 || buf[lf - 1] !== CR) return true;
  return false;
}

/** What a request head says (filled by parseRequestHead; one per connection, reused). */
export class RequestHead {
  method = '';
  url = '';
  major = 1;
  minor = 1;
  /** flat [name, value, ...] as they came (values without surrounding whitespace) */
  fields: string[] = [];
  /** Content-Length (-1: none) */
  length = -1;
  chunked = false;
  /** the client asked to close (1.1) or did not ask to keep alive (1.0) */
  close = false;
  /** an Upgrade field and `upgrade` among the Connection tokens */
  upgrade = false;
  /** Expect: 0 none, 1 100-continue, 2 anything else */
  expect = 0;
}

/** The head in buf[start, end) (`end`: the index of the blank line's CRLF CRLF). Returns a reason when it is bad. */
export function parseRequestHead(buf: Buffer, start: number, end: number, h: RequestHead): string | undefined {
  // request line: method SP request-target SP HTTP-version
  // (a method is a token; the ones servers know are upper case, as Node's parser required: `get` is not GET)
  let p = start;
  while (p < end && METHOD[buf[p]!] === 1) p++;
  if (p === start || buf[p] !== SP) return 'a request line that is not `METHOD target HTTP/1.x`';
  h.method = buf.toString('latin1', start, p);
  const ts = ++p;
  for (let c = buf[p]!; p < end && c > SP && c !== 0x7f; c = buf[++p]!);
  if (p === ts || buf[p] !== SP) return 'a request target with white space or controls';
  h.url = buf.toString('latin1', ts, p);
  p++;
  if (
    end - p < 8 ||
    buf[p] !== 0x48 || // H
    buf[p + 1] !== 0x54 ||
    buf[p + 2] !== 0x54 ||
    buf[p + 3] !== 0x50 ||
    buf[p + 4] !== 0x2f || // /
    buf[p + 6] !== 0x2e // .
  )
    return 'a request line without an HTTP version';
  const major = buf[p + 5]! - 0x30;
  const minor = buf[p + 7]! - 0x30;
  if (major < 0 || major > 9 || minor < 0 || minor > 9) return 'a bad HTTP version';
  h.major = major;
  h.minor = minor;
  p += 8;
  // the request line ends here (CRLF), or the head does (no fields)
  if (p !== end && (buf[p] !== CR || buf[p + 1] !== LF)) return 'a request line that does not end with CRLF';

  const fields: string[] = [];
  h.fields = fields;
  h.length = -1;
  h.chunked = false;
  h.upgrade = false;
  h.expect = 0;
  let te = false;
  let close = false;
  let keep = false;
  let upgradeToken = false;
  let upgradeField = false;
  p += 2;
  while (p < end + 2) {
    let lf = buf.indexOf(LF, p);
    if (lf < 0 || lf > end + 1) lf = end + 1;
    if (buf[lf - 1] !== CR) return 'a bare LF ends a line';
    const le = lf - 1;
    if (le <= p) break;
    // field-name ":" OWS field-value OWS
    let q = p;
    while (q < le && TOKEN[buf[q]!] === 1) q++;
    if (q === p) {
      const c = buf[p];
      return c === SP || c === HTAB ? 'obs-fold (a field line beginning with whitespace)' : 'a field name not a token';
    }
    if (buf[q] !== 0x3a) return buf[q] === SP || buf[q] === HTAB ? 'whitespace before a field colon' : 'a bad field';
    for (let k = q + 1; k < le; k++) {
      const c = buf[k]!;
      if ((c < SP && c !== HTAB) || c === 0x7f) return 'a control character (NUL, CR, ...) in a field value';
    }
    let vs = q + 1;
    let ve = le;
    while (vs < ve && (buf[vs] === SP || buf[vs] === HTAB)) vs++;
    while (ve > vs && (buf[ve - 1] === SP || buf[ve - 1] === HTAB)) ve--;
    const name = buf.toString('latin1', p, q);
    const value = buf.toString('latin1', vs, ve);
    fields.push(name, value);
    switch (name.length) {
      case 6:
        if (name.toLowerCase() === 'expect') h.expect = value.toLowerCase() === '100-continue' ? 1 : 2;
        break;
      case 7:
        if (name.toLowerCase() === 'upgrade') upgradeField = true;
        break;
      case 10:
        if (name.toLowerCase() === 'connection') {
          for (const t of value.toLowerCase().split(',')) {
            const tok = t.trim();
            if (tok === 'close') close = true;
            else if (tok === 'keep-alive') keep = true;
            else if (tok === 'upgrade') upgradeToken = true;
          }
        }
        break;
      case 14:
        if (name.toLowerCase() === 'content-length') {
          if (h.length >= 0) return 'more than one Content-Length';
          const l = decimal(value);
          if (l < 0) return 'a Content-Length that is not a decimal number';
          h.length = l;
        }
        break;
      case 17:
        if (name.toLowerCase() === 'transfer-encoding') {
          if (te || value.toLowerCase() !== 'chunked') return 'a Transfer-Encoding other than one `chunked`';
          te = true;
          h.chunked = true;
        }
        break;
    }
    p = lf + 1;
  }
  if (te && h.length >= 0) return 'both Content-Length and Transfer-Encoding';
  h.close = minor === 0 ? !keep || close : close;
  h.upgrade = upgradeField && upgradeToken;
  return undefined;
}

/** a Content-Length value: decimal digits only (no sign, no list), at most 15 of them; -1 if not */
function decimal(v: string): number {
  if (v.length === 0 || v.length > 15) return -1;
  let n = 0;
  for (let k = 0; k < v.length; k++) {
    const d = v.charCodeAt(k) - 0x30;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}
