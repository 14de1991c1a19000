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
import { acceptNonBlocking } from '../../sys/libc.js';

const { EAGAIN, ECONNABORTED, EINTR } = constants.errno;

/** whether libc could be loaded (koffi); if not, libuv's one connection per turn */
let usable = true;

/**
 * Take up to `max` more connections waiting on `server`'s listening socket, handing each to `take`. Returns how many.
 * Stops at an empty queue or any error (EMFILE and the like: libuv's own accept then handles it).
 */
export function acceptMore(
  server: net.Server,
  max: number,
  allowHalfOpen: boolean,
  take: (s: net.Socket) => void,
): number {
  if (!usable || max <= 0) return 0;
  const fd = (server as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (fd === undefined || fd < 0) return 0;
  let n = 0;
  while (n < max) {
    let got: number;
    try {
      got = acceptNonBlocking(fd);
    } catch (e) {
      usable = false;
      log.warn({ err: String(e) }, 'listeners: accept in a row is off (libc could not be called): one per turn');
      return n;
    }
    if (got < 0) {
      if (-got === ECONNABORTED || -got === EINTR) continue;
      if (-got !== EAGAIN) log.debug({ errno: -got }, 'listeners: accept stopped');
      return n;
    }
    const sock = new net.Socket({
      fd: got,
      readable: true,
      writable: true,
      allowHalfOpen,
      pauseOnCreate: true,
    } as net.SocketConstructorOpts);
    n++;
    take(sock);
  }
  return n;
}
