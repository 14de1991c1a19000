/**
 * Pure packet parsing for the data path: IPv4/IPv6 headers, TCP/UDP/SCTP ports, TCP flags and ICMP errors (the
 * embedded header of the packet the error is about). Never throws: a bad packet comes back with a reason so the worker
 * counts it and keeps going.
 * The hot path uses a `PacketParser`: it writes into preallocated `PacketView`s (no object per packet or header), keeps
 * IPv4 addresses as 32-bit numbers (`saddr4`/`daddr4`) and IPv6 ones as 32-bit words (`addr6`), for the connection
 * table's numeric keys, and formats the address strings only when something asks for them. `parsePacket` gives the same fields as plain objects.
 */
import { bytesToIpv6 } from '../../common/addr.js';
import {
  IPPROTO_ICMP,
  IPPROTO_ICMPV6,
  IPPROTO_IPIP,
  IPPROTO_SCTP,
  IPPROTO_TCP,
  IPPROTO_UDP,
} from '../../sys/constants.js';
import type { PacketMeta } from '../engine.js';

/** The protocol numbers (src/sys/constants.ts), for the data path's modules (csum.ts). */
export { IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_IPIP, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP };

/** Why a packet was not handed to the engine. */
export type BadReason =
  | 'truncated'
  | 'bad-version'
  | 'bad-ihl'
  | 'bad-length'
  | 'fragment'
  | 'bad-l4-header'
  | 'unknown-protocol'
  | 'icmp-not-error'
  | 'icmp-bad-inner';

/** The engine's PacketMeta (src/l4/engine.ts) and where the packet's parts are. */
export interface Parsed extends PacketMeta {
  /** offset of the transport header */
  l4off: number;
  /** total length of the IP packet (from its header; trailing bytes beyond are ignored) */
  totalLen: number;
}

export interface IcmpError {
  /** the outer packet (ICMP, ports 0) */
  outer: Parsed;
  /** the embedded packet the error is about (ports parsed from its first 8 transport bytes) */
  inner: Parsed;
  /** offset of the ICMP header */
  icmpOff: number;
  /** offset of the embedded IP header */
  innerOff: number;
}

export type ParseResult =
  | { ok: true; pkt: Parsed }
  | { ok: true; icmp: IcmpError }
  | { ok: false; reason: BadReason; partial?: Partial<Parsed> };

export function ipv4Str(b: Uint8Array, off: number): string {
  return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
}

function ipv6Str(b: Uint8Array, off: number): string {
  return bytesToIpv6(b.subarray(off, off + 16));
}

const be16 = (b: Uint8Array, off: number) => (b[off] << 8) | b[off + 1];
const be32 = (b: Uint8Array, off: number) =>
  ((b[off] << 24) | (b[off + 1] << 16) | (b[off + 2] << 8) | b[off + 3]) >>> 0;

/** ICMPv4 types that carry an embedded packet (dest unreachable, source quench, redirect, time exceeded, param). */
const isIcmp4Error = (t: number) => t === 3 || t === 4 || t === 5 || t === 11 || t === 12;
/** ICMPv6 errors are types < 128. */
const isIcmp6Error = (t: number) => t < 128;

/**
 * One parsed packet (or header), reused from packet to packet: the fields are overwritten by each parse. The address
 * strings are read from the packet's bytes on first use, so take them before the buffer is rewritten or reused.
 */
export class PacketView implements Parsed {
  family: 4 | 6 = 4;
  protocol = 0;
  sport = 0;
  dport = 0;
  fwmark = 0;
  tcpFlags = 0;
  length = 0;
  l4off = 0;
  totalLen = 0;
  /** IPv4 addresses as unsigned 32-bit numbers (0 for IPv6) */
  saddr4 = 0;
  daddr4 = 0;
  /** IPv6: saddr then daddr as eight big-endian 32-bit words (stale for IPv4) */
  readonly addr6 = new Int32Array(8);
  /** where the addresses are in `buf` */
  saddrOff = 0;
  daddrOff = 0;
  buf: Uint8Array = EMPTY;
  private s: string | null = null;
  private d: string | null = null;

  get saddr(): string {
    if (this.s === null)
      this.s = this.family === 4 ? ipv4Str(this.buf, this.saddrOff) : ipv6Str(this.buf, this.saddrOff);
    return this.s;
  }

  get daddr(): string {
    if (this.d === null)
      this.d = this.family === 4 ? ipv4Str(this.buf, this.daddrOff) : ipv6Str(this.buf, this.daddrOff);
    return this.d;
  }

  /** A plain object with the same fields (the address strings taken now). */
  toParsed(): Parsed {
    return {
      family: this.family,
      protocol: this.protocol,
      saddr: this.saddr,
      sport: this.sport,
      daddr: this.daddr,
      dport: this.dport,
      fwmark: this.fwmark,
      tcpFlags: this.tcpFlags,
      length: this.length,
      l4off: this.l4off,
      totalLen: this.totalLen,
    };
  }

  /** Forget the cached strings (the parser calls this before filling the view). */
  reset(buf: Uint8Array): void {
    this.buf = buf;
    this.s = null;
    this.d = null;
    this.sport = 0;
    this.dport = 0;
    this.tcpFlags = 0;
    this.saddr4 = 0;
    this.daddr4 = 0;
  }
}

const EMPTY = new Uint8Array(0);

/** What `PacketParser.parse` found. */
export const PARSE_OK = 0;
export const PARSE_ICMP = 1;
export const PARSE_BAD = 2;

/** A parser with its own preallocated views: `pkt` (the packet, or the outer one of an ICMP error) and `inner`. */
export class PacketParser {
  readonly pkt = new PacketView();
  /** the embedded packet of an ICMP error (ports parsed from its first 8 transport bytes) */
  readonly inner = new PacketView();
  /** offset of the ICMP header and of the embedded IP header, for PARSE_ICMP */
  icmpOff = 0;
  innerOff = 0;
  /** why the last packet was PARSE_BAD */
  reason: BadReason = 'truncated';
  /** for PARSE_BAD: `pkt` holds what was parsed (as the `partial` of parsePacket) */
  partial = false;

  /** Parse a packet as delivered by NFQUEUE (starting at the IP header): PARSE_OK, PARSE_ICMP or PARSE_BAD. */
  parse(b: Uint8Array, fwmark = 0): number {
    const v = this.pkt;
    this.partial = false;
    v.reset(b);
    v.fwmark = fwmark;
    const r = parseL3(v, b, 0, b.length, false);
    if (r !== null) return this.bad(r);
    const end = v.totalLen;
    const icmpProto = v.family === 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6;
    if (v.protocol === icmpProto) {
      if (end - v.l4off < 8) return this.bad('bad-l4-header');
      const type = b[v.l4off];
      this.partial = true;
      if (!(v.family === 4 ? isIcmp4Error(type) : isIcmp6Error(type))) return this.bad('icmp-not-error');
      const innerOff = v.l4off + 8;
      const iv = this.inner;
      iv.reset(b);
      iv.fwmark = fwmark;
      const ir = parseL3(iv, b, innerOff, end, true);
      if (ir !== null || iv.family !== v.family) return this.bad('icmp-bad-inner');
      const pr = ports(iv, b, end, true);
      if (pr !== null) return this.bad(pr);
      if (iv.protocol !== IPPROTO_TCP && iv.protocol !== IPPROTO_UDP && iv.protocol !== IPPROTO_SCTP)
        return this.bad('icmp-bad-inner');
      this.icmpOff = v.l4off;
      this.innerOff = innerOff;
      return PARSE_ICMP;
    }
    const pr = ports(v, b, end, false);
    if (v.protocol !== IPPROTO_TCP && v.protocol !== IPPROTO_UDP && v.protocol !== IPPROTO_SCTP) {
      this.partial = pr === null;
      return this.bad('unknown-protocol');
    }
    if (pr !== null) return this.bad(pr);
    return PARSE_OK;
  }

  private bad(reason: BadReason): number {
    this.reason = reason;
    return PARSE_BAD;
  }
}

/**
 * Parse the IP header into `v` (family, protocol, addresses, l4off, totalLen, length); null when fine. `embedded`
 * relaxes the length checks for the packet inside an ICMP error (which is cut short).
 */
function parseL3(v: PacketView, b: Uint8Array, off: number, end: number, embedded: boolean): BadReason | null {
  if (end - off < 1) return 'truncated';
  const ver = b[off] >> 4;
  if (ver === 4) {
    if (end - off < 20) return 'truncated';
    const ihl = (b[off] & 0x0f) * 4;
    if (ihl < 20) return 'bad-ihl';
    if (end - off < ihl) return 'truncated';
    const tot = be16(b, off + 2);
    if (tot < ihl) return 'bad-length';
    if (!embedded && tot > end - off) return 'truncated';
    const frag = be16(b, off + 6);
    // MF set or a non-zero offset: a fragment (conntrack reassembles before mangle, so only odd cases get here)
    if ((frag & 0x3fff) !== 0 && !embedded) return 'fragment';
    v.family = 4;
    v.protocol = b[off + 9];
    v.saddrOff = off + 12;
    v.daddrOff = off + 16;
    v.saddr4 = be32(b, off + 12);
    v.daddr4 = be32(b, off + 16);
    v.l4off = off + ihl;
    v.totalLen = tot;
    v.length = tot;
    return null;
  }
  if (ver === 6) {
    if (end - off < 40) return 'truncated';
    const plen = be16(b, off + 4);
    if (!embedded && 40 + plen > end - off) return 'truncated';
    let next = b[off + 6];
    let p = off + 40;
    const limit = embedded ? end : Math.min(end, off + 40 + plen);
    // walk extension headers: hop-by-hop 0, routing 43, destination options 60; fragment 44 is refused
    for (let guard = 0; guard < 8; guard++) {
      if (next === 0 || next === 43 || next === 60) {
        if (limit - p < 8) return 'truncated';
        const len = (b[p + 1] + 1) * 8;
        next = b[p];
        p += len;
        if (p > limit) return 'truncated';
        continue;
      }
      if (next === 44) {
        if (embedded) {
          if (limit - p < 8) return 'truncated';
          next = b[p];
          p += 8;
          continue;
        }
        return 'fragment';
      }
      break;
    }
    v.family = 6;
    v.protocol = next;
    const w = v.addr6;
    for (let i = 0; i < 8; i++) w[i] = be32(b, off + 8 + 4 * i);
    v.saddrOff = off + 8;
    v.daddrOff = off + 24;
    v.l4off = p;
    v.totalLen = 40 + plen;
    v.length = 40 + plen;
    return null;
  }
  return 'bad-version';
}

/** Ports and TCP flags of `v`'s transport header (left 0 for other protocols); null when fine. */
function ports(v: PacketView, b: Uint8Array, end: number, embedded: boolean): BadReason | null {
  const l4 = v.l4off;
  const l4len = end - l4;
  switch (v.protocol) {
    case IPPROTO_TCP:
      if (embedded) {
        if (l4len < 8) return 'icmp-bad-inner';
      } else {
        if (l4len < 20) return 'bad-l4-header';
        const doff = (b[l4 + 12] >> 4) * 4;
        if (doff < 20 || doff > l4len) return 'bad-l4-header';
        v.tcpFlags = b[l4 + 13];
      }
      v.sport = be16(b, l4);
      v.dport = be16(b, l4 + 2);
      return null;
    case IPPROTO_UDP:
    case IPPROTO_SCTP:
      if (l4len < 8) return embedded ? 'icmp-bad-inner' : 'bad-l4-header';
      if (v.protocol === IPPROTO_UDP && !embedded) {
        const ulen = be16(b, l4 + 4);
        if (ulen < 8 || ulen > l4len) return 'bad-l4-header';
      }
      v.sport = be16(b, l4);
      v.dport = be16(b, l4 + 2);
      return null;
    default:
      return null;
  }
}

/** Parse a packet as delivered by NFQUEUE (starting at the IP header), into new objects. */
export function parsePacket(b: Uint8Array, fwmark = 0): ParseResult {
  const p = new PacketParser();
  const r = p.parse(b, fwmark);
  if (r === PARSE_OK) return { ok: true, pkt: p.pkt.toParsed() };
  if (r === PARSE_ICMP)
    return {
      ok: true,
      icmp: { outer: p.pkt.toParsed(), inner: p.inner.toParsed(), icmpOff: p.icmpOff, innerOff: p.innerOff },
    };
  if (!p.partial) return { ok: false, reason: p.reason };
  return { ok: false, reason: p.reason, partial: p.pkt.toParsed() };
}
