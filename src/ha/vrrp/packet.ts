/**
 * VRRP advertisements: VRRPv2 (RFC 3768, PASS authentication) and VRRPv3 (RFC 5798, centisecond Max Adver Int,
 * checksum over the IPv4 or IPv6 pseudo-header). An advertisement's family is its addresses' family (IPv6: 16 bytes
 * each, VRRPv3 only). Pure: encode, decode, validate. A bad packet yields a drop reason, never an exception.
 */
import { bytesToIpv6, intToIpv4, ipv6ToBytes } from '../../common/addr.js';
import { VRRP_MCAST_GROUP, VRRP_PROTO, VRRP6_MCAST_GROUP, type VrrpVersion } from './types.js';

export const VRRP_TYPE_ADVERT = 1;
export const AUTH_NONE = 0;
export const AUTH_PASS = 1;
export const AUTH_AH = 2;
const V2_AUTH_LEN = 8;
const HDR_LEN = 8;

export interface VrrpAdvert {
  version: VrrpVersion;
  vrid: number;
  priority: number;
  /** the addresses carried in the packet (IPv4, or IPv6 for an IPv6 advertisement) */
  addresses: string[];
  /** v2: Adver Int in seconds; v3: Max Adver Int in centiseconds */
  interval: number;
  /** v2 only */
  authType: number;
  /** v2 only: the 8 authentication bytes */
  authData: Buffer;
}

/** An IPv4 or IPv6 packet carrying VRRP as read from a raw socket. */
export interface VrrpPacket {
  src: string;
  dst: string;
  /** IPv4 TTL or IPv6 hop limit */
  ttl: number;
  advert: VrrpAdvert;
}

export type DropReason =
  | 'ip_header' // too short, not IPv4, bad IHL or total length
  | 'protocol' // IP protocol is not 112
  | 'ttl' // TTL (IPv6: hop limit) is not 255
  | 'length' // shorter than the header, the addresses and the authentication data
  | 'version' // not the configured VRRP version
  | 'type' // not an advertisement
  | 'checksum'
  | 'vrid' // another virtual router on the same segment (normal; counted, not logged)
  | 'addr_count' // count is 0 or does not match the configured addresses
  | 'auth_type' // v2: the authentication type differs from ours
  | 'auth' // v2: the password differs
  | 'interval' // v2: Adver Int differs from ours (RFC 3768 7.1)
  | 'own' // our own advertisement looped back
  | 'peer'; // unicast mode: the sender is not one of our unicast_peer

export type Decoded = { ok: true; packet: VrrpPacket } | { ok: false; reason: DropReason };

/** RFC 1071 Internet checksum over the given buffers (treated as one byte string). */
export function inetChecksum(...bufs: Buffer[]): number {
  let sum = 0;
  let odd: number | undefined;
  for (const b of bufs) {
    for (let i = 0; i < b.length; i++) {
      if (odd === undefined) odd = b[i];
      else {
        sum += (odd << 8) | b[i];
        odd = undefined;
      }
    }
  }
  if (odd !== undefined) sum += odd << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** The 4 bytes of a dotted quad (throws on anything else). */
export function ipv4Bytes(addr: string): Buffer {
  const parts = addr.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255))
    throw new TypeError(`not an IPv4 address: ${addr}`);
  return Buffer.from(parts);
}

/** RFC 8200 8.1 pseudo-header: source, destination, upper-layer length (32 bits), 3 zero bytes, next header. */
export function pseudoHeader6(src: string, dst: string, len: number, nextHeader = VRRP_PROTO): Buffer {
  const p = Buffer.alloc(40);
  p.set(ipv6ToBytes(src), 0);
  p.set(ipv6ToBytes(dst), 16);
  p.writeUInt32BE(len, 32);
  p[39] = nextHeader;
  return p;
}

const isV6 = (a: string) => a.includes(':');

function pseudoHeader(src: string, dst: string, len: number): Buffer {
  if (isV6(src) || isV6(dst)) return pseudoHeader6(src, dst, len);
  const p = Buffer.alloc(12);
  ipv4Bytes(src).copy(p, 0);
  ipv4Bytes(dst).copy(p, 4);
  p[9] = VRRP_PROTO;
  p.writeUInt16BE(len, 10);
  return p;
}

/** The 8 bytes of v2 simple-text authentication: the password, zero padded (keepalived truncates at 8). */
export function authPassBytes(pass: string | undefined): Buffer {
  const b = Buffer.alloc(V2_AUTH_LEN);
  if (pass) Buffer.from(pass, 'utf8').copy(b, 0, 0, V2_AUTH_LEN);
  return b;
}

export interface EncodeOptions extends Pick<VrrpAdvert, 'version' | 'vrid' | 'priority' | 'addresses' | 'interval'> {
  /** v2 PASS authentication */
  authPass?: string;
  /** v3: the source and destination for the pseudo-header (IPv6 for IPv6 addresses) */
  src?: string;
  dst?: string;
}

/** Encode an advertisement (the VRRP part only, without the IP header). */
export function encodeAdvert(o: EncodeOptions): Buffer {
  const v2 = o.version === 2;
  const six = o.addresses.length > 0 && isV6(o.addresses[0]);
  if (six && v2) throw new TypeError('VRRPv2 carries IPv4 addresses only');
  const asz = six ? 16 : 4;
  const len = HDR_LEN + asz * o.addresses.length + (v2 ? V2_AUTH_LEN : 0);
  const b = Buffer.alloc(len);
  b[0] = (o.version << 4) | VRRP_TYPE_ADVERT;
  b[1] = o.vrid;
  b[2] = o.priority;
  b[3] = o.addresses.length;
  if (v2) {
    b[4] = o.authPass ? AUTH_PASS : AUTH_NONE;
    b[5] = o.interval;
  } else {
    b.writeUInt16BE(o.interval & 0x0fff, 4);
  }
  o.addresses.forEach((a, i) => {
    if (six !== isV6(a)) throw new TypeError(`address family of ${a} differs from ${o.addresses[0]}`);
    if (six) b.set(ipv6ToBytes(a), HDR_LEN + 16 * i);
    else ipv4Bytes(a).copy(b, HDR_LEN + 4 * i);
  });
  if (v2 && o.authPass) authPassBytes(o.authPass).copy(b, HDR_LEN + 4 * o.addresses.length);
  const sum = v2
    ? inetChecksum(b)
    : six
      ? inetChecksum(pseudoHeader6(o.src ?? '::', o.dst ?? VRRP6_MCAST_GROUP, len), b)
      : inetChecksum(pseudoHeader(o.src ?? '0.0.0.0', o.dst ?? VRRP_MCAST_GROUP, len), b);
  b.writeUInt16BE(sum, 6);
  return b;
}

/** A 20-byte IPv4 header for IP_HDRINCL (the kernel fills in the id and the header checksum when they are 0). */
export function ipv4Header(src: string, dst: string, payloadLen: number, ttl = 255): Buffer {
  const h = Buffer.alloc(20);
  h[0] = 0x45;
  h[1] = 0xc0; // DSCP CS6 "internetwork control", as keepalived sends
  h.writeUInt16BE(20 + payloadLen, 2);
  h[8] = ttl;
  h[9] = VRRP_PROTO;
  ipv4Bytes(src).copy(h, 12);
  ipv4Bytes(dst).copy(h, 16);
  h.writeUInt16BE(inetChecksum(h), 10);
  return h;
}

/** Parse an IPv4 packet (as a raw socket delivers it, header included) carrying VRRP; structural checks only. */
export function decodePacket(buf: Buffer): Decoded {
  if (buf.length < 20 || buf[0] >> 4 !== 4) return { ok: false, reason: 'ip_header' };
  const ihl = (buf[0] & 0x0f) * 4;
  if (ihl < 20 || buf.length < ihl) return { ok: false, reason: 'ip_header' };
  const total = buf.readUInt16BE(2);
  // raw sockets on Linux hand over the total length as sent; accept a trailer (padding) but not truncation
  const end = total >= ihl && total <= buf.length ? total : buf.length;
  if (buf[9] !== VRRP_PROTO) return { ok: false, reason: 'protocol' };
  const src = intToIpv4(buf.readUInt32BE(12));
  const dst = intToIpv4(buf.readUInt32BE(16));
  const r = decodeAdvert(buf.subarray(ihl, end), src, dst);
  if (!r.ok) return r;
  return { ok: true, packet: { src, dst, ttl: buf[8], advert: r.advert } };
}

/**
 * An IPv6 VRRP packet as an IPv6 raw socket delivers it: the payload only, the header fields (source, destination,
 * hop limit) from the ancillary data. Only VRRPv3 runs over IPv6.
 */
export function decodePacket6(payload: Buffer, src: string, dst: string, hopLimit: number): Decoded {
  if (payload.length >= 1 && payload[0] >> 4 !== 3) return { ok: false, reason: 'version' };
  const r = decodeAdvert(payload, src, dst);
  if (!r.ok) return r;
  return { ok: true, packet: { src, dst, ttl: hopLimit, advert: r.advert } };
}

/**
 * Decode the VRRP part; checks length, type, address count and checksum (the version decides the checksum). The
 * family of `src` decides the address size (IPv6: 16 bytes, v3 only).
 */
export function decodeAdvert(
  b: Buffer,
  src: string,
  dst: string,
): { ok: true; advert: VrrpAdvert } | { ok: false; reason: DropReason } {
  if (b.length < HDR_LEN) return { ok: false, reason: 'length' };
  const version = b[0] >> 4;
  if (version !== 2 && version !== 3) return { ok: false, reason: 'version' };
  const six = isV6(src);
  if (six && version !== 3) return { ok: false, reason: 'version' };
  if ((b[0] & 0x0f) !== VRRP_TYPE_ADVERT) return { ok: false, reason: 'type' };
  const count = b[3];
  const asz = six ? 16 : 4;
  const need = HDR_LEN + asz * count + (version === 2 ? V2_AUTH_LEN : 0);
  // v2 senders may leave the authentication data out when there is none; keepalived always sends it
  const minLen = version === 2 ? HDR_LEN + 4 * count : need;
  if (b.length < minLen) return { ok: false, reason: 'length' };
  // the checksum covers the whole VRRP message as the IP length delimits it
  const sum = version === 2 ? inetChecksum(b) : inetChecksum(pseudoHeader(src, dst, b.length), b);
  if (sum !== 0) return { ok: false, reason: 'checksum' };
  if (count === 0) return { ok: false, reason: 'addr_count' };
  const addresses: string[] = [];
  for (let i = 0; i < count; i++)
    addresses.push(
      six
        ? bytesToIpv6(b.subarray(HDR_LEN + 16 * i, HDR_LEN + 16 * i + 16))
        : intToIpv4(b.readUInt32BE(HDR_LEN + 4 * i)),
    );
  const authOff = HDR_LEN + 4 * count;
  return {
    ok: true,
    advert: {
      version,
      vrid: b[1],
      priority: b[2],
      addresses,
      interval: version === 2 ? b[5] : b.readUInt16BE(4) & 0x0fff,
      authType: version === 2 ? b[4] : AUTH_NONE,
      authData: version === 2 ? Buffer.from(b.subarray(authOff, authOff + V2_AUTH_LEN)) : Buffer.alloc(0),
    },
  };
}

export interface Expectation {
  version: VrrpVersion;
  vrid: number;
  /** v2: seconds; v3 is not checked (the backup adopts the master's interval) */
  interval: number;
  authPass?: string;
  /** the configured virtual addresses, for the count check */
  addressCount: number;
  /** our own addresses: a packet from one of them is our own looped back */
  ownAddresses: ReadonlySet<string>;
}

/**
 * RFC 3768 7.1 / RFC 5798 7.1 receive checks in keepalived's order. Returns undefined when the packet is for us.
 * Like keepalived, an address count other than ours is dropped (the addresses themselves are not compared).
 */
export function validate(p: VrrpPacket, e: Expectation): DropReason | undefined {
  if (e.ownAddresses.has(p.src)) return 'own';
  if (p.ttl !== 255) return 'ttl';
  const a = p.advert;
  if (a.version !== e.version) return 'version';
  if (a.vrid !== e.vrid) return 'vrid';
  if (a.version === 2) {
    const ourType = e.authPass ? AUTH_PASS : AUTH_NONE;
    if (a.authType !== ourType) return 'auth_type';
    if (ourType === AUTH_PASS && !a.authData.equals(authPassBytes(e.authPass))) return 'auth';
    if (a.interval !== e.interval) return 'interval';
  }
  if (a.addresses.length !== e.addressCount) return 'addr_count';
  return undefined;
}

/** Counters of dropped packets by reason. */
export class DropCounters {
  readonly byReason = new Map<DropReason, number>();
  add(r: DropReason): number {
    const n = (this.byReason.get(r) ?? 0) + 1;
    this.byReason.set(r, n);
    return n;
  }
  get(r: DropReason): number {
    return this.byReason.get(r) ?? 0;
  }
  toJSON(): Record<string, number> {
    return Object.fromEntries(this.byReason);
  }
}
