/**
 * Overflow connection (ip_vs_ovf.c): the highest-weight dest whose active connections do not exceed its weight
 * (activeconns <= weight; a dest at exactly its weight still qualifies), skipping overloaded and weight-0 dests;
 * the first in list order wins a tie.
 */
import type { RealServer } from '../dest.js';
import type { VirtualService } from '../service.js';
import type { Scheduler } from './types.js';

export class Overflow implements Scheduler {
  readonly name = 'ovf';

  update(): void {}

  schedule(svc: VirtualService): RealServer | null {
    let h: RealServer | null = null;
    let hw = 0;
    for (const d of svc.dests) {
      const w = d.weight;
      if (d.overloaded || d.activeConns > w || w === 0) continue;
      if (!h || w > hw) {
        h = d;
        hw = w;
      }
    }
    return h;
  }
}
