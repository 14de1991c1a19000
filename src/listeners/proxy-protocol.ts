/**
 * The PROXY protocol, versions 1 and 2, byte-exact per HAProxy's doc/proxy-protocol.txt. Pure: encode a header,
 * decode one from the start of a buffer (reporting "incomplete" until enough bytes arrived).
 *
 * v1 (text, at most 107 bytes):  "PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n"   ("PROXY UNKNOWN\r\n")
 * v2 (binary):  12-byte signature \r\n\r\n\0\r\nQUIT\n, ver_cmd (0x21 PROXY / 0x20 LOCAL), fam (0x11 TCP4,
 *   0x12 UDP4, 0x21 TCP6, 0x22 UDP6, 0x31/0x32 UNIX, 0x00 UNSPEC), 16-bit big-endian length of what follows, then
 *   the addresses (src, dst, sport, dport: 12 bytes for IPv4, 36 for IPv6, 216 for UNIX) and optional TLVs
 *   (type, 16-bit length, value).
 */
import net from 'node:net';
import { bytesToIpv6, ipv6ToBytes } from '../common/addr.js';
import { ListenersError } from './errors.js';

export const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
export const V1_MAX = 107;

export type ProxyFamily = 'TCP4' | 'TCP6' | 'UDP4' | 'UDP6' | 'UNIX' | 'UNIX_DGRAM' | 'UNKNOWN';

export interface ProxyHeader {
  version: 1 | 2;
  /** LOCAL: a connection of the proxy itself (health check); the addresses are to be ignored */
  command: 'PROXY' | 'LOCAL';
  family: ProxyFamily;
  src?: string;
  dst?: string;
  srcPort?: number;
  dstPort?: number;
  tlvs?: { type: number; value: Buffer }[];
}

export type DecodeResult =
  | { status: 'incomplete' }
  | { status: 'error'; reason: string }
  | { status: 'ok'; header: ProxyHeader; length: number };

/** `::ffff:10.0.0.1` (how Node reports IPv4 on a dual-stack socket) → `10.0.0.1` */
export function unmapV4(addr: string): string {
  return addr.startsWith('::ffff:') && net.isIPv4(addr.slice(7)) ? addr.slice(7) : addr;
}

/** The header a proxy sends for a TCP connection from src:sport to dst:dport. */
export function headerFor(src: string, srcPort: number, dst: string, dstPort: number): ProxyHeader {
  const s = unmapV4(src);
  const d = unmapV4(dst);
  if (net.isIPv4(s) && net.isIPv4(d))
    return { version: 1, command: 'PROXY', family: 'TCP4', src: s, dst: d, srcPort, dstPort };
  if (net.isIP(s) && net.isIP(d))
    return { version: 1, command: 'PROXY', family: 'TCP6', src: toV6(s), dst: toV6(d), srcPort, dstPort };
  return { version: 1, command: 'PROXY', family: 'UNKNOWN' };
}

function toV6(a: string): string {
  return net.isIPv4(a) ? `::ffff:${a}` : a;
}

// ---- v1 ----

export function encodeV1(h: ProxyHeader): Buffer {
  if (h.family === 'UNKNOWN' || h.command === 'LOCAL') return Buffer.from('PROXY UNKNOWN\r\n', 'latin1');
  if (h.family !== 'TCP4' && h.family !== 'TCP6')
    throw new ListenersError('EPROXY_HEADER', `PROXY v1 cannot carry ${h.family}: send it as v2`);
  const ok = h.family === 'TCP4' ? net.isIPv4 : net.isIPv6;
  if (!h.src || !h.dst || !ok(h.src) || !ok(h.dst))
    throw new ListenersError('EPROXY_HEADER', `bad ${h.family} addresses: src and dst must be ${h.family} addresses`);
  const line = `PROXY ${h.family} ${h.src} ${h.dst} ${h.srcPort ?? 0} ${h.dstPort ?? 0}\r\n`;
  if (line.length > V1_MAX)
    throw new ListenersError('EPROXY_HEADER', 'PROXY v1 line longer than 107 bytes (the protocol limit)');
  return Buffer.from(line, 'latin1');
}

const PORT_RE = /^(0|[1-9]\d{0,4})$/;

function decodeV1(buf: Buffer): DecodeResult {
  const end = buf.indexOf('\r\n', 0, 'latin1');
  if (end < 0) {
    if (buf.length >= V1_MAX) return { status: 'error', reason: 'PROXY v1 line without CRLF in 107 bytes' };
    return { status: 'incomplete' };
  }
  if (end + 2 > V1_MAX) return { status: 'error', reason: 'PROXY v1 line longer than 107 bytes' };
  const parts = buf.toString('latin1', 0, end).split(' ');
  const length = end + 2;
  if (parts[1] === 'UNKNOWN')
    return { status: 'ok', length, header: { version: 1, command: 'PROXY', family: 'UNKNOWN' } };
  if (parts.length !== 6) return { status: 'error', reason: 'PROXY v1 needs 6 fields' };
  const [, fam, src, dst, sp, dp] = parts as [string, string, string, string, string, string];
  if (fam !== 'TCP4' && fam !== 'TCP6') return { status: 'error', reason: `PROXY v1 unknown protocol '${fam}'` };
  const ok = fam === 'TCP4' ? net.isIPv4 : net.isIPv6;
  if (!ok(src) || !ok(dst)) return { status: 'error', reason: `PROXY v1 bad ${fam} address` };
  if (!PORT_RE.test(sp) || !PORT_RE.test(dp) || Number(sp) > 65535 || Number(dp) > 65535)
    return { status: 'error', reason: 'PROXY v1 bad port' };
  return {
    status: 'ok',
    length,
    header: { version: 1, command: 'PROXY', family: fam, src, dst, srcPort: Number(sp), dstPort: Number(dp) },
  };
}

// ---- v2 ----

const FAM_BYTE: Record<ProxyFamily, number> = {
  UNKNOWN: 0x00,
  TCP4: 0x11,
  UDP4: 0x12,
  TCP6: 0x21,
  UDP6: 0x22,
  UNIX: 0x31,
  UNIX_DGRAM: 0x32,
};

function v4bytes(a: string): Buffer {
  return Buffer.from(a.split('.').map(Number));
}

export function encodeV2(h: ProxyHeader): Buffer {
  const verCmd = h.command === 'LOCAL' ? 0x20 : 0x21;
  let addr: Buffer;
  let fam = FAM_BYTE[h.family];
  if (h.command === 'LOCAL' || h.family === 'UNKNOWN') {
    addr = Buffer.alloc(0);
    fam = 0;
  } else if (h.family === 'TCP4' || h.family === 'UDP4') {
    addr = Buffer.alloc(12);
    v4bytes(h.src!).copy(addr, 0);
    v4bytes(h.dst!).copy(addr, 4);
    addr.writeUInt16BE(h.srcPort ?? 0, 8);
    addr.writeUInt16BE(h.dstPort ?? 0, 10);
  } else if (h.family === 'TCP6' || h.family === 'UDP6') {
    addr = Buffer.alloc(36);
    addr.set(ipv6ToBytes(h.src!), 0);
    addr.set(ipv6ToBytes(h.dst!), 16);
    addr.writeUInt16BE(h.srcPort ?? 0, 32);
    addr.writeUInt16BE(h.dstPort ?? 0, 34);
  } else {
    addr = Buffer.alloc(216);
    addr.write(h.src ?? '', 0, 107, 'utf8');
    addr.write(h.dst ?? '', 108, 107, 'utf8');
  }
  const tlvs = (h.tlvs ?? []).map((t) => {
    const b = Buffer.alloc(3 + t.value.length);
    b[0] = t.type;
    b.writeUInt16BE(t.value.length, 1);
    t.value.copy(b, 3);
    return b;
  });
  const body = Buffer.concat([addr, ...tlvs]);
  if (body.length > 0xffff)
    throw new ListenersError(
      'EPROXY_HEADER',
      'PROXY v2 header too long (over 65535 bytes of addresses and TLVs): send fewer TLVs',
    );
  const head = Buffer.alloc(16);
  V2_SIGNATURE.copy(head, 0);
  head[12] = verCmd;
  head[13] = fam;
  head.writeUInt16BE(body.length, 14);
  return Buffer.concat([head, body]);
}

function decodeV2(buf: Buffer): DecodeResult {
  if (buf.length < 16) return { status: 'incomplete' };
  const verCmd = buf[12]!;
  if (verCmd >> 4 !== 2) return { status: 'error', reason: `PROXY v2 bad version ${verCmd >> 4}` };
  const cmd = verCmd & 0x0f;
  if (cmd > 1) return { status: 'error', reason: `PROXY v2 bad command ${cmd}` };
  const len = buf.readUInt16BE(14);
  if (buf.length < 16 + len) return { status: 'incomplete' };
  const length = 16 + len;
  const body = buf.subarray(16, length);
  const famByte = buf[13]!;
  const fam = (Object.entries(FAM_BYTE).find(([, v]) => v === famByte)?.[0] ?? 'UNKNOWN') as ProxyFamily;
  const header: ProxyHeader = { version: 2, command: cmd === 0 ? 'LOCAL' : 'PROXY', family: fam };
  let off = 0;
  if (fam === 'TCP4' || fam === 'UDP4') {
    if (len < 12) return { status: 'error', reason: 'PROXY v2 IPv4 block shorter than 12 bytes' };
    header.src = [...body.subarray(0, 4)].join('.');
    header.dst = [...body.subarray(4, 8)].join('.');
    header.srcPort = body.readUInt16BE(8);
    header.dstPort = body.readUInt16BE(10);
    off = 12;
  } else if (fam === 'TCP6' || fam === 'UDP6') {
    if (len < 36) return { status: 'error', reason: 'PROXY v2 IPv6 block shorter than 36 bytes' };
    header.src = bytesToIpv6(body.subarray(0, 16));
    header.dst = bytesToIpv6(body.subarray(16, 32));
    header.srcPort = body.readUInt16BE(32);
    header.dstPort = body.readUInt16BE(34);
    off = 36;
  } else if (fam === 'UNIX' || fam === 'UNIX_DGRAM') {
    if (len < 216) return { status: 'error', reason: 'PROXY v2 UNIX block shorter than 216 bytes' };
    const str = (b: Buffer) => b.toString('utf8', 0, b.indexOf(0) < 0 ? b.length : b.indexOf(0));
    header.src = str(body.subarray(0, 108));
    header.dst = str(body.subarray(108, 216));
    off = 216;
  } else {
    off = len; // UNSPEC: the receiver ignores whatever follows
  }
  const tlvs: { type: number; value: Buffer }[] = [];
  while (off < len) {
    if (off + 3 > len) return { status: 'error', reason: 'PROXY v2 truncated TLV' };
    const tlen = body.readUInt16BE(off + 1);
    if (off + 3 + tlen > len) return { status: 'error', reason: 'PROXY v2 TLV overruns the header' };
    tlvs.push({ type: body[off]!, value: Buffer.from(body.subarray(off + 3, off + 3 + tlen)) });
    off += 3 + tlen;
  }
  if (tlvs.length) header.tlvs = tlvs;
  return { status: 'ok', header, length };
}

// ---- either ----

const V1_PREFIX = Buffer.from('PROXY ', 'latin1');

/** Decode the PROXY header at the start of `buf` (v1 or v2, auto-detected). */
export function decode(buf: Buffer): DecodeResult {
  const n = Math.min(buf.length, 12);
  if (buf[0] === 0x0d) {
    if (!buf.subarray(0, n).equals(V2_SIGNATURE.subarray(0, n)))
      return { status: 'error', reason: 'not a PROXY header' };
    return n < 12 ? { status: 'incomplete' } : decodeV2(buf);
  }
  const m = Math.min(buf.length, 6);
  if (!buf.subarray(0, m).equals(V1_PREFIX.subarray(0, m))) return { status: 'error', reason: 'not a PROXY header' };
  return m < 6 ? { status: 'incomplete' } : decodeV1(buf);
}

export function encode(h: ProxyHeader, version: 1 | 2 = h.version): Buffer {
  return version === 1 ? encodeV1(h) : encodeV2(h);
}
