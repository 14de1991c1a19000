/**
 * Round robin (ip_vs_rr.c): walk the destination list from the last pick, skipping overloaded servers and servers of
 * weight 0. The cursor starts at the list head, so the first pick is the first usable dest in list order (the newest).
 */
import type { RealServer } from '../dest.js';
import type { VirtualService } from '../service.js';
import type { Scheduler } from './types.js';

export class RoundRobin implements Scheduler {
  readonly name = 'rr';
  /**
   * the list position of the last pick (sched_data); -1 = the list head. It indexes `order`, the list as of the last
   * update(): the list only changes through ServiceTable, which calls update(), so it also indexes svc.dests.
   */
  private pos = -1;
  private order: RealServer[];

  constructor(svc: VirtualService) {
    this.order = [...svc.dests];
  }

  update(svc: VirtualService): void {
    // the cursor follows its dest to its new position; ip_vs_rr_del_dest: if the cursor's dest was deleted, step back
    // to the entry before it (maybe the head), so the next pick continues with the deleted dest's successor
    let pos = -1;
    for (let i = this.pos; i >= 0 && pos < 0; i--) pos = svc.dests.indexOf(this.order[i]);
    this.pos = pos;
    this.order = [...svc.dests];
  }

  schedule(svc: VirtualService): RealServer | null {
    const n = svc.dests.length;
    if (n === 0) return null;
    // from the entry after the cursor to the end, then from the first entry up to and including the cursor
    for (let i = 1; i <= n; i++) {
      const at = (this.pos + i + n) % n;
      const d = svc.dests[at];
      if (!d.overloaded && d.weight > 0) {
        this.pos = at;
        return d;
      }
    }
    return null;
  }
}
