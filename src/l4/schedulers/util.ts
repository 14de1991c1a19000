/**
 * Pieces several kernel schedulers share: the hash of include/linux/hash.h, the address fold, the port that sh/mh
 * hash, the weighted least-connection scan (wlc, sed, lblc, lblcr) and the lblc/lblcr overload test.
 */
import { addrFold, type Family, ipv4ToInt, ipv6ToBytes } from '../../common/addr.js';
import type { RealServer } from '../dest.js';
import type { VirtualService } from '../service.js';
import type { SchedPacket } from './types.js';

/** include/linux/hash.h */
export const GOLDEN_RATIO_32 = 0x61c88647;

/** hash_32(val, bits): the top `bits` bits of val * GOLDEN_RATIO_32 (u32 arithmetic). */
export function hash32(val: number, bits: number): number {
  return Math.imul(val >>> 0, GOLDEN_RATIO_32) >>> (32 - bits);
}

/**
 * ntohl(addr_fold) of a union nf_inet_addr read as `svcFamily`: the IPv4 word (ip) for an IPv4 service, the XOR of
 * the four words for an IPv6 service. Differs from addrFold only for a mixed-family (tunnel) real server, where the
 * kernel folds the dest address with the service's family.
 */
export function foldAddr(addr: string, addrFamily: Family, svcFamily: Family): number {
  if (addrFamily === 4) return ipv4ToInt(addr);
  if (svcFamily === 6) return addrFold(addr, 6);
  const b = ipv6ToBytes(addr);
  return ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0;
}

/** ip_vs_sh_get_port / ip_vs_mh_get_port: the source port for TCP, UDP and SCTP, otherwise 0. */
export function schedPort(pkt: SchedPacket): number {
  return pkt.protocol === 6 || pkt.protocol === 17 || pkt.protocol === 132 ? pkt.sport : 0;
}

export function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

/** dest->weight <= 0 or IP_VS_DEST_F_OVERLOAD (sh/mh is_unavailable). */
export function isUnavailable(d: RealServer): boolean {
  return d.weight <= 0 || d.overloaded;
}

/** ip_vs_dest_conn_overhead: (activeconns << 8) + inactconns. */
export const connOverhead = (d: RealServer): number => d.overhead;

/**
 * The kernel's weighted least-connection scan (ip_vs_wlc_schedule, __ip_vs_lblc_schedule, __ip_vs_lblcr_schedule,
 * ip_vs_sed_schedule, ip_vs_dest_set_min): the first dest that is not overloaded and has weight > 0 is the candidate;
 * every later dest that is not overloaded replaces it when loh * dest.weight > doh * least.weight (strictly, so the
 * earliest of equal loads wins). Later dests are not tested for weight 0: with weight 0 the left side is 0 and can
 * never win. Unavailable (deleted) dests are skipped: a service's list never holds one, an lblcr set may.
 */
export function weightedLeast(dests: readonly RealServer[], overhead: (d: RealServer) => number): RealServer | null {
  let i = 0;
  let least: RealServer | null = null;
  for (; i < dests.length; i++) {
    const d = dests[i];
    if (!d.overloaded && d.weight > 0 && d.available) {
      least = d;
      break;
    }
  }
  if (!least) return null;
  let loh = overhead(least);
  for (i++; i < dests.length; i++) {
    const d = dests[i];
    if (d.overloaded || !d.available) continue;
    const doh = overhead(d);
    if (loh * d.weight > doh * least.weight) {
      least = d;
      loh = doh;
    }
  }
  return least;
}

/**
 * lblc/lblcr is_overloaded(): the dest has more active connections than its weight and some dest of the service
 * has fewer than half its weight (activeconns * 2 < weight).
 */
export function localityOverloaded(dest: RealServer, svc: VirtualService): boolean {
  if (dest.activeConns <= dest.weight) return false;
  return svc.dests.some((d) => d.activeConns * 2 < d.weight);
}
