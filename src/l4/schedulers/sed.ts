/**
 * Shortest expected delay (ip_vs_sed.c): like wlc but the cost is (activeconns + 1) / weight - inactive
 * connections do not count, and the +1 is the connection being scheduled.
 */
import type { RealServer } from '../dest.js';
import type { VirtualService } from '../service.js';
import type { Scheduler } from './types.js';
import { weightedLeast } from './util.js';

/** ip_vs_sed_dest_overhead / ip_vs_nq_dest_overhead */
export const expectedDelayOverhead = (d: RealServer): number => d.activeConns + 1;

export class ShortestExpectedDelay implements Scheduler {
  readonly name = 'sed';

  update(): void {}

  schedule(svc: VirtualService): RealServer | null {
    return weightedLeast(svc.dests, expectedDelayOverhead);
  }
}
