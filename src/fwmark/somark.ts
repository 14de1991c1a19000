/**
 * SO_MARK on sockets (SOL_SOCKET=1, SO_MARK=36) through koffi, so health probes to a real server leave with that
 * server's mark and follow the same policy route as the traffic the director forwards to it.
 */
import type { Socket } from 'node:net';
import { getSoMark, setSoMark } from '../l4/datapath/sys.js';

/** The OS file descriptor of a net.Socket (after it has a handle: once 'connect' or 'lookup' fired, or for servers). */
export function socketFd(sock: Socket): number {
  const fd = (sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new Error('socket has no file descriptor yet');
  return fd;
}

export function setSocketMark(sock: Socket | number, mark: number): void {
  setSoMark(typeof sock === 'number' ? sock : socketFd(sock), mark);
}

export function getSocketMark(sock: Socket | number): number {
  return getSoMark(typeof sock === 'number' ? sock : socketFd(sock));
}
