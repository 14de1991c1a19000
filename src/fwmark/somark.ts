/**
 * SO_MARK on sockets (SOL_SOCKET=1, SO_MARK=36) through koffi, so health probes to a real server leave with that
 * server's mark and follow the same policy route as the traffic the director forwards to it. The checks and probes
 * use this module; the koffi bindings themselves are src/sys/libc.ts.
 */
import type { Socket } from 'node:net';
import { AF_INET, AF_INET6, SOCK_STREAM } from '../sys/constants.js';
import { KernelStateError } from '../sys/errors.js';
import { close, fdOf, getSoMark, setSoMark, socket } from '../sys/libc.js';

/** The OS file descriptor of a net.Socket (after it has a handle: once 'connect' or 'lookup' fired, or for servers). */
export function socketFd(sock: Socket): number {
  const fd = fdOf(sock);
  if (fd < 0)
    throw new KernelStateError('EKERNEL_NO_FD', 'socket has no file descriptor yet (set the mark once it connects)');
  return fd;
}

export function setSocketMark(sock: Socket | number, mark: number): void {
  setSoMark(typeof sock === 'number' ? sock : socketFd(sock), mark);
}

export function getSocketMark(sock: Socket | number): number {
  return getSoMark(typeof sock === 'number' ? sock : socketFd(sock));
}

/**
 * A new TCP socket (fd) of the family with SO_MARK already set, for a probe whose first packet (the SYN) must carry
 * the mark: hand it to `new net.Socket({ fd })` and connect. Closed again when the mark cannot be set.
 */
export function markedTcpSocket(family: 4 | 6, mark: number): number {
  const fd = socket(family === 6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
  try {
    setSocketMark(fd, mark);
  } catch (e) {
    close(fd);
    throw e;
  }
  return fd;
}
