/**
 * The few libc calls the data path needs, through koffi: netlink and raw sockets, setsockopt, recv/send. Usable from
 * a worker thread (each thread loads its own handle).
 */
import koffi from 'koffi';

const libc = koffi.load('libc.so.6');

const c = {
  socket: libc.func('int socket(int domain, int type, int protocol)'),
  bind: libc.func('int bind(int fd, const void *addr, uint32_t len)'),
  setsockopt: libc.func('int setsockopt(int fd, int level, int name, const void *val, uint32_t len)'),
  getsockopt: libc.func('int getsockopt(int fd, int level, int name, _Out_ void *val, _Inout_ uint32_t *len)'),
  recv: libc.func('intptr_t recv(int fd, void *buf, uintptr_t len, int flags)'),
  send: libc.func('intptr_t send(int fd, const void *buf, uintptr_t len, int flags)'),
  sendto: libc.func(
    'intptr_t sendto(int fd, const void *buf, uintptr_t len, int flags, const void *addr, uint32_t alen)',
  ),
  close: libc.func('int close(int fd)'),
};

export const AF_INET = 2;
export const AF_INET6 = 10;
export const AF_NETLINK = 16;
export const SOCK_RAW = 3;
export const SOCK_CLOEXEC = 0o2000000;
export const IPPROTO_RAW = 255;
export const SOL_SOCKET = 1;
export const SO_RCVBUFFORCE = 33;
export const SO_SNDBUFFORCE = 32;
export const SO_RCVTIMEO = 20;
export const SO_MARK = 36;
export const SOL_NETLINK = 270;
export const NETLINK_NO_ENOBUFS = 5;
export const MSG_DONTWAIT = 0x40;

export const EAGAIN = 11;
export const EINTR = 4;
export const ENOBUFS = 105;

export class SysError extends Error {
  constructor(
    readonly call: string,
    readonly errno: number,
  ) {
    super(`${call}: errno ${errno}`);
    this.name = 'SysError';
  }
}

function check(call: string, r: number): number {
  if (r < 0) throw new SysError(call, koffi.errno());
  return r;
}

export function socket(domain: number, type: number, protocol: number): number {
  return check('socket', c.socket(domain, type | SOCK_CLOEXEC, protocol) as number);
}

export function setsockoptInt(fd: number, level: number, name: number, value: number): void {
  const b = Buffer.alloc(4);
  b.writeInt32LE(value, 0);
  check(`setsockopt(${level},${name})`, c.setsockopt(fd, level, name, b, 4) as number);
}

export function getsockoptInt(fd: number, level: number, name: number): number {
  const b = Buffer.alloc(4);
  const len = [4];
  check(`getsockopt(${level},${name})`, c.getsockopt(fd, level, name, b, len) as number);
  return b.readInt32LE(0);
}

/** SO_RCVTIMEO as struct timeval (x86_64 / aarch64: two 64-bit fields). */
export function setRecvTimeout(fd: number, ms: number): void {
  const b = Buffer.alloc(16);
  b.writeBigInt64LE(BigInt(Math.floor(ms / 1000)), 0);
  b.writeBigInt64LE(BigInt((ms % 1000) * 1000), 8);
  check('setsockopt(SO_RCVTIMEO)', c.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, b, 16) as number);
}

/** Bind a netlink socket (pid 0: the kernel assigns one). */
export function bindNetlink(fd: number): void {
  const sa = Buffer.alloc(12);
  sa.writeUInt16LE(AF_NETLINK, 0);
  check('bind(netlink)', c.bind(fd, sa, 12) as number);
}

/** recv into buf; returns the length, or -errno (EAGAIN on timeout / nothing pending). */
export function recv(fd: number, buf: Uint8Array, flags = 0): number {
  const r = c.recv(fd, buf, buf.length, flags) as number;
  return r < 0 ? -koffi.errno() : r;
}

/** send; returns the length, or -errno. */
export function send(fd: number, buf: Uint8Array, len: number): number {
  const r = c.send(fd, buf, len, 0) as number;
  return r < 0 ? -koffi.errno() : r;
}

/** sendto an IPv4 address (for raw sockets); returns the length, or -errno. */
export function sendto4(fd: number, buf: Uint8Array, len: number, dst: Uint8Array): number {
  const sa = Buffer.alloc(16);
  sa.writeUInt16LE(AF_INET, 0);
  sa.set(dst, 4);
  const r = c.sendto(fd, buf, len, 0, sa, 16) as number;
  return r < 0 ? -koffi.errno() : r;
}

export function close(fd: number): void {
  c.close(fd);
}

/** Set SO_MARK on any socket fd (e.g. a net.Socket's `_handle.fd`), so probes follow the mark's policy route. */
export function setSoMark(fd: number, mark: number): void {
  setsockoptInt(fd, SOL_SOCKET, SO_MARK, mark);
}

export function getSoMark(fd: number): number {
  return getsockoptInt(fd, SOL_SOCKET, SO_MARK) >>> 0;
}
