/**
 * Round robin (ip_vs_rr.c): walk the destination list from the last pick, skipping overloaded servers and servers of
 * weight 0.
 */
import type { RealServer } from '../dest.js';
import type { VirtualService } from '../service.js';
import type { Scheduler } from './types.js';

export class RoundRobin implements Scheduler {
  readonly name = 'rr';
  /** the last picked destination (sched_data: the list position) */
  private last: RealServer | null = null;

  update(svc: VirtualService): void {
    // ip_vs_rr_del_dest: if the deleted dest was the cursor, step back to the previous one
    if (this.last && !svc.dests.includes(this.last)) this.last = null;
  }

  schedule(svc: VirtualService): RealServer | null {
    const n = svc.dests.length;
    if (n === 0) return null;
    const start = this.last ? svc.dests.indexOf(this.last) : -1;
    for (let i = 1; i <= n; i++) {
      const d = svc.dests[(start + i + n) % n];
      if (!d.overloaded && d.weight > 0) {
        this.last = d;
        return d;
      }
    }
    return null;
  }
}
