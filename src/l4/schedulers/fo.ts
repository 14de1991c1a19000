/** Weighted fail over (ip_vs_fo.c): the usable dest with the highest weight; the first in list order wins a tie. */
import type { RealServer } from '../dest.js';
import type { VirtualService } from '../service.js';
import type { Scheduler } from './types.js';

export class FailOver implements Scheduler {
  readonly name = 'fo';

  update(): void {}

  schedule(svc: VirtualService): RealServer | null {
    let best: RealServer | null = null;
    let hw = 0;
    for (const d of svc.dests) {
      if (!d.overloaded && d.weight > hw) {
        best = d;
        hw = d.weight;
      }
    }
    return best;
  }
}
