/**
 * The one libc binding, through koffi: libc is loaded once per thread (a worker thread loads its own handle, on first
 * use) and each function is declared here once, with one signature. Sockets (netlink, raw, AF_PACKET), socket
 * options, send/recv and sendmsg/recvmsg, mmap. The numbers live in ./constants.ts; a failed call throws SysError
 * (the errno's name as its code) or, on the hot paths, returns -errno.
 */
import koffi from 'koffi';
import {
  AF_INET,
  AF_INET6,
  AF_NETLINK,
  F_DUPFD_CLOEXEC,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
  SO_MARK,
  SO_RCVTIMEO,
  SOCK_CLOEXEC,
  SOCK_NONBLOCK,
  SOL_SOCKET,
} from './constants.js';
import { SysError } from './errors.js';

export { SysError } from './errors.js';

interface Libc {
  socket: (domain: number, type: number, protocol: number) => number;
  bind: (fd: number, addr: Uint8Array, len: number) => number;
  setsockopt: (fd: number, level: number, name: number, val: Uint8Array, len: number) => number;
  getsockopt: (fd: number, level: number, name: number, val: Uint8Array, len: number[]) => number;
  recv: (fd: number, buf: Uint8Array, len: number, flags: number) => number;
  send: (fd: number, buf: Uint8Array, len: number, flags: number) => number;
  sendto: (fd: number, buf: Uint8Array, len: number, flags: number, addr: Uint8Array, alen: number) => number;
  recvmsg: (fd: number, msg: Uint8Array, flags: number) => number;
  recvmmsg: (fd: number, vec: Uint8Array, vlen: number, flags: number, timeout: null) => number;
  sendmsg: (fd: number, msg: Uint8Array, flags: number) => number;
  close: (fd: number) => number;
  accept4: (fd: number, addr: null, len: null, flags: number) => number;
  fcntl: (fd: number, cmd: number, arg: number) => number;
  ioctl: (fd: number, req: number, arg: number[]) => number;
  mmap: (addr: null, len: number, prot: number, flags: number, fd: number, off: number) => unknown;
  malloc_trim: (pad: number) => number;
}

let bound: Libc | undefined;

function libc(): Libc {
  if (bound) return bound;
  const lib = koffi.load('libc.so.6');
  bound = {
    socket: lib.func('int socket(int domain, int type, int protocol)'),
    bind: lib.func('int bind(int fd, const void *addr, uint32_t len)'),
    setsockopt: lib.func('int setsockopt(int fd, int level, int name, const void *val, uint32_t len)'),
    getsockopt: lib.func('int getsockopt(int fd, int level, int name, _Out_ void *val, _Inout_ uint32_t *len)'),
    recv: lib.func('intptr_t recv(int fd, void *buf, uintptr_t len, int flags)'),
    send: lib.func('intptr_t send(int fd, const void *buf, uintptr_t len, int flags)'),
    sendto: lib.func(
      'intptr_t sendto(int fd, const void *buf, uintptr_t len, int flags, const void *addr, uint32_t alen)',
    ),
    recvmsg: lib.func('intptr_t recvmsg(int fd, void *msg, int flags)'),
    recvmmsg: lib.func('int recvmmsg(int fd, void *vec, unsigned int vlen, int flags, void *timeout)'),
    sendmsg: lib.func('intptr_t sendmsg(int fd, const void *msg, int flags)'),
    close: lib.func('int close(int fd)'),
    accept4: lib.func('int accept4(int fd, void *addr, void *len, int flags)'),
    fcntl: lib.func('int fcntl(int fd, int cmd, int arg)'),
    ioctl: lib.func('int ioctl(int fd, unsigned long req, _Out_ int *arg)'),
    mmap: lib.func('void *mmap(void *addr, uintptr_t len, int prot, int flags, int fd, int64_t off)'),
    malloc_trim: lib.func('int malloc_trim(uintptr_t pad)'),
  } as Libc;
  return bound;
}

/** The file descriptor of a Node socket or server (its libuv handle's, on Linux), or -1: none yet, a TLS socket,
 * a pipe or a test's fake. */
export function fdOf(s: object): number {
  const h = (s as { _handle?: { fd?: unknown } })._handle;
  return typeof h?.fd === 'number' && h.fd >= 0 ? h.fd : -1;
}

/** errno of the last failed call on this thread. */
export function errno(): number {
  return koffi.errno() as number;
}

/** The address of a buffer's memory (for the pointers inside struct msghdr / iovec). */
export function address(b: Uint8Array): bigint {
  return koffi.address(b) as bigint;
}

function check(call: string, r: number, detail?: string): number {
  if (r < 0) throw new SysError(call, errno(), detail);
  return r;
}

/** socket(); SOCK_CLOEXEC is always added. Throws SysError. */
export function socket(domain: number, type: number, protocol: number, what?: string): number {
  return check(what ? `socket(${what})` : 'socket', libc().socket(domain, type | SOCK_CLOEXEC, protocol));
}

/** setsockopt() with a buffer value. Throws SysError naming `what` (SO_BINDTODEVICE, ...). */
export function setsockopt(fd: number, level: number, name: number, value: Uint8Array, what?: string): void {
  check(`setsockopt(${what ?? `${level},${name}`})`, libc().setsockopt(fd, level, name, value, value.length));
}

export function setsockoptInt(fd: number, level: number, name: number, value: number, what?: string): void {
  const b = Buffer.alloc(4);
  b.writeInt32LE(value, 0);
  setsockopt(fd, level, name, b, what);
}

export function getsockoptInt(fd: number, level: number, name: number): number {
  const b = Buffer.alloc(4);
  const len = [4];
  check(`getsockopt(${level},${name})`, libc().getsockopt(fd, level, name, b, len));
  return b.readInt32LE(0);
}

/** getsockopt() into a buffer of the option's size (struct tcp_info, ...); returns the length the kernel wrote. */
export function getsockoptBuf(fd: number, level: number, name: number, into: Uint8Array): number {
  const len = [into.length];
  check(`getsockopt(${level},${name})`, libc().getsockopt(fd, level, name, into, len));
  return len[0] as number;
}

/** ioctl() whose argument is an int the kernel writes (SIOCINQ, SIOCOUTQ); returns it. Throws SysError. */
export function ioctlInt(fd: number, req: number, what?: string): number {
  const out = [0];
  check(`ioctl(${what ?? req})`, libc().ioctl(fd, req, out));
  return out[0] as number;
}

/**
 * accept4() on a non-blocking listening socket, the new socket non-blocking and close-on-exec: its fd, or -errno
 * (-EAGAIN: nobody waits in the accept queue). A hot path: no throw.
 */
export function acceptNonBlocking(fd: number): number {
  const r = libc().accept4(fd, null, null, SOCK_NONBLOCK | SOCK_CLOEXEC);
  return r < 0 ? -errno() : r;
}

/** F_DUPFD_CLOEXEC: a second descriptor of the same open socket, close-on-exec; its fd, or -errno. */
export function dupCloexec(fd: number): number {
  const r = libc().fcntl(fd, F_DUPFD_CLOEXEC, 0);
  return r < 0 ? -errno() : r;
}

/** SO_RCVTIMEO as struct timeval (x86_64 / aarch64: two 64-bit fields). */
export function setRecvTimeout(fd: number, ms: number): void {
  const b = Buffer.alloc(16);
  b.writeBigInt64LE(BigInt(Math.floor(ms / 1000)), 0);
  b.writeBigInt64LE(BigInt((ms % 1000) * 1000), 8);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, b, 'SO_RCVTIMEO');
}

/** Bind a netlink socket (pid 0: the kernel assigns one). */
export function bindNetlink(fd: number): void {
  const sa = Buffer.alloc(12);
  sa.writeUInt16LE(AF_NETLINK, 0);
  check('bind(netlink)', libc().bind(fd, sa, 12));
}

/** recv into buf; returns the length, or -errno (EAGAIN on timeout / nothing pending). */
export function recv(fd: number, buf: Uint8Array, flags = 0): number {
  const r = libc().recv(fd, buf, buf.length, flags);
  return r < 0 ? -errno() : r;
}

/** send of buf's first len bytes (flags: e.g. MSG_DONTWAIT | MSG_NOSIGNAL); returns the bytes the kernel took, or
 * -errno (-EAGAIN: a non-blocking send found the send buffer full). A hot path: no throw. */
export function send(fd: number, buf: Uint8Array, len: number, flags = 0): number {
  const r = libc().send(fd, buf, len, flags);
  return r < 0 ? -errno() : r;
}

/** glibc's malloc_trim(0): free memory of the allocator's arenas given back to the system; 1 if any was. */
export function mallocTrim(): number {
  return libc().malloc_trim(0);
}

/** sendto a socket address (struct sockaddr_*); returns the length, or -errno. */
export function sendto(fd: number, buf: Uint8Array, len: number, flags: number, addr: Uint8Array): number {
  const r = libc().sendto(fd, buf, len, flags, addr, addr.length);
  return r < 0 ? -errno() : r;
}

/** sendto an IPv4 address (for raw sockets); returns the length, or -errno. */
export function sendto4(fd: number, buf: Uint8Array, len: number, dst: Uint8Array): number {
  const sa = Buffer.alloc(16);
  sa.writeUInt16LE(AF_INET, 0);
  sa.set(dst, 4);
  return sendto(fd, buf, len, 0, sa);
}

/** sendto an IPv6 address (for raw sockets: struct sockaddr_in6, port 0); returns the length, or -errno. */
export function sendto6(fd: number, buf: Uint8Array, len: number, dst: Uint8Array): number {
  const sa = Buffer.alloc(28);
  sa.writeUInt16LE(AF_INET6, 0);
  sa.set(dst, 8);
  return sendto(fd, buf, len, 0, sa);
}

/** recvmsg with a prepared struct msghdr; returns the length, or -errno. */
export function recvmsg(fd: number, msg: Uint8Array, flags = 0): number {
  const r = libc().recvmsg(fd, msg, flags);
  return r < 0 ? -errno() : r;
}

/** recvmmsg with a prepared array of struct mmsghdr (no timeout); returns the datagrams received, or -errno. */
export function recvmmsg(fd: number, vec: Uint8Array, vlen: number, flags = 0): number {
  const r = libc().recvmmsg(fd, vec, vlen, flags, null);
  return r < 0 ? -errno() : r;
}

/** sendmsg with a prepared struct msghdr; returns the length, or -errno. */
export function sendmsg(fd: number, msg: Uint8Array, flags = 0): number {
  const r = libc().sendmsg(fd, msg, flags);
  return r < 0 ? -errno() : r;
}

export function close(fd: number): void {
  libc().close(fd);
}

/**
 * mmap `bytes` of the file open as `fd`, shared and read-write, for the life of the process; the memory as an
 * ArrayBuffer (Atomics work on an Int32Array over it). Throws SysError.
 */
export function mapShared(fd: number, bytes: number): ArrayBuffer {
  const ptr = libc().mmap(null, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  // MAP_FAILED is (void *)-1
  if (ptr === null || ptr === -1n || (typeof ptr === 'bigint' && ptr === 0xffffffffffffffffn))
    throw new SysError('mmap', errno(), `mapping ${bytes} bytes of fd ${fd}`);
  return koffi.view(ptr as never, bytes);
}

/** Set SO_MARK on any socket fd (e.g. a net.Socket's `_handle.fd`), so probes follow the mark's policy route. */
export function setSoMark(fd: number, mark: number): void {
  setsockoptInt(fd, SOL_SOCKET, SO_MARK, mark, 'SO_MARK');
}

export function getSoMark(fd: number): number {
  return getsockoptInt(fd, SOL_SOCKET, SO_MARK) >>> 0;
}
