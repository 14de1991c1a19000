/**
 * VRRP I/O on a real interface: the protocol-112 raw socket (IPv4: IP_HDRINCL, TTL 255, multicast membership on the
 * interface; IPv6: see Vrrp6Socket), gratuitous ARP and unsolicited Neighbor Advertisements over AF_PACKET (koffi),
 * the virtual addresses (`ip addr`), interface state and script runs. Everything the pure state machine asks for
 * happens here.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { bytesToIpv6, ipv6ToBytes } from '../../common/addr.js';
import { TierlbError } from '../../common/errors.js';
import {
  AF_INET6,
  AF_PACKET,
  ETH_P_ARP,
  ETH_P_IPV6,
  IP_ADD_MEMBERSHIP,
  IP_DROP_MEMBERSHIP,
  IP_HDRINCL,
  IP_MULTICAST_IF,
  IP_MULTICAST_LOOP,
  IP_MULTICAST_TTL,
  IPPROTO_IP,
  IPPROTO_IPV6,
  IPV6_ADD_MEMBERSHIP,
  IPV6_DROP_MEMBERSHIP,
  IPV6_HOPLIMIT,
  IPV6_MULTICAST_HOPS,
  IPV6_MULTICAST_IF,
  IPV6_MULTICAST_LOOP,
  IPV6_PKTINFO,
  IPV6_RECVHOPLIMIT,
  IPV6_RECVPKTINFO,
  IPV6_UNICAST_HOPS,
  MSG_DONTWAIT,
  SO_BINDTODEVICE,
  SOCK_NONBLOCK,
  SOCK_RAW,
  SOL_SOCKET,
} from '../../sys/constants.js';
import { failedError, KernelStateError, SysError } from '../../sys/errors.js';
import { run } from '../../sys/exec.js';
import { ipArgv, ipJson } from '../../sys/ip.js';
import { address, close, recvmsg, sendmsg, sendto, setsockopt, socket } from '../../sys/libc.js';
import { readSysctl } from '../../sys/sysctl.js';
import { naFrame } from './ndisc.js';
import { ipv4Bytes } from './packet.js';
import type { VirtualAddress } from './types.js';
import { VRRP_MCAST_GROUP, VRRP_PROTO, VRRP6_MCAST_GROUP } from './types.js';

const require = createRequire(import.meta.url);

/** A VRRP payload that does not fit the send buffer. */
export class VrrpIoError extends TierlbError {
  constructor(
    override readonly code: 'EVRRP_TOO_LONG',
    message: string,
  ) {
    super(code, message);
    this.name = 'VrrpIoError';
  }
}

export interface InterfaceInfo {
  name: string;
  index: number;
  mac: Buffer;
  /** the primary IPv4 address (the first one that is not secondary) */
  primaryIp: string | undefined;
  /** the IPv4 addresses */
  addresses: string[];
  /** the IPv6 addresses (link-local included), in the kernel's order */
  addresses6: string[];
}

function sysfs(name: string, file: string): string | undefined {
  try {
    return readFileSync(`/sys/class/net/${name}/${file}`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

export async function interfaceInfo(name: string): Promise<InterfaceInfo> {
  const index = Number(sysfs(name, 'ifindex'));
  if (!index) throw new KernelStateError('EKERNEL_NO_IFACE', `no such interface: ${name} (see ip link)`);
  const mac = Buffer.from(
    (sysfs(name, 'address') ?? '00:00:00:00:00:00').split(':').map((h) => Number.parseInt(h, 16)),
  );
  const j = await ipJson<{ addr_info?: { family: string; local: string; secondary?: boolean }[] }>([
    'addr',
    'show',
    'dev',
    name,
  ]);
  const all = j[0]?.addr_info ?? [];
  const infos = all.filter((a) => a.family === 'inet');
  const infos6 = all.filter((a) => a.family === 'inet6');
  return {
    name,
    index,
    mac,
    primaryIp: infos.find((a) => !a.secondary)?.local,
    addresses: infos.map((a) => a.local),
    addresses6: infos6.map((a) => a.local),
  };
}

/** Administratively up with a carrier (operstate "unknown" counts: lo, dummy). A missing interface is down. */
export function interfaceUp(name: string): boolean {
  const flags = Number(sysfs(name, 'flags'));
  if (!flags || (flags & 1) === 0) return false;
  const op = sysfs(name, 'operstate');
  return op === 'up' || op === 'unknown';
}

/** struct ip_mreqn { imr_multiaddr; imr_address; imr_ifindex } */
function mreqn(group: string, ifindex: number): Buffer {
  const b = Buffer.alloc(12);
  ipv4Bytes(group).copy(b, 0);
  b.writeInt32LE(ifindex, 8);
  return b;
}

interface RawSocket {
  on(ev: 'message', cb: (buf: Buffer, addr: string) => void): void;
  on(ev: 'error', cb: (e: Error) => void): void;
  send(buf: Buffer, off: number, len: number, addr: string, cb: (e: Error | null, n: number) => void): void;
  setOption(level: number, opt: number, v: number | Buffer, len?: number): void;
  close(): void;
}

/** A raw IP socket for protocol 112 bound to one interface; we write the IP header ourselves (TTL 255). */
export class VrrpSocket {
  private readonly sock: RawSocket;
  private joined = false;

  constructor(
    private readonly ifc: InterfaceInfo,
    onPacket: (buf: Buffer) => void,
    onError: (e: Error) => void,
    multicast = true,
  ) {
    const raw = require('raw-socket');
    this.sock = raw.createSocket({ addressFamily: raw.AddressFamily.IPv4, protocol: VRRP_PROTO }) as RawSocket;
    this.sock.on('message', (buf) => onPacket(buf));
    this.sock.on('error', onError);
    const name = Buffer.from(`${ifc.name}\0`);
    this.sock.setOption(SOL_SOCKET, SO_BINDTODEVICE, name, name.length);
    this.sock.setOption(IPPROTO_IP, IP_HDRINCL, 1);
    this.sock.setOption(IPPROTO_IP, IP_MULTICAST_TTL, 255);
    this.sock.setOption(IPPROTO_IP, IP_MULTICAST_LOOP, 0);
    const m = mreqn('0.0.0.0', ifc.index);
    this.sock.setOption(IPPROTO_IP, IP_MULTICAST_IF, m, m.length);
    if (multicast) {
      const j = mreqn(VRRP_MCAST_GROUP, ifc.index);
      this.sock.setOption(IPPROTO_IP, IP_ADD_MEMBERSHIP, j, j.length);
      this.joined = true;
    }
  }

  /** Send a complete IPv4 packet (header included) to its destination. */
  send(packet: Buffer, dst: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.sock.send(packet, 0, packet.length, dst, (e) => (e ? reject(e) : resolve()));
    });
  }

  close(): void {
    if (this.joined) {
      const j = mreqn(VRRP_MCAST_GROUP, this.ifc.index);
      try {
        this.sock.setOption(IPPROTO_IP, IP_DROP_MEMBERSHIP, j, j.length);
      } catch {}
      this.joined = false;
    }
    this.sock.close();
  }
}

/** What an IPv6 raw socket hands over: the VRRP payload, and the header fields from the ancillary data. */
export interface Received6 {
  payload: Buffer;
  src: string;
  /** IPV6_PKTINFO; undefined if the kernel gave none */
  dst: string | undefined;
  /** IPV6_HOPLIMIT; -1 if the kernel gave none (the packet is then dropped as a bad hop limit) */
  hopLimit: number;
}

/** Parse recvmsg()'s control buffer (x86-64/aarch64 layout: cmsg_len is 8 bytes, data 8-aligned). */
export function parseCmsgs6(ctl: Buffer, len: number): { dst: string | undefined; hopLimit: number } {
  let dst: string | undefined;
  let hopLimit = -1;
  for (let off = 0; off + 16 <= len; ) {
    const clen = Number(ctl.readBigUInt64LE(off));
    if (clen < 16 || off + clen > len) break;
    const level = ctl.readInt32LE(off + 8);
    const type = ctl.readInt32LE(off + 12);
    if (level === IPPROTO_IPV6 && type === IPV6_HOPLIMIT && clen >= 20) hopLimit = ctl.readInt32LE(off + 16);
    if (level === IPPROTO_IPV6 && type === IPV6_PKTINFO && clen >= 32)
      dst = bytesToIpv6(ctl.subarray(off + 16, off + 32));
    off += (clen + 7) & ~7;
  }
  return { dst, hopLimit };
}

/** struct ipv6_mreq / struct in6_pktinfo: an address and an interface index */
function addrIfindex6(addr: string, ifindex: number): Buffer {
  const b = Buffer.alloc(20);
  b.set(ipv6ToBytes(addr), 0);
  b.writeInt32LE(ifindex, 16);
  return b;
}

function sockaddr6(addr: string, scope: number): Buffer {
  const b = Buffer.alloc(28);
  b.writeUInt16LE(AF_INET6, 0);
  b.set(ipv6ToBytes(addr), 8);
  b.writeUInt32LE(scope, 24);
  return b;
}

/**
 * VRRP over IPv6 on one interface (RFC 5798). An IPv6 raw socket gets no IPv6 header on receive and the raw-socket
 * package reads with recvfrom() (no ancillary data), so the hop limit and the destination would be lost. Two sockets:
 * - the data socket (koffi, non-blocking): IPV6_RECVHOPLIMIT and IPV6_RECVPKTINFO, read with recvmsg(); it also
 *   sends with sendmsg() (hop limit 255, multicast on the interface, the link-local source in an IPV6_PKTINFO
 *   control message as keepalived does: without it the kernel may pick the link-local VIP once we hold it, and the
 *   checksum, computed over our source, would not match) and holds the ff02::12 membership;
 * - a raw-socket (same protocol, same interface) only as the event-loop wake-up: the kernel delivers every packet to
 *   both, and each packet it reports makes us drain the data socket (and look again shortly after, in case the
 *   data socket's copy was queued a moment later).
 */
export class Vrrp6Socket {
  private readonly fd: number;
  private readonly wake: RawSocket;
  private joined = false;
  private closed = false;
  private readonly data = Buffer.alloc(2048);
  private readonly name = Buffer.alloc(28);
  private readonly ctl = Buffer.alloc(256);
  private readonly iov = Buffer.alloc(16);
  private readonly msg = Buffer.alloc(56);
  private retry: NodeJS.Timeout | undefined;
  // sendmsg: the destination, the payload, and one IPV6_PKTINFO control message (16-byte header + in6_pktinfo, 40)
  private readonly sname = Buffer.alloc(28);
  private readonly sdata = Buffer.alloc(2048);
  private readonly siov = Buffer.alloc(16);
  private readonly sctl = Buffer.alloc(40);
  private readonly smsg = Buffer.alloc(56);

  constructor(
    private readonly ifc: InterfaceInfo,
    src: string,
    private readonly onPacket: (p: Received6) => void,
    onError: (e: Error) => void,
  ) {
    const fd = socket(AF_INET6, SOCK_RAW | SOCK_NONBLOCK, VRRP_PROTO, 'AF_INET6, SOCK_RAW, 112');
    this.fd = fd;
    const int = (v: number) => {
      const b = Buffer.alloc(4);
      b.writeInt32LE(v);
      return b;
    };
    const opt = (level: number, name: number, v: Buffer, what: string) => {
      try {
        setsockopt(fd, level, name, v, `${what}, vrrp IPv6 socket on ${ifc.name}`);
      } catch (e) {
        close(fd);
        throw e;
      }
    };
    opt(SOL_SOCKET, SO_BINDTODEVICE, Buffer.from(`${ifc.name}\0`), 'SO_BINDTODEVICE');
    opt(IPPROTO_IPV6, IPV6_RECVHOPLIMIT, int(1), 'IPV6_RECVHOPLIMIT');
    opt(IPPROTO_IPV6, IPV6_RECVPKTINFO, int(1), 'IPV6_RECVPKTINFO');
    opt(IPPROTO_IPV6, IPV6_MULTICAST_HOPS, int(255), 'IPV6_MULTICAST_HOPS');
    opt(IPPROTO_IPV6, IPV6_UNICAST_HOPS, int(255), 'IPV6_UNICAST_HOPS');
    opt(IPPROTO_IPV6, IPV6_MULTICAST_LOOP, int(0), 'IPV6_MULTICAST_LOOP');
    opt(IPPROTO_IPV6, IPV6_MULTICAST_IF, int(ifc.index), 'IPV6_MULTICAST_IF');
    opt(IPPROTO_IPV6, IPV6_ADD_MEMBERSHIP, addrIfindex6(VRRP6_MCAST_GROUP, ifc.index), 'joining ff02::12');
    this.joined = true;
    this.iov.writeBigUInt64LE(address(this.data), 0);
    this.iov.writeBigUInt64LE(BigInt(this.data.length), 8);
    this.msg.writeBigUInt64LE(address(this.name), 0);
    this.msg.writeBigUInt64LE(address(this.iov), 16);
    this.msg.writeBigUInt64LE(1n, 24);
    this.msg.writeBigUInt64LE(address(this.ctl), 32);
    this.sctl.writeBigUInt64LE(36n, 0);
    this.sctl.writeInt32LE(IPPROTO_IPV6, 8);
    this.sctl.writeInt32LE(IPV6_PKTINFO, 12);
    addrIfindex6(src, ifc.index).copy(this.sctl, 16);
    this.siov.writeBigUInt64LE(address(this.sdata), 0);
    this.smsg.writeBigUInt64LE(address(this.sname), 0);
    this.smsg.writeUInt32LE(this.sname.length, 8);
    this.smsg.writeBigUInt64LE(address(this.siov), 16);
    this.smsg.writeBigUInt64LE(1n, 24);
    this.smsg.writeBigUInt64LE(address(this.sctl), 32);
    this.smsg.writeBigUInt64LE(BigInt(this.sctl.length), 40);

    const raw = require('raw-socket');
    let wake: RawSocket | undefined;
    try {
      wake = raw.createSocket({ addressFamily: raw.AddressFamily.IPv6, protocol: VRRP_PROTO }) as RawSocket;
      wake.on('message', () => this.drain(3));
      wake.on('error', onError);
      const nameBuf = Buffer.from(`${ifc.name}\0`);
      wake.setOption(SOL_SOCKET, SO_BINDTODEVICE, nameBuf, nameBuf.length);
    } catch (e) {
      // the constructor throws: nobody will call close(), so the data socket (and the wake-up one) go here
      wake?.close();
      close(fd);
      throw e;
    }
    this.wake = wake;
  }

  /** Read every queued packet; when there was none, look again `retries` more times 1 ms apart. */
  private drain(retries: number): void {
    if (this.closed) return;
    let n = 0;
    for (;;) {
      this.msg.writeUInt32LE(this.name.length, 8);
      this.msg.writeBigUInt64LE(BigInt(this.ctl.length), 40);
      this.msg.writeInt32LE(0, 48);
      const r = recvmsg(this.fd, this.msg, MSG_DONTWAIT);
      if (r < 0) break;
      n++;
      const ctlLen = Number(this.msg.readBigUInt64LE(40));
      const { dst, hopLimit } = parseCmsgs6(this.ctl, ctlLen);
      const src = bytesToIpv6(this.name.subarray(8, 24));
      this.onPacket({ payload: Buffer.from(this.data.subarray(0, Number(r))), src, dst, hopLimit });
      if (this.closed) return;
    }
    if (n === 0 && retries > 0) {
      clearTimeout(this.retry);
      this.retry = setTimeout(() => this.drain(retries - 1), 1);
    }
  }

  /** Send a VRRP payload (the kernel writes the IPv6 header: hop limit 255, the source from IPV6_PKTINFO). */
  send(payload: Buffer, dst: string): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (payload.length > this.sdata.length)
      return Promise.reject(
        new VrrpIoError('EVRRP_TOO_LONG', `VRRP packet of ${payload.length} bytes, at most ${this.sdata.length}`),
      );
    sockaddr6(dst, this.ifc.index).copy(this.sname);
    payload.copy(this.sdata);
    this.siov.writeBigUInt64LE(BigInt(payload.length), 8);
    const r = sendmsg(this.fd, this.smsg, 0);
    if (r < 0) return Promise.reject(new SysError(`sendmsg to ${dst} on ${this.ifc.name}`, -r));
    return Promise.resolve();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.retry);
    if (this.joined) {
      const m = addrIfindex6(VRRP6_MCAST_GROUP, this.ifc.index);
      try {
        setsockopt(this.fd, IPPROTO_IPV6, IPV6_DROP_MEMBERSHIP, m, 'IPV6_DROP_MEMBERSHIP');
      } catch {}
      this.joined = false;
    }
    close(this.fd);
    this.wake.close();
  }
}

/** A gratuitous ARP request (sender = target = the address), broadcast, as keepalived sends it. */
export function garpFrame(mac: Buffer, addr: string): Buffer {
  const f = Buffer.alloc(42);
  f.fill(0xff, 0, 6);
  mac.copy(f, 6);
  f.writeUInt16BE(ETH_P_ARP, 12);
  f.writeUInt16BE(1, 14); // Ethernet
  f.writeUInt16BE(0x0800, 16);
  f[18] = 6;
  f[19] = 4;
  f.writeUInt16BE(1, 20); // request
  mac.copy(f, 22);
  ipv4Bytes(addr).copy(f, 28);
  f.fill(0xff, 32, 38);
  ipv4Bytes(addr).copy(f, 38);
  return f;
}

/** Send whole Ethernet frames (their destination MAC in bytes 0..5) out of one interface through AF_PACKET. */
function sendFrames(ifc: InterfaceInfo, ethertype: number, frames: { what: string; frame: Buffer }[]): void {
  const fd = socket(AF_PACKET, SOCK_RAW, ((ethertype & 0xff) << 8) | (ethertype >> 8), 'AF_PACKET');
  try {
    // struct sockaddr_ll { u16 family; be16 protocol; i32 ifindex; u16 hatype; u8 pkttype; u8 halen; u8 addr[8] }
    const sll = Buffer.alloc(20);
    sll.writeUInt16LE(AF_PACKET, 0);
    sll.writeUInt16BE(ethertype, 2);
    sll.writeInt32LE(ifc.index, 4);
    sll[11] = 6;
    for (const { what, frame: f } of frames) {
      f.copy(sll, 12, 0, 6);
      const r = sendto(fd, f, f.length, 0, sll);
      if (r < 0) throw new SysError(`sendto(${what} on ${ifc.name})`, -r);
    }
  } finally {
    close(fd);
  }
}

/** Send gratuitous ARPs for the addresses out of one interface through an AF_PACKET socket. */
export function sendGarp(ifc: InterfaceInfo, addrs: string[]): void {
  sendFrames(
    ifc,
    ETH_P_ARP,
    addrs.map((a) => ({ what: `gratuitous ARP for ${a}`, frame: garpFrame(ifc.mac, a) })),
  );
}

/** Whether the interface forwards IPv6 (keepalived then sets the Router flag of its NAs). */
export function ipv6Forwarding(name: string): boolean {
  return readSysctl(`net.ipv6.conf.${name.replace(/\./g, '/')}.forwarding`) === '1';
}

/** Send unsolicited Neighbor Advertisements for the IPv6 addresses out of one interface (AF_PACKET). */
export function sendUnsolicitedNa(ifc: InterfaceInfo, addrs: string[]): void {
  const router = ipv6Forwarding(ifc.name);
  sendFrames(
    ifc,
    ETH_P_IPV6,
    addrs.map((a) => ({ what: `unsolicited NA for ${a}`, frame: naFrame(ifc.mac, a, router) })),
  );
}

/**
 * The `ip` arguments that add or remove one virtual address. IPv6 addresses are added `nodad` as keepalived does
 * (IFA_F_NODAD): usable at once, and never stuck in "dadfailed" after a split brain.
 */
export function vipArgs(v: VirtualAddress, defaultDev: string, add: boolean): string[] {
  const six = v.addr.includes(':');
  const args = [...(six ? ['-6'] : []), 'addr', add ? 'add' : 'del', `${v.addr}/${v.prefixLen}`, 'dev'];
  args.push(v.dev ?? defaultDev);
  if (add && v.label && !six) args.push('label', v.label);
  if (add && six) args.push('nodad');
  return args;
}

/** Add or remove the virtual addresses (existing / missing ones are not errors). */
export async function setVips(vips: VirtualAddress[], defaultDev: string, add: boolean): Promise<void> {
  for (const v of vips) {
    const argv = ipArgv(vipArgs(v, defaultDev, add));
    const r = await run(argv);
    if (r.error) throw r.error;
    if (
      r.code !== 0 &&
      !/File exists|Cannot assign requested address|Address not found|address not found/.test(r.stderr)
    )
      throw failedError(argv, r.code, r.signal, r.stderr);
  }
}
