/**
 * Source hashing (ip_vs_sh.c): a 256-bucket table where, walking the list in order, each dest takes `weight`
 * consecutive buckets (a weight-0 dest still takes one), cycling until the table is full; indexed by
 * hash_32(ntohs(sport) + ntohl(fold(saddr)), 8), with sport only under sh-port (SVC_F_SCHED2) and 0 otherwise.
 * An unavailable hashed dest (weight 0 or overloaded) gives no destination, unless sh-fallback (SVC_F_SCHED1):
 * then the kernel retries bucket (offset + hash) for roffset = (i + ihash) % 256, i = 0..255 (so the first retry is
 * bucket 2 * ihash, a quirk we keep) and takes the first available dest.
 */
import type { RealServer } from '../dest.js';
import { SVC_F_SCHED1, SVC_F_SCHED2, type VirtualService } from '../service.js';
import type { SchedPacket, Scheduler } from './types.js';
import { foldAddr, hash32, isUnavailable, schedPort } from './util.js';

export const SH_TAB_BITS = 8;
export const SH_TAB_SIZE = 1 << SH_TAB_BITS;
const SH_TAB_MASK = SH_TAB_SIZE - 1;

export class SourceHashing implements Scheduler {
  readonly name = 'sh';
  /** the bucket table; exposed read-only for diagnostics and tests */
  readonly buckets: (RealServer | null)[] = new Array(SH_TAB_SIZE).fill(null);

  constructor(svc: VirtualService) {
    this.update(svc);
  }

  /** ip_vs_sh_reassign */
  update(svc: VirtualService): void {
    const dests = svc.dests;
    let p = 0;
    let count = 0;
    for (let i = 0; i < SH_TAB_SIZE; i++) {
      if (dests.length === 0) {
        this.buckets[i] = null;
        continue;
      }
      if (p === dests.length) p = 0;
      const d = dests[p];
      this.buckets[i] = d;
      // don't move to the next dest until it has `weight` buckets
      if (++count >= d.weight) {
        p++;
        count = 0;
      }
    }
  }

  schedule(svc: VirtualService, pkt: SchedPacket): RealServer | null {
    const port = svc.flags & SVC_F_SCHED2 ? schedPort(pkt) : 0;
    const key = (port + foldAddr(pkt.saddr, pkt.family, svc.family)) >>> 0;
    const ihash = shHash(key, 0);
    let d = this.buckets[ihash];
    if (!d) return null;
    if (!isUnavailable(d)) return d;
    if (!(svc.flags & SVC_F_SCHED1)) return null;
    for (let offset = 0; offset < SH_TAB_SIZE; offset++) {
      d = this.buckets[shHash(key, (offset + ihash) % SH_TAB_SIZE)];
      if (!d) break;
      if (!isUnavailable(d)) return d;
    }
    return null;
  }
}

/** ip_vs_sh_hashkey with key = ntohs(port) + ntohl(addr_fold) */
export function shHash(key: number, offset: number): number {
  return (offset + hash32(key, SH_TAB_BITS)) & SH_TAB_MASK;
}
