/**
 * Maglev hashing (ip_vs_mh.c; Eisenbud et al., NSDI '16, section 3.4). Each dest gets a permutation of the lookup
 * table positions, offset = hsiphash(addr+port, hash1) % M and skip = hsiphash(addr+port, hash2) % (M - 1) + 1;
 * the dests, in list order, take turns claiming their next free preferred position, `turns` claims per round, until
 * the M = 4093 entries are filled. turns = (last_weight / gcd) >> rshift (at least 1 for a positive last_weight),
 * where rshift keeps the largest weight / gcd within IP_VS_MH_TAB_BITS = 6 bits (ip_vs_mh_shift_weight).
 *
 * The table is built from last_weight, the latest non-zero weight: setting a dest's weight to 0 quiesces it (its
 * entries stay, lookups that land on it find it unavailable) without moving any other key. A dest added with weight
 * 0 has last_weight 0 and takes no entries.
 *
 * Lookup: entry hsiphash(ntohl(fold(saddr)) + ntohs(sport), hash1) % M, with sport only under mh-port
 * (SVC_F_SCHED2). With mh-fallback (SVC_F_SCHED1) an unavailable entry is retried with the hash of
 * (roffset + port + addr) for roffset = (i + ihash) % M, i = 0..M-1.
 *
 * The hash keys are the kernel's fixed constants (generate_hash_secret: hash1 = {2654435761, 2654435761},
 * hash2 = {2654446892, 2654446892}), not random, and hsiphash is the 64-bit kernel's SipHash-1-3 on the u32 as a
 * little-endian host stores it; so on x86/arm64 this table and these lookups are the kernel's own.
 */
import type { RealServer } from '../dest.js';
import { SVC_F_SCHED1, SVC_F_SCHED2, type VirtualService } from '../service.js';
import { hsiphashU32, type SipKey, sipKey } from './siphash.js';
import type { SchedPacket, Scheduler } from './types.js';
import { foldAddr, gcd, isUnavailable, schedPort } from './util.js';

/** Available prime table sizes; CONFIG_IP_VS_MH_TAB_INDEX (default 12) selects primes[index - 8]. */
export const MH_PRIMES = [251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071] as const;
export const MH_TAB_INDEX_CONFIG = 12;
export const MH_TAB_BITS = MH_TAB_INDEX_CONFIG / 2;
export const MH_TAB_SIZE: number = MH_PRIMES[MH_TAB_INDEX_CONFIG - 8];

const HASH1: SipKey = sipKey(2654435761, 2654435761);
const HASH2: SipKey = sipKey(2654446892, 2654446892);

interface DestSetup {
  offset: number;
  skip: number;
  perm: number;
  turns: number;
}

export class MaglevHashing implements Scheduler {
  readonly name = 'mh';
  /** the lookup table; exposed read-only for diagnostics and tests */
  readonly lookup: (RealServer | null)[] = new Array(MH_TAB_SIZE).fill(null);
  private gcd = 0;
  private rshift = 0;

  constructor(svc: VirtualService) {
    this.update(svc);
  }

  /** ip_vs_mh_dest_changed: recompute gcd and shift, then ip_vs_mh_reassign */
  update(svc: VirtualService): void {
    this.gcd = gcdLastWeight(svc);
    this.rshift = shiftWeight(svc, this.gcd);
    // the kernel refuses (-EINVAL) and keeps the old table
    if (svc.dests.length > MH_TAB_SIZE) return;
    if (this.gcd < 1) {
      this.lookup.fill(null);
      return;
    }
    this.populate(svc, this.permutate(svc));
  }

  schedule(svc: VirtualService, pkt: SchedPacket): RealServer | null {
    const port = svc.flags & SVC_F_SCHED2 ? schedPort(pkt) : 0;
    const key = (port + foldAddr(pkt.saddr, pkt.family, svc.family)) >>> 0;
    const ihash = hsiphashU32(HASH1, key) % MH_TAB_SIZE;
    let d = this.lookup[ihash];
    if (!d) return null;
    if (!isUnavailable(d)) return d;
    if (!(svc.flags & SVC_F_SCHED1)) return null;
    for (let offset = 0; offset < MH_TAB_SIZE; offset++) {
      const roffset = (offset + ihash) % MH_TAB_SIZE;
      d = this.lookup[hsiphashU32(HASH1, (roffset + key) >>> 0) % MH_TAB_SIZE];
      if (!d) break;
      if (!isUnavailable(d)) return d;
    }
    return null;
  }

  /** ip_vs_mh_permutate */
  private permutate(svc: VirtualService): DestSetup[] {
    return svc.dests.map((d) => {
      const key = (d.port + foldAddr(d.addr, d.family, svc.family)) >>> 0;
      const offset = hsiphashU32(HASH1, key) % MH_TAB_SIZE;
      const skip = (hsiphashU32(HASH2, key) % (MH_TAB_SIZE - 1)) + 1;
      const lw = d.lastWeight;
      const turns = Math.trunc(lw / this.gcd) >> this.rshift || (lw !== 0 ? 1 : 0);
      return { offset, skip, perm: offset, turns };
    });
  }

  /** ip_vs_mh_populate */
  private populate(svc: VirtualService, setup: DestSetup[]): void {
    const taken = new Uint8Array(MH_TAB_SIZE);
    let n = 0;
    let dtCount = 0;
    for (;;) {
      for (let i = 0; i < setup.length; ) {
        const ds = setup[i];
        // a dest added with weight 0 takes no entry
        if (ds.turns < 1) {
          i++;
          continue;
        }
        let c = ds.perm;
        while (taken[c]) {
          ds.perm += ds.skip;
          if (ds.perm >= MH_TAB_SIZE) ds.perm -= MH_TAB_SIZE;
          c = ds.perm;
        }
        taken[c] = 1;
        this.lookup[c] = svc.dests[i];
        if (++n === MH_TAB_SIZE) return;
        if (++dtCount >= ds.turns) {
          dtCount = 0;
          i++;
        }
      }
    }
  }
}

/** ip_vs_mh_gcd_weight: gcd of the positive last weights, 0 when there is none */
function gcdLastWeight(svc: VirtualService): number {
  let g = 0;
  for (const d of svc.dests) if (d.lastWeight > 0) g = g > 0 ? gcd(d.lastWeight, g) : d.lastWeight;
  return g;
}

/** ip_vs_mh_shift_weight: fls(max last_weight / gcd) - MH_TAB_BITS, at least 0 */
function shiftWeight(svc: VirtualService, g: number): number {
  if (g < 1) return 0;
  let w = 0;
  for (const d of svc.dests) if (d.lastWeight > w) w = d.lastWeight;
  const mw = Math.trunc(w / g);
  const fls = mw === 0 ? 0 : 32 - Math.clz32(mw);
  return Math.max(0, fls - MH_TAB_BITS);
}
