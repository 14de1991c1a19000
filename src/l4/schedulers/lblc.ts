/**
 * Locality-based least connection (ip_vs_lblc.c): the packet's destination address is remembered with the real
 * server it was sent to. The cached server is used again while it is available, has weight > 0 and is not
 * "overloaded" in lblc's sense (more active connections than its weight while some server of the service has fewer
 * than half its weight); otherwise wlc picks a server and the entry is replaced. Note the cached server's
 * IP_VS_DEST_F_OVERLOAD flag is not checked, as in the kernel. Entries expire after 24 h unused (see locality.ts).
 */
import type { RealServer } from '../dest.js';
import type { VirtualService } from '../service.js';
import { type LocalityEntry, LocalityScheduler } from './locality.js';
import type { SchedPacket } from './types.js';
import { connOverhead, localityOverloaded, weightedLeast } from './util.js';

interface LblcEntry extends LocalityEntry {
  dest: RealServer;
}

export class LocalityLeastConnection extends LocalityScheduler<LblcEntry> {
  readonly name = 'lblc';

  schedule(svc: VirtualService, pkt: SchedPacket): RealServer | null {
    const now = this.ctx.clock.now();
    const en = this.table.get(pkt.daddr);
    if (en) {
      en.lastuse = now;
      const d = en.dest;
      if (d.available && d.weight > 0 && !localityOverloaded(d, svc)) return d;
    }
    const dest = weightedLeast(svc.dests, connOverhead);
    if (!dest) return null;
    // ip_vs_lblc_new: keep an entry that already points at this dest, else replace it
    if (!en || en.dest !== dest) this.table.set({ addr: pkt.daddr, dest, lastuse: now });
    return dest;
  }
}
