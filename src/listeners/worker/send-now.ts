/**
 * Writing to a plain socket without Node's stream machinery: send(MSG_DONTWAIT | MSG_NOSIGNAL) straight on the
 * socket's descriptor while Node holds none of its bytes, as HAProxy sends. On loopback and a healthy network the
 * kernel takes the whole chunk at once (the usual case) and no write request, callback or stream state is made for
 * it; what it does not take (a full send buffer, an error) goes through `socket.write` as before, so ordering,
 * backpressure ('drain') and errors are Node's own. Bytes sent here are counted on the socket (`sentBytes`), since
 * net's `bytesWritten` does not see them, and they restart the socket's inactivity timeout (`setTimeout`) as Node's
 * own writes do, so every timeout on the socket sees them.
 */
import type net from 'node:net';
import tls from 'node:tls';
import { MSG_DONTWAIT, MSG_NOSIGNAL } from '../../sys/constants.js';
import { fdOf, send } from '../../sys/libc.js';

const SENT = Symbol('tierlb.sentNow');
const FD = Symbol('tierlb.sendFd');
type Sendable = net.Socket & { [SENT]?: number; [FD]?: number };

/** whether libc could be called (once it fails, every write is Node's); TIERLB_SEND_NOW=0 leaves every write to Node
 * (for side-by-side measurements) */
let usable = process.env.TIERLB_SEND_NOW !== '0';

/** the descriptor of a plain connected socket (not TLS, not a pipe), or -1; kept on the socket once known */
function plainFd(s: Sendable): number {
  let fd = s[FD];
  if (fd !== undefined) return fd;
  fd = s instanceof tls.TLSSocket ? -1 : fdOf(s);
  // (a socket still connecting has no descriptor yet: asked again next time)
  if (fd >= 0 || !s.connecting) s[FD] = fd;
  return fd;
}

/** the descriptor to send `n` bytes on at once, or -1: Node holds bytes for `s`, it ended or closed, is still
 * connecting or is not a plain socket */
function sendable(s: net.Socket, n: number): number {
  if (!usable || n === 0 || s.writableLength > 0 || s.writableEnded || s.destroyed || s.connecting) return -1;
  return plainFd(s as Sendable);
}

/** send `n` bytes of `b` on `fd`: how many the kernel took (0 after EAGAIN or an error: Node's write then meets it) */
function sent(s: net.Socket, fd: number, b: Buffer, n: number): number {
  let r: number;
  try {
    r = send(fd, b, n, MSG_DONTWAIT | MSG_NOSIGNAL);
  } catch {
    usable = false;
    return 0;
  }
  if (r <= 0) return 0;
  (s as Sendable)[SENT] = ((s as Sendable)[SENT] ?? 0) + r;
  // as net's own writes do: the socket's timeout (if it has one) starts again
  (s as unknown as { _unrefTimer?: () => void })._unrefTimer?.();
  return r;
}

/**
 * Write the first `n` bytes of `chunk` (all of it by default) to `s`: sent at once when Node holds nothing for the
 * socket and the kernel takes them all, else (the rest) through `s.write`. Returns what `s.write` would: false when
 * the caller should wait for 'drain'. The caller may reuse the chunk when `s.writableLength` is 0 afterwards.
 */
export function writeNow(s: net.Socket, chunk: Buffer, n = chunk.length): boolean {
  const fd = sendable(s, n);
  if (fd >= 0) {
    const r = sent(s, fd, chunk, n);
    if (r === n) return true;
    if (r > 0) return s.write(chunk.subarray(r, n));
  }
  return s.write(n === chunk.length ? chunk : chunk.subarray(0, n));
}

/** heads (and small bodies after them) are put together here before they are sent: no buffer per message */
const SCRATCH = 16 * 1024;
let scratch: Buffer | undefined;

/**
 * Write a head (latin1) and, when given, the first bytes of the body after it, as one write: put together in a
 * reused buffer and sent at once when they fit and the kernel takes them all; else through `s.write` (what the
 * kernel did not take is copied first).
 */
export function writeHeadNow(s: net.Socket, head: string, body?: Buffer): boolean {
  const n = head.length + (body ? body.length : 0);
  const fd = n <= SCRATCH ? sendable(s, n) : -1;
  if (fd < 0) return s.write(body ? joined(head, body) : head, 'latin1');
  scratch ??= Buffer.allocUnsafeSlow(SCRATCH);
  const b = scratch;
  b.write(head, 0, 'latin1');
  if (body) body.copy(b, head.length);
  const r = sent(s, fd, b, n);
  if (r === n) return true;
  return s.write(Buffer.from(b.subarray(r, n)));
}

/** a head and the first bytes of a body in one new buffer */
function joined(head: string, body: Buffer): Buffer {
  const b = Buffer.allocUnsafe(head.length + body.length);
  b.write(head, 0, 'latin1');
  body.copy(b, head.length);
  return b;
}

/** bytes written to `s`: Node's and those sent at once */
export const sentBytes = (s: net.Socket): number => s.bytesWritten + ((s as Sendable)[SENT] ?? 0);

/** bytes sent at once on `s` (not through Node's write) */
export const sentNowBytes = (s: net.Socket): number => (s as Sendable)[SENT] ?? 0;
