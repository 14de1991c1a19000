/**
 * IP address helpers shared by the engine, schedulers and formatters.
 * Addresses travel through the engine as canonical strings (inet_ntop form), so they can be map keys;
 * the schedulers that hash addresses fold them to a 32-bit word exactly as the kernel does.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { TierlbError } from './errors.js';

export type Family = 4 | 6;

/** A string that is not an IPv4 or IPv6 address where one is required. */
export class AddressError extends TierlbError {
  override readonly code = 'EADDR_INVALID';
  constructor(message: string) {
    super('EADDR_INVALID', message);
    this.name = 'AddressError';
  }
}

export function familyOf(addr: string): Family | 0 {
  if (isIPv4(addr)) return 4;
  if (isIPv6(addr)) return 6;
  return 0;
}

/** IN_MULTICAST: an IPv4 address in 224.0.0.0/4 (false for anything that is not an IPv4 address). */
export function isMulticast4(addr: string): boolean {
  return isIPv4(addr) && ipv4ToInt(addr) >>> 28 === 0xe;
}

/** Parse an IPv4 dotted quad to an unsigned 32-bit number (host order). */
export function ipv4ToInt(addr: string): number {
  const p = addr.split('.');
  return ((+p[0] << 24) | (+p[1] << 16) | (+p[2] << 8) | +p[3]) >>> 0;
}

export function intToIpv4(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** Parse an IPv6 address (any valid textual form, incl. embedded IPv4) into 16 bytes. */
export function ipv6ToBytes(addr: string): Uint8Array {
  const out = new Uint8Array(16);
  let s = addr;
  const pct = s.indexOf('%');
  if (pct >= 0) s = s.slice(0, pct);
  let tail4: number[] | null = null;
  const lastColon = s.lastIndexOf(':');
  if (s.indexOf('.', lastColon) > 0) {
    const v4 = s.slice(lastColon + 1);
    const n = ipv4ToInt(v4);
    tail4 = [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
    s = `${s.slice(0, lastColon + 1)}0:0`;
  }
  const [head, rest] = s.split('::');
  const h = head ? head.split(':') : [];
  const t = rest !== undefined && rest !== '' ? rest.split(':') : [];
  const groups: number[] = [];
  for (const g of h) groups.push(parseInt(g, 16));
  if (rest !== undefined) for (let i = 0; i < 8 - h.length - t.length; i++) groups.push(0);
  for (const g of t) groups.push(parseInt(g, 16));
  for (let i = 0; i < 8; i++) {
    out[i * 2] = (groups[i] >> 8) & 255;
    out[i * 2 + 1] = groups[i] & 255;
  }
  if (tail4) out.set(tail4, 12);
  return out;
}

/** Format 16 bytes as glibc inet_ntop does (longest run of >= 2 zero groups compressed, v4-mapped dotted). */
export function bytesToIpv6(b: Uint8Array): string {
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((b[i * 2] << 8) | b[i * 2 + 1]);
  let bestBase = -1;
  let bestLen = 0;
  let curBase = -1;
  let curLen = 0;
  for (let i = 0; i < 8; i++) {
    if (g[i] === 0) {
      if (curBase === -1) {
        curBase = i;
        curLen = 1;
      } else curLen++;
      if (curLen > bestLen) {
        bestBase = curBase;
        bestLen = curLen;
      }
    } else curBase = -1;
  }
  if (bestLen < 2) bestBase = -1;
  let out = '';
  for (let i = 0; i < 8; i++) {
    if (bestBase !== -1 && i >= bestBase && i < bestBase + bestLen) {
      if (i === bestBase) out += ':';
      continue;
    }
    if (i !== 0) out += ':';
    // embedded IPv4: ::a.b.c.d (compat) or ::ffff:a.b.c.d (mapped)
    if (i === 6 && bestBase === 0 && (bestLen === 6 || (bestLen === 5 && g[5] === 0xffff))) {
      out += `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
      break;
    }
    out += g[i].toString(16);
  }
  if (bestBase !== -1 && bestBase + bestLen === 8) out += ':';
  return out;
}

/** Canonical form of an address string; throws on an invalid address. */
export function canonicalAddr(addr: string): string {
  if (isIPv4(addr)) return intToIpv4(ipv4ToInt(addr));
  if (isIPv6(addr)) return bytesToIpv6(ipv6ToBytes(addr));
  throw new AddressError(`invalid address: ${addr}`);
}

/**
 * The kernel's address fold for hashing schedulers (sh, dh, lblc, lblcr, mh): the IPv4 address, or the XOR of the
 * four 32-bit words of an IPv6 address, as a host-order unsigned 32-bit number (ntohl(addr_fold)).
 */
export function addrFold(addr: string, family: Family): number {
  if (family === 4) return ipv4ToInt(addr);
  const b = ipv6ToBytes(addr);
  let x = 0;
  for (let i = 0; i < 16; i += 4) x ^= (b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3];
  return x >>> 0;
}

/** Apply a persistence netmask: IPv4 dotted mask, IPv6 prefix length. Returns the canonical masked address. */
export function maskAddr(addr: string, family: Family, mask: string | number): string {
  if (family === 4) {
    const m = typeof mask === 'number' ? prefixToMask4(mask) : ipv4ToInt(mask);
    return intToIpv4((ipv4ToInt(addr) & m) >>> 0);
  }
  const plen = typeof mask === 'number' ? mask : Number(mask);
  const b = ipv6ToBytes(addr);
  for (let i = 0; i < 16; i++) {
    const bits = Math.max(0, Math.min(8, plen - i * 8));
    b[i] &= (0xff << (8 - bits)) & 0xff;
  }
  return bytesToIpv6(b);
}

export function prefixToMask4(plen: number): number {
  return plen === 0 ? 0 : (0xffffffff << (32 - plen)) >>> 0;
}

/** `ip:port` for IPv4, `[ip]:port` for IPv6, as ipvsadm prints them (port may be a word such as '*'). */
export function hostPort(addr: string, port: number | string, family: Family): string {
  return family === 6 ? `[${addr}]:${port}` : `${addr}:${port}`;
}
