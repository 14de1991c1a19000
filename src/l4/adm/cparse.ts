/**
 * The C library parsing that ipvsadm's options go through, reproduced so the same strings are accepted and rejected:
 * strtol (string_to_number, parse_fwmark), atoi (IPv6 -M), inet_aton (IPv4 addresses and -M masks, which takes
 * "10.1", "0x0a000001" and octal parts), inet_pton for IPv6, and getservbyname for port names. Host names are not
 * resolved (no DNS in a pure module): a name that is not an address is refused as ipvsadm refuses an unknown host.
 */
import { isIPv6 } from 'node:net';
import { canonicalAddr, intToIpv4 } from '../../common/addr.js';

const C_SPACE = /^[ \t\n\v\f\r]*/;

/** strtol(s, &end, 10) accepted only when the whole string is the number (ipvsadm's string_to_number). */
export function strtolWhole(s: string): number | null {
  const m = /^[ \t\n\v\f\r]*([+-]?)([0-9]+)$/.exec(s);
  if (!m) return null;
  const v = Number(m[2]);
  // LONG_MAX on 64-bit: anything beyond is ERANGE; the callers' ranges are far smaller anyway
  if (!Number.isSafeInteger(v)) return null;
  return m[1] === '-' ? -v : v;
}

/** string_to_number(s, min, max): the number, or -1. */
export function stringToNumber(s: string, min: number, max: number): number {
  const v = strtolWhole(s);
  return v !== null && min <= v && v <= max ? v : -1;
}

/** atoi: leading blanks, optional sign, digits up to the first non-digit; 0 when there are none. */
export function atoi(s: string): number {
  const m = /^([+-]?)([0-9]*)/.exec(s.replace(C_SPACE, ''));
  if (!m || m[2] === '') return 0;
  const v = Number(m[2]) | 0;
  return m[1] === '-' ? -v : v;
}

/** glibc inet_aton: 1 to 4 parts (decimal, 0x hex or 0 octal), the last part filling the remaining bytes. */
export function inetAton(s: string): number | null {
  const parts: number[] = [];
  let i = 0;
  let val = 0;
  for (;;) {
    if (!/[0-9]/.test(s[i] ?? '')) return null;
    let base = 10;
    val = 0;
    if (s[i] === '0') {
      i++;
      if (s[i] === 'x' || s[i] === 'X') {
        base = 16;
        i++;
      } else base = 8;
    }
    for (;;) {
      const c = s[i] ?? '';
      if (/[0-9]/.test(c)) {
        if (base === 8 && (c === '8' || c === '9')) return null;
        val = val * base + Number(c);
      } else if (base === 16 && /[0-9a-fA-F]/.test(c)) {
        val = val * 16 + parseInt(c, 16);
      } else break;
      if (val > 0xffffffff) return null;
      i++;
    }
    if (s[i] === '.') {
      if (parts.length >= 3 || val > 0xff) return null;
      parts.push(val);
      i++;
    } else break;
  }
  const c = s[i];
  if (c !== undefined && !/[ \t\n\v\f\r]/.test(c)) return null;
  const maxLast = [0xffffffff, 0xffffff, 0xffff, 0xff][parts.length];
  if (val > maxLast) return null;
  let n = val;
  for (let k = 0; k < parts.length; k++) n += parts[k] * 2 ** (24 - 8 * k);
  return n >>> 0;
}

/** inet_pton(AF_INET6, ...): the canonical address, or null. */
export function inetPton6(s: string): string | null {
  if (s.includes('%') || !isIPv6(s)) return null;
  return canonicalAddr(s);
}

/** The /etc/services names ipvsadm users commonly write after the colon (getservbyname). */
const SERVICES: Record<string, { port: number; protos: readonly number[] }> = {
  ftp: { port: 21, protos: [6, 132] },
  ssh: { port: 22, protos: [6, 132] },
  telnet: { port: 23, protos: [6] },
  smtp: { port: 25, protos: [6] },
  domain: { port: 53, protos: [6, 17] },
  http: { port: 80, protos: [6, 17, 132] },
  www: { port: 80, protos: [6] },
  pop3: { port: 110, protos: [6] },
  ntp: { port: 123, protos: [17] },
  imap: { port: 143, protos: [6] },
  snmp: { port: 161, protos: [17] },
  ldap: { port: 389, protos: [6, 17] },
  https: { port: 443, protos: [6, 17, 132] },
  submission: { port: 587, protos: [6] },
  ldaps: { port: 636, protos: [6, 17] },
  imaps: { port: 993, protos: [6] },
  pop3s: { port: 995, protos: [6] },
  mysql: { port: 3306, protos: [6] },
  postgresql: { port: 5432, protos: [6] },
};

/** service_to_port: the port of a service name for tcp (6), udp (17) or sctp (132), or -1. */
export function serviceToPort(name: string, proto: number): number {
  const s = Object.hasOwn(SERVICES, name) ? SERVICES[name] : undefined;
  return s?.protos.includes(proto) ? s.port : -1;
}

export const SERVICE_NONE = 0;
export const SERVICE_ADDR = 1;
export const SERVICE_PORT = 2;

/** The address part of ipvsadm's ipvs_service_t that parse_service fills in. */
export interface AddrFields {
  af: 0 | 4 | 6;
  protocol: number;
  addr: string;
  port: number;
  netmask: number;
}

/**
 * parse_service: `host[:port]` or `[v6]:port` or a bare IPv6 address into `svc` (which it changes in place, setting
 * the IPv6 default netmask 128 as ipvsadm does). Returns SERVICE_ADDR | SERVICE_PORT bits, SERVICE_NONE on error.
 */
export function parseService(input: string, svc: AddrFields): number {
  let buf = input;
  let port: string | null = null;
  if (/^[0-9]*$/.test(buf)) return SERVICE_NONE; // str_is_digit (true for "")
  if (buf[0] === '[') {
    const close = buf.indexOf(']');
    if (close < 0) return SERVICE_NONE;
    if (buf[close + 1] !== ':') return SERVICE_NONE;
    port = buf.slice(close + 2);
    buf = buf.slice(1, close);
  }
  const v6 = inetPton6(buf);
  if (v6 !== null) {
    svc.addr = v6;
    svc.af = 6;
    svc.netmask = 128;
  } else {
    // strrchr(buf, ':') replaces whatever the bracket form found: "[1.2.3.4]:80" ends up without a port
    const colon = buf.lastIndexOf(':');
    port = colon >= 0 ? buf.slice(colon + 1) : null;
    if (colon >= 0) buf = buf.slice(0, colon);
    const v4 = inetAton(buf);
    if (v4 === null) return SERVICE_NONE;
    svc.addr = intToIpv4(v4);
    svc.af = 4;
  }
  let result = SERVICE_ADDR;
  if (port !== null) {
    result |= SERVICE_PORT;
    let p = stringToNumber(port, 0, 65535);
    if (p === -1) p = serviceToPort(port, svc.protocol);
    if (p === -1) return SERVICE_NONE;
    svc.port = p;
  }
  return result;
}
