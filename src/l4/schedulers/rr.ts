/**
 * Round robin (ip_vs_rr.c): walk the destination list from the last pick, skipping overloaded servers and servers of
 * weight 0. The cursor starts at the list head, so the first pick is the first usable dest in list order (the newest).
 */
import type { RealServer } from '../dest.js';
import type { VirtualService } from '../service.js';
import type { Scheduler } from './types.js';

export class RoundRobin implements Scheduler {
  readonly name = 'rr';
  /** the last picked destination (sched_data: the list position); null = the list head */
  private last: RealServer | null = null;
  /** the list as of the last update, to find the cursor's predecessor when the cursor's dest is deleted */
  private order: RealServer[];

  constructor(svc: VirtualService) {
    this.order = [...svc.dests];
  }

  update(svc: VirtualService): void {
    // ip_vs_rr_del_dest: if the deleted dest was the cursor, step back to the entry before it (maybe the head), so
    // the next pick continues with the deleted dest's successor
    if (this.last && !svc.dests.includes(this.last)) {
      let i = this.order.indexOf(this.last) - 1;
      while (i >= 0 && !svc.dests.includes(this.order[i])) i--;
      this.last = i >= 0 ? this.order[i] : null;
    }
    this.order = [...svc.dests];
  }

  schedule(svc: VirtualService): RealServer | null {
    const n = svc.dests.length;
    if (n === 0) return null;
    // from the entry after the cursor to the end, then from the first entry up to and including the cursor
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
