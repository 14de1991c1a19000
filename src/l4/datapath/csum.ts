/**
 * Internet checksums: full computation (RFC 1071) and incremental update (RFC 1624, HC' = ~(~HC + ~m + m')), and the
 * packet rewrites built on them: NAT of the destination (request) or source (reply) address and port, IPIP
 * encapsulation for the tunnel method and the ICMPv6 Packet Too Big an IPv6 tunnel answers with.
 */
import { ipv6ToBytes } from '../../common/addr.js';
import { IPPROTO_IPV6 } from '../../sys/constants.js';
import { IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_IPIP, IPPROTO_TCP, IPPROTO_UDP, type Parsed } from './packet.js';

/** Sum 16-bit big-endian words of b[off, off+len) into a 32-bit accumulator (not folded). */
export function sumWords(b: Uint8Array, off: number, len: number, acc = 0): number {
  let i = off;
  const end = off + len;
  for (; i + 1 < end; i += 2) acc += (b[i] << 8) | b[i + 1];
  if (i < end) acc += b[i] << 8;
  return acc;
}

export function fold(acc: number): number {
  while (acc > 0xffff) acc = (acc & 0xffff) + Math.floor(acc / 0x10000);
  return acc;
}

/** ~fold(sum) as a 16-bit checksum value. */
export function finish(acc: number): number {
  return ~fold(acc) & 0xffff;
}

export function ipv4HeaderChecksum(b: Uint8Array, off: number, ihl: number): number {
  const old = (b[off + 10] << 8) | b[off + 11];
  const acc = sumWords(b, off, ihl) - old;
  return finish(acc);
}

/** The pseudo-header sum for TCP/UDP/ICMPv6 over IPv4 or IPv6. */
function pseudoSum(b: Uint8Array, p: Parsed, l4len: number): number {
  if (p.family === 4) return sumWords(b, 12, 8) + p.protocol + l4len;
  return sumWords(b, 8, 32) + p.protocol + l4len;
}

/** Offset of the checksum field in the transport header, or -1. */
export function l4CsumOffset(protocol: number): number {
  if (protocol === IPPROTO_TCP) return 16;
  if (protocol === IPPROTO_UDP) return 6;
  if (protocol === IPPROTO_ICMP || protocol === IPPROTO_ICMPV6) return 2;
  return -1;
}

/** Full recomputation of the transport checksum (what the incremental updates are tested against). */
export function l4Checksum(b: Uint8Array, p: Parsed): number {
  const l4len = p.totalLen - p.l4off;
  const co = l4CsumOffset(p.protocol);
  const old = (b[p.l4off + co] << 8) | b[p.l4off + co + 1];
  let acc = sumWords(b, p.l4off, l4len) - old;
  if (p.protocol !== IPPROTO_ICMP) acc += pseudoSum(b, p, l4len);
  const c = finish(acc);
  return p.protocol === IPPROTO_UDP && c === 0 ? 0xffff : c;
}

/** RFC 1624 eqn. 3: update checksum hc for a 16-bit word changing from m to m2. */
export function csumUpdate16(hc: number, m: number, m2: number): number {
  return ~fold((~hc & 0xffff) + (~m & 0xffff) + m2) & 0xffff;
}

function rd16(b: Uint8Array, off: number): number {
  return (b[off] << 8) | b[off + 1];
}
function wr16(b: Uint8Array, off: number, v: number): void {
  b[off] = (v >> 8) & 0xff;
  b[off + 1] = v & 0xff;
}

/** Fold a word changing from m to m2 into the checksum at `co` (-1: none); a UDP checksum of 0 (IPv4: none) stays 0. */
function updateAt(b: Uint8Array, co: number, m: number, m2: number, udpOff: number): void {
  if (co < 0) return;
  if (co === udpOff && rd16(b, co) === 0) return;
  let c = csumUpdate16(rd16(b, co), m, m2);
  if (co === udpOff && c === 0) c = 0xffff;
  wr16(b, co, c);
}

/** Replace nw.length (even) bytes at `off` with `nw`, folding each changed word into the checksums at co1 and co2. */
function replaceBytes(b: Uint8Array, off: number, nw: Uint8Array, co1: number, co2: number, udpOff: number): void {
  for (let i = 0; i < nw.length; i += 2) {
    const m = rd16(b, off + i);
    const m2 = (nw[i] << 8) | nw[i + 1];
    if (m === m2) continue;
    updateAt(b, co1, m, m2, udpOff);
    updateAt(b, co2, m, m2, udpOff);
    wr16(b, off + i, m2);
  }
}

/** The port being written by natRewrite (reused: the per-packet path allocates nothing). */
const PORT = new Uint8Array(2);

/** Where the address sits and which checksums cover it. */
function addrOffsets(p: Parsed, which: 'src' | 'dst'): { addrOff: number; portOff: number } {
  const addrOff = p.family === 4 ? (which === 'src' ? 12 : 16) : which === 'src' ? 8 : 24;
  return { addrOff, portOff: p.l4off + (which === 'src' ? 0 : 2) };
}

/**
 * NAT: rewrite the source or destination address and port of a parsed TCP/UDP packet in place, updating the IPv4
 * header checksum and the transport checksum (pseudo-header) incrementally. `addr` is 4 or 16 bytes.
 */
export function natRewrite(b: Uint8Array, p: Parsed, which: 'src' | 'dst', addr: Uint8Array, port: number): void {
  const { addrOff, portOff } = addrOffsets(p, which);
  const co = l4CsumOffset(p.protocol);
  const l4c = co >= 0 && p.protocol !== IPPROTO_ICMP ? p.l4off + co : -1;
  const udpOff = p.protocol === IPPROTO_UDP ? l4c : -2;
  const ipc = p.family === 4 ? 10 : -1;
  replaceBytes(b, addrOff, addr, ipc, l4c, udpOff);
  if (p.protocol === IPPROTO_TCP || p.protocol === IPPROTO_UDP || p.protocol === 132) {
    PORT[0] = (port >> 8) & 0xff;
    PORT[1] = port & 0xff;
    // SCTP uses CRC32c over the whole packet, which port changes would require recomputing: not done for SCTP
    replaceBytes(b, portOff, PORT, p.protocol === 132 ? -1 : l4c, -1, udpOff);
  }
}

/** Bytes of an address string (IPv4 dotted quad or IPv6). */
export function addrBytes(addr: string): Uint8Array {
  if (addr.includes(':')) {
    return ipv6ToBytes(addr);
  }
  const p = addr.split('.');
  return new Uint8Array([+p[0], +p[1], +p[2], +p[3]]);
}

let ipipId = 1;

/**
 * IPIP encapsulation (ip_vs_tunnel_xmit): a 20-byte outer IPv4 header, protocol 4 (41 for an IPv6 inner packet),
 * to `dst`. The source is left 0.0.0.0 so the kernel fills in the route's source address (IP_HDRINCL semantics); TOS
 * (an IPv6 packet's traffic class) and DF are copied from the inner header, TTL is 64, the checksum is computed.
 */
export function ipipEncap(inner: Uint8Array, dst: Uint8Array, src?: Uint8Array): Uint8Array {
  const out = new Uint8Array(inner.length + 20);
  out[0] = 0x45;
  const v6 = inner[0] >> 4 === 6;
  out[1] = v6 ? trafficClass(inner) : inner[1];
  wr16(out, 2, out.length);
  wr16(out, 4, ipipId);
  ipipId = (ipipId + 1) & 0xffff;
  out[6] = v6 ? 0 : inner[6] & 0x40;
  out[8] = 64;
  out[9] = v6 ? IPPROTO_IPV6 : IPPROTO_IPIP;
  if (src) out.set(src, 12);
  out.set(dst, 16);
  wr16(out, 10, ipv4HeaderChecksum(out, 0, 20));
  out.set(inner, 20);
  return out;
}

/** An IPv6 header's traffic class (the 8 bits after the version). */
export function trafficClass(ip6: Uint8Array): number {
  return ((ip6[0] & 0x0f) << 4) | (ip6[1] >> 4);
}

/** IPv6's minimum MTU (RFC 8200): an ICMPv6 error quotes as much of the packet as keeps it within this. */
export const IPV6_MIN_MTU = 1280;

/**
 * ICMPv6 Packet Too Big (RFC 4443 3.2) about the IPv6 packet `pkt`, as icmpv6_send builds it: from the packet's
 * destination (the VIP, the director's) to its source, hop limit 64, type 2 code 0, the MTU, then as much of the
 * packet as fits in 1280 bytes; the checksum over the pseudo-header is computed.
 */
export function packetTooBig6(pkt: Uint8Array, mtu: number): Uint8Array {
  const quoted = Math.min(pkt.length, IPV6_MIN_MTU - 48);
  const out = new Uint8Array(48 + quoted);
  out[0] = 0x60;
  wr16(out, 4, 8 + quoted);
  out[6] = IPPROTO_ICMPV6;
  out[7] = 64;
  out.set(pkt.subarray(24, 40), 8);
  out.set(pkt.subarray(8, 24), 24);
  out[40] = ICMPV6_PKT_TOOBIG;
  wr16(out, 44, mtu >>> 16);
  wr16(out, 46, mtu & 0xffff);
  out.set(pkt.subarray(0, quoted), 48);
  wr16(out, 42, finish(sumWords(out, 8, 32) + IPPROTO_ICMPV6 + 8 + quoted + sumWords(out, 40, 8 + quoted)));
  return out;
}

const ICMPV6_PKT_TOOBIG = 2;

/**
 * Split an IPv4 packet (a 20-byte header, no options: an IPIP encapsulation) into fragments of at most `mtu` bytes
 * (ip_fragment): the header copied to each, offsets in 8-byte units, MF on all but the last, checksums recomputed.
 * A packet that fits comes back alone.
 */
export function ipv4Fragments(pkt: Uint8Array, mtu: number): Uint8Array[] {
  if (pkt.length <= mtu) return [pkt];
  const hl = (pkt[0] & 0x0f) * 4;
  const step = (mtu - hl) & ~7;
  const out: Uint8Array[] = [];
  for (let off = hl; off < pkt.length; off += step) {
    const end = Math.min(pkt.length, off + step);
    const f = new Uint8Array(hl + end - off);
    f.set(pkt.subarray(0, hl), 0);
    f.set(pkt.subarray(off, end), hl);
    wr16(f, 2, f.length);
    wr16(f, 6, (end < pkt.length ? 0x2000 : 0) | ((off - hl) >> 3));
    wr16(f, 10, ipv4HeaderChecksum(f, 0, hl));
    out.push(f);
  }
  return out;
}

/** Verify the IPv4 header checksum (used by tests and the decapsulating peer). */
export function ipv4HeaderOk(b: Uint8Array, off = 0): boolean {
  const ihl = (b[off] & 0x0f) * 4;
  return fold(sumWords(b, off, ihl)) === 0xffff;
}
