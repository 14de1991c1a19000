/**
 * Packets built byte by byte for the data-path tests, the malformed-packet corpus and the flood benchmark: IPv4 and
 * IPv6 headers (options, extension headers, fragments), TCP, UDP, ICMP and ICMPv6 errors quoting a packet. The
 * checksums are computed here independently of src/l4/datapath/csum.ts (RFC 1071), so the tests check that one.
 */
import { ipv6ToBytes } from '../src/common/addr.js';

export const TCP = 6;
export const UDP = 17;
export const ICMP = 1;
export const ICMP6 = 58;

const ip4 = (s: string) => Uint8Array.from(s.split('.').map(Number));

/** RFC 1071 over the buffers in order (each padded on its own only at the very end). */
export function inetChecksum(...parts: Uint8Array[]): number {
  let acc = 0;
  const all = concat(...parts);
  for (let i = 0; i < all.length; i += 2) acc += (all[i] << 8) | (all[i + 1] ?? 0);
  while (acc > 0xffff) acc = (acc & 0xffff) + Math.floor(acc / 0x10000);
  return ~acc & 0xffff;
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

const put16 = (b: Uint8Array, off: number, v: number) => {
  b[off] = (v >> 8) & 0xff;
  b[off + 1] = v & 0xff;
};

/** The pseudo-header of a transport checksum. */
function pseudo(src: string, dst: string, proto: number, len: number): Uint8Array {
  if (src.includes(':')) {
    const p = new Uint8Array(40);
    p.set(ipv6ToBytes(src), 0);
    p.set(ipv6ToBytes(dst), 16);
    p[32] = len >>> 24;
    p[33] = (len >>> 16) & 0xff;
    put16(p, 34, len & 0xffff);
    p[39] = proto;
    return p;
  }
  const p = new Uint8Array(12);
  p.set(ip4(src), 0);
  p.set(ip4(dst), 4);
  p[9] = proto;
  put16(p, 10, len);
  return p;
}

export interface L4Opts {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  data?: Uint8Array;
}

/** A TCP segment (20-byte header, valid checksum). */
export function tcp(o: L4Opts & { flags?: number; seq?: number; doff?: number }): Uint8Array {
  const data = o.data ?? new Uint8Array(0);
  const b = new Uint8Array(20 + data.length);
  put16(b, 0, o.sport);
  put16(b, 2, o.dport);
  b[4] = ((o.seq ?? 1) >>> 24) & 0xff;
  b[7] = (o.seq ?? 1) & 0xff;
  b[12] = (o.doff ?? 5) << 4;
  b[13] = o.flags ?? 0x02;
  put16(b, 14, 65535);
  b.set(data, 20);
  put16(b, 16, inetChecksum(pseudo(o.src, o.dst, TCP, b.length), b));
  return b;
}

/** A UDP datagram (valid checksum). */
export function udp(o: L4Opts): Uint8Array {
  const data = o.data ?? new Uint8Array(0);
  const b = new Uint8Array(8 + data.length);
  put16(b, 0, o.sport);
  put16(b, 2, o.dport);
  put16(b, 4, b.length);
  b.set(data, 8);
  const c = inetChecksum(pseudo(o.src, o.dst, UDP, b.length), b);
  put16(b, 6, c === 0 ? 0xffff : c);
  return b;
}

export interface Ip4Opts {
  src: string;
  dst: string;
  proto: number;
  payload: Uint8Array;
  ttl?: number;
  id?: number;
  /** DF */
  df?: boolean;
  /** more fragments */
  mf?: boolean;
  /** fragment offset in bytes (a multiple of 8) */
  fragOff?: number;
  /** IP options (padded to 4 bytes) */
  options?: Uint8Array;
}

/** An IPv4 packet with a valid header checksum. */
export function ipv4(o: Ip4Opts): Uint8Array {
  const opt = o.options ?? new Uint8Array(0);
  const optLen = (opt.length + 3) & ~3;
  const hl = 20 + optLen;
  const b = new Uint8Array(hl + o.payload.length);
  b[0] = 0x40 | (hl >> 2);
  put16(b, 2, b.length);
  put16(b, 4, o.id ?? 0x1234);
  put16(b, 6, (o.df ? 0x4000 : 0) | (o.mf ? 0x2000 : 0) | ((o.fragOff ?? 0) >> 3));
  b[8] = o.ttl ?? 64;
  b[9] = o.proto;
  b.set(ip4(o.src), 12);
  b.set(ip4(o.dst), 16);
  b.set(opt, 20);
  put16(b, 10, inetChecksum(b.subarray(0, hl)));
  b.set(o.payload, hl);
  return b;
}

export interface Ip6Opts {
  src: string;
  dst: string;
  /** the transport protocol (after any extension headers) */
  proto: number;
  payload: Uint8Array;
  hop?: number;
  /** extension headers before the payload: [type, body] with body a multiple of 8 bytes minus 2 */
  ext?: [number, Uint8Array][];
}

/** An IPv6 packet; extension headers are chained in order (a fragment header: type 44, 6-byte body). */
export function ipv6(o: Ip6Opts): Uint8Array {
  const exts = o.ext ?? [];
  const extBytes: Uint8Array[] = [];
  for (let i = 0; i < exts.length; i++) {
    const [, body] = exts[i];
    const next = i + 1 < exts.length ? exts[i + 1][0] : o.proto;
    const h = new Uint8Array(2 + body.length);
    h[0] = next;
    h[1] = exts[i][0] === 44 ? 0 : (h.length >> 3) - 1;
    h.set(body, 2);
    extBytes.push(h);
  }
  const ext = concat(...extBytes);
  const b = new Uint8Array(40 + ext.length + o.payload.length);
  b[0] = 0x60;
  put16(b, 4, ext.length + o.payload.length);
  b[6] = exts.length ? exts[0][0] : o.proto;
  b[7] = o.hop ?? 64;
  b.set(ipv6ToBytes(o.src), 8);
  b.set(ipv6ToBytes(o.dst), 24);
  b.set(ext, 40);
  b.set(o.payload, 40 + ext.length);
  return b;
}

/** An IP packet of either family. */
export function ip(o: Ip4Opts): Uint8Array {
  return o.src.includes(':') ? ipv6(o) : ipv4(o);
}

/**
 * An ICMP (IPv4) or ICMPv6 error from `src` to `dst` quoting `quoted` (cut to `quoteLen` bytes, default 28 for IPv4,
 * all of it up to 1232 for IPv6); `mtu` goes where frag-needed / packet-too-big put it.
 */
export function icmpError(o: {
  src: string;
  dst: string;
  type: number;
  code: number;
  quoted: Uint8Array;
  quoteLen?: number;
  mtu?: number;
}): Uint8Array {
  const v6 = o.src.includes(':');
  const q = o.quoted.subarray(0, o.quoteLen ?? (v6 ? 1232 : 28));
  const m = new Uint8Array(8 + q.length);
  m[0] = o.type;
  m[1] = o.code;
  if (o.mtu !== undefined) {
    if (v6) {
      m[4] = o.mtu >>> 24;
      m[5] = (o.mtu >>> 16) & 0xff;
      put16(m, 6, o.mtu & 0xffff);
    } else put16(m, 6, o.mtu);
  }
  m.set(q, 8);
  const c = v6 ? inetChecksum(pseudo(o.src, o.dst, ICMP6, m.length), m) : inetChecksum(m);
  put16(m, 2, c);
  return v6
    ? ipv6({ src: o.src, dst: o.dst, proto: ICMP6, payload: m })
    : ipv4({ src: o.src, dst: o.dst, proto: ICMP, payload: m });
}

/** Whether an IP packet's header checksum (IPv4) and transport / ICMP checksum hold. */
export function checksumsOk(b: Uint8Array): boolean {
  const v6 = b[0] >> 4 === 6;
  const hl = v6 ? 40 : (b[0] & 15) * 4;
  if (!v6 && inetChecksum(b.subarray(0, hl)) !== 0) return false;
  const proto = v6 ? b[6] : b[9];
  const end = v6 ? 40 + ((b[4] << 8) | b[5]) : (b[2] << 8) | b[3];
  const l4 = b.subarray(hl, end);
  const fmt = (o: number) =>
    v6
      ? Array.from({ length: 8 }, (_, i) => ((b[o + 2 * i] << 8) | b[o + 2 * i + 1]).toString(16)).join(':')
      : `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;
  const src = fmt(v6 ? 8 : 12);
  const dst = fmt(v6 ? 24 : 16);
  if (proto === ICMP) return inetChecksum(l4) === 0;
  return inetChecksum(pseudo(src, dst, proto, l4.length), l4) === 0;
}
