/**
 * The packet parser as it was before the preallocated one (src/l4/datapath/packet.ts at 31d9726, one object per
 * packet and per header): the oracle the new parser is compared with on a corpus of packets.
 */
import { bytesToIpv6 } from '../src/common/addr.js';
import {
  type BadReason,
  IPPROTO_ICMP,
  IPPROTO_ICMPV6,
  IPPROTO_SCTP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  type Parsed,
  type ParseResult,
} from '../src/l4/datapath/packet.js';

function ipv4Str(b: Uint8Array, off: number): string {
  return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
}

function ipv6Str(b: Uint8Array, off: number): string {
  return bytesToIpv6(b.subarray(off, off + 16));
}

const be16 = (b: Uint8Array, off: number) => (b[off] << 8) | b[off + 1];

/** ICMPv4 types that carry an embedded packet (dest unreachable, source quench, redirect, time exceeded, param). */
const ICMP4_ERRORS = new Set([3, 4, 5, 11, 12]);
/** ICMPv6 errors are types < 128. */
const isIcmp6Error = (t: number) => t < 128;

interface L3 {
  family: 4 | 6;
  protocol: number;
  saddr: string;
  daddr: string;
  l4off: number;
  totalLen: number;
}

/**
 * Parse the IP header. `embedded` relaxes the length checks for the packet inside an ICMP error (which is cut short).
 */
function parseL3(b: Uint8Array, off: number, end: number, embedded: boolean): L3 | BadReason {
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
    return {
      family: 4,
      protocol: b[off + 9],
      saddr: ipv4Str(b, off + 12),
      daddr: ipv4Str(b, off + 16),
      l4off: off + ihl,
      totalLen: tot,
    };
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
    return {
      family: 6,
      protocol: next,
      saddr: ipv6Str(b, off + 8),
      daddr: ipv6Str(b, off + 24),
      l4off: p,
      totalLen: 40 + plen,
    };
  }
  return 'bad-version';
}

function withPorts(
  b: Uint8Array,
  l3: L3,
  end: number,
  fwmark: number,
  embedded: boolean,
): { ok: true; pkt: Parsed } | { ok: false; reason: BadReason } {
  const l4len = end - l3.l4off;
  let sport = 0;
  let dport = 0;
  let tcpFlags = 0;
  switch (l3.protocol) {
    case IPPROTO_TCP:
      if (embedded) {
        if (l4len < 8) return { ok: false, reason: 'icmp-bad-inner' };
      } else {
        if (l4len < 20) return { ok: false, reason: 'bad-l4-header' };
        const doff = (b[l3.l4off + 12] >> 4) * 4;
        if (doff < 20 || doff > l4len) return { ok: false, reason: 'bad-l4-header' };
        tcpFlags = b[l3.l4off + 13];
      }
      sport = be16(b, l3.l4off);
      dport = be16(b, l3.l4off + 2);
      break;
    case IPPROTO_UDP:
    case IPPROTO_SCTP:
      if (l4len < 8) return { ok: false, reason: embedded ? 'icmp-bad-inner' : 'bad-l4-header' };
      sport = be16(b, l3.l4off);
      dport = be16(b, l3.l4off + 2);
      if (l3.protocol === IPPROTO_UDP && !embedded) {
        const ulen = be16(b, l3.l4off + 4);
        if (ulen < 8 || ulen > l4len) return { ok: false, reason: 'bad-l4-header' };
      }
      break;
    default:
      break;
  }
  return {
    ok: true,
    pkt: {
      family: l3.family,
      protocol: l3.protocol,
      saddr: l3.saddr,
      sport,
      daddr: l3.daddr,
      dport,
      fwmark,
      tcpFlags,
      length: l3.totalLen,
      l4off: l3.l4off,
      totalLen: l3.totalLen,
    },
  };
}

/** Parse a packet as delivered by NFQUEUE (starting at the IP header). */
export function referenceParse(b: Uint8Array, fwmark = 0): ParseResult {
  const l3 = parseL3(b, 0, b.length, false);
  if (typeof l3 === 'string') return { ok: false, reason: l3 };
  const end = l3.totalLen;
  const icmpProto = l3.family === 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6;
  if (l3.protocol === icmpProto) {
    if (end - l3.l4off < 8) return { ok: false, reason: 'bad-l4-header' };
    const type = b[l3.l4off];
    const isErr = l3.family === 4 ? ICMP4_ERRORS.has(type) : isIcmp6Error(type);
    const outer: Parsed = {
      family: l3.family,
      protocol: l3.protocol,
      saddr: l3.saddr,
      sport: 0,
      daddr: l3.daddr,
      dport: 0,
      fwmark,
      tcpFlags: 0,
      length: l3.totalLen,
      l4off: l3.l4off,
      totalLen: l3.totalLen,
    };
    if (!isErr) return { ok: false, reason: 'icmp-not-error', partial: outer };
    const innerOff = l3.l4off + 8;
    const il3 = parseL3(b, innerOff, end, true);
    if (typeof il3 === 'string' || il3.family !== l3.family)
      return { ok: false, reason: 'icmp-bad-inner', partial: outer };
    const inner = withPorts(b, il3, end, fwmark, true);
    if (!inner.ok) return { ok: false, reason: inner.reason, partial: outer };
    if (![IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP].includes(il3.protocol))
      return { ok: false, reason: 'icmp-bad-inner', partial: outer };
    return { ok: true, icmp: { outer, inner: inner.pkt, icmpOff: l3.l4off, innerOff } };
  }
  if (l3.protocol !== IPPROTO_TCP && l3.protocol !== IPPROTO_UDP && l3.protocol !== IPPROTO_SCTP) {
    const r = withPorts(b, l3, end, fwmark, false);
    return { ok: false, reason: 'unknown-protocol', partial: r.ok ? r.pkt : undefined };
  }
  return withPorts(b, l3, end, fwmark, false);
}
