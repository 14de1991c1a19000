/**
 * Destination hashing (ip_vs_dh.c): a 256-bucket table filled round-robin with the dests in list order (one bucket
 * per dest per round; weights do not shape the table), indexed by hash_32(ntohl(fold(daddr)), 8). The hashed dest
 * is used only if it is available, has weight > 0 and is not overloaded; otherwise there is no destination.
 */
import type { RealServer } from '../dest.js';
import type { VirtualService } from '../service.js';
import type { SchedPacket, Scheduler } from './types.js';
import { foldAddr, hash32 } from './util.js';

export const DH_TAB_BITS = 8;
export const DH_TAB_SIZE = 1 << DH_TAB_BITS;

export class DestinationHashing implements Scheduler {
  readonly name = 'dh';
  /** the bucket table; exposed read-only for diagnostics and tests */
  readonly buckets: (RealServer | null)[] = new Array(DH_TAB_SIZE).fill(null);

  constructor(svc: VirtualService) {
    this.update(svc);
  }

  /** ip_vs_dh_reassign */
  update(svc: VirtualService): void {
    const n = svc.dests.length;
    for (let i = 0; i < DH_TAB_SIZE; i++) this.buckets[i] = n === 0 ? null : svc.dests[i % n];
  }

  schedule(svc: VirtualService, pkt: SchedPacket): RealServer | null {
    const d = this.buckets[dhBucket(pkt.daddr, pkt.family, svc.family)];
    if (!d?.available || d.weight <= 0 || d.overloaded) return null;
    return d;
  }
}

/** ip_vs_dh_hashkey */
export function dhBucket(addr: string, family: 4 | 6, svcFamily: 4 | 6): number {
  return hash32(foldAddr(addr, family, svcFamily), DH_TAB_BITS);
}
