/**
 * Locality-based least connection with replication (ip_vs_lblcr.c): each destination address maps to a set of
 * real servers. The least loaded usable member of the set (weighted, available, not overloaded) serves; if there is
 * none, or it is "overloaded" in lblc's sense, wlc picks a server from the whole service and it joins the set. When
 * the set has more than one member and has not changed for `expiration` (24 h), its most loaded member is dropped.
 * Whole entries expire after 24 h unused (see locality.ts).
 */
import type { RealServer } from '../dest.js';
import type { VirtualService } from '../service.js';
import { type LocalityEntry, LocalityScheduler } from './locality.js';
import type { SchedPacket } from './types.js';
import { connOverhead, localityOverloaded, weightedLeast } from './util.js';

/** struct ip_vs_dest_set: members newest first (list_add_rcu), and the time of the last change */
export interface DestSet {
  members: RealServer[];
  lastmod: number;
}

interface LblcrEntry extends LocalityEntry {
  set: DestSet;
}

export class LocalityLeastConnectionReplicated extends LocalityScheduler<LblcrEntry> {
  readonly name = 'lblcr';

  schedule(svc: VirtualService, pkt: SchedPacket): RealServer | null {
    const now = this.ctx.clock.now();
    const en = this.table.get(pkt.daddr);
    if (!en) {
      const dest = weightedLeast(svc.dests, connOverhead);
      if (!dest) return null;
      this.table.set({ addr: pkt.daddr, lastuse: now, set: { members: [dest], lastmod: now } });
      return dest;
    }
    en.lastuse = now;
    const set = en.set;
    let dest = weightedLeast(set.members, connOverhead); // ip_vs_dest_set_min
    // more than one member and unchanged for long enough: drop the most loaded one
    if (set.members.length > 1 && now > set.lastmod + this.table.expiration) {
      const m = setMax(set);
      if (m) {
        set.members.splice(set.members.indexOf(m), 1);
        set.lastmod = now;
      }
    }
    if (dest && !localityOverloaded(dest, svc)) return dest;
    dest = weightedLeast(svc.dests, connOverhead);
    if (!dest) return null;
    if (!set.members.includes(dest)) {
      set.members.unshift(dest);
      set.lastmod = now;
    }
    return dest;
  }
}

/** ip_vs_dest_set_max: weighted most-connection among the members with weight > 0 (overload not considered) */
function setMax(set: DestSet): RealServer | null {
  const m = set.members;
  let i = 0;
  let most: RealServer | null = null;
  for (; i < m.length; i++) {
    if (m[i].weight > 0) {
      most = m[i];
      break;
    }
  }
  if (!most) return null;
  let moh = most.overhead;
  for (i++; i < m.length; i++) {
    const d = m[i];
    const doh = d.overhead;
    if (moh * d.weight < doh * most.weight && d.weight > 0) {
      most = d;
      moh = doh;
    }
  }
  return most;
}
