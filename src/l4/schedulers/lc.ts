/**
 * Least connection (ip_vs_lc.c): the usable dest (not overloaded, weight > 0) with the smallest
 * (activeconns << 8) + inactconns; the first in list order wins a tie. Weights only decide usable or not.
 */
import type { RealServer } from '../dest.js';
import type { VirtualService } from '../service.js';
import type { Scheduler } from './types.js';
import { connOverhead, leastBy } from './util.js';

export class LeastConnection implements Scheduler {
  readonly name = 'lc';

  update(): void {}

  schedule(svc: VirtualService): RealServer | null {
    return leastBy(svc.dests, connOverhead, (loh, _least, doh) => doh < loh);
  }
}
