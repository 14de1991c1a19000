/**
 * Least connection (ip_vs_lc.c): the usable dest (not overloaded, weight > 0) with the smallest
 * (activeconns << 8) + inactconns; the first in list order wins a tie. Weights only decide usable or not.
 */
import type { RealServer } from '../dest.js';
import type { VirtualService } from '../service.js';
import type { Scheduler } from './types.js';

export class LeastConnection implements Scheduler {
  readonly name = 'lc';

  update(): void {}

  schedule(svc: VirtualService): RealServer | null {
    let least: RealServer | null = null;
    let loh = 0;
    for (const d of svc.dests) {
      if (d.overloaded || d.weight === 0) continue;
      const doh = d.overhead;
      if (!least || doh < loh) {
        least = d;
        loh = doh;
      }
    }
    return least;
  }
}
