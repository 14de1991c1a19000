/**
 * Weighted least connection (ip_vs_wlc.c), the default scheduler: the smallest overhead / weight, compared by
 * cross-multiplication, scanning from the first usable dest; the earliest wins a tie.
 */
import type { RealServer } from '../dest.js';
import type { VirtualService } from '../service.js';
import type { Scheduler } from './types.js';
import { connOverhead, weightedLeast } from './util.js';

export class WeightedLeastConnection implements Scheduler {
  readonly name = 'wlc';

  update(): void {}

  schedule(svc: VirtualService): RealServer | null {
    return weightedLeast(svc.dests, connOverhead);
  }
}
