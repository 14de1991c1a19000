/**
 * Accepting in a row, as HAProxy's `tune.maxaccept`: libuv (1.45 and later, Node 20) accepts one connection per
 * listening socket per turn of the event loop. Under load a turn lasts as long as the ready sockets take (tens of
 * ms with a thousand busy keep-alive connections), so a burst of new connections waited in the kernel's accept queue:
 * `wrk -c1000` against freshly started listeners had its last first requests answered after ~3 s, with 70-130 of
 * them timed out, while the established connections were served at full speed. After libuv's one, the listener takes
 * up to `maxaccept - 1` more from the accept queue itself (accept4 through libc) and wraps each in a net.Socket,
 * created paused as net.Server creates it with `pauseOnConnect`.
 */
import net from 'node:net';
import { constants } from 'node:os';
import { log } from '../../common/log.js';
import { acceptNonBlocking, close, dupCloexec, fdOf } from '../../sys/libc.js';

const { EAGAIN, ECONNABORTED, EINTR } = constants.errno;

/** whether libc could be loaded (koffi); if not, libuv's one connection per turn */
let usable = true;

/** connections a process takes per wakeup of a listening socket that `sharers` processes accept on: `maxaccept`
 * divided by twice their number (HAProxy's rule for multi-process listeners), at least 1 */
export const acceptBatch = (maxaccept: number, sharers: number): number =>
  sharers > 1 ? Math.max(1, Math.floor(maxaccept / (2 * sharers))) : maxaccept;

/** how a listener opens an accepted descriptor as a socket (created paused) */
export type OpenSocket = (fd: number) => net.Socket;

/** a paused socket on an accepted descriptor, as net.Server makes one with `pauseOnConnect` */
export const plainSocket =
  (allowHalfOpen: boolean): OpenSocket =>
  (fd) =>
    new net.Socket({
      fd,
      readable: true,
      writable: true,
      allowHalfOpen,
      pauseOnCreate: true,
    } as net.SocketConstructorOpts);

function off(e: unknown): void {
  usable = false;
  log.warn({ err: String(e) }, 'listeners: accept in a row is off (libc could not be called): one per turn');
}

/**
 * Take up to `max` more connections waiting on `server`'s listening socket, each opened by `open` and handed to
 * `take`. Returns how many. Stops at an empty queue or any error (EMFILE and the like: libuv's own accept then
 * handles it).
 */
export function acceptMore(server: net.Server, max: number, open: OpenSocket, take: (s: net.Socket) => void): number {
  if (!usable || max <= 0) return 0;
  const fd = fdOf(server);
  if (fd < 0) return 0;
  let n = 0;
  while (n < max) {
    let got: number;
    try {
      got = acceptNonBlocking(fd);
    } catch (e) {
      off(e);
      return n;
    }
    if (got < 0) {
      if (-got === ECONNABORTED || -got === EINTR) continue;
      if (-got !== EAGAIN) log.debug({ errno: -got }, 'listeners: accept stopped');
      return n;
    }
    n++;
    const s = opened(open, got);
    if (s) take(s);
  }
  return n;
}

/** `open(fd)`, or undefined with the descriptor closed when Node cannot open it (never a throw into the accept) */
function opened(open: OpenSocket, fd: number): net.Socket | undefined {
  try {
    return open(fd);
  } catch (e) {
    log.warn({ err: String(e) }, 'listeners: an accepted connection could not be opened: closed');
    try {
      close(fd);
    } catch {}
    return undefined;
  }
}

/**
 * The socket libuv accepted, opened again by `open` (its descriptor duplicated, the first socket closed: the
 * connection stays, nothing was read from it), for a socket option net.Server cannot give (`onread`). The same
 * socket when that fails.
 */
export function reopen(sock: net.Socket, open: OpenSocket): net.Socket {
  const fd = fdOf(sock);
  if (!usable || fd < 0) return sock;
  let copy: number;
  try {
    copy = dupCloexec(fd);
  } catch (e) {
    off(e);
    return sock;
  }
  if (copy < 0) return sock;
  const s = opened(open, copy);
  if (!s) return sock;
  sock.destroy();
  return s;
}
