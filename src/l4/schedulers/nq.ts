/**
 * Never queue (ip_vs_nq.c): scanning the usable dests in list order, the first one with no active connection is
 * returned at once; otherwise sed's choice ((activeconns + 1) / weight by cross-multiplication, earliest wins a tie).
 */
import type { RealServer } from '../dest.js';
import type { VirtualService } from '../service.js';
import { expectedDelayOverhead } from './sed.js';
import type { Scheduler } from './types.js';

export class NeverQueue implements Scheduler {
  readonly name = 'nq';

  update(): void {}

  schedule(svc: VirtualService): RealServer | null {
    let least: RealServer | null = null;
    let loh = 0;
    for (const d of svc.dests) {
      if (d.overloaded || d.weight === 0) continue;
      // an idle server is taken as soon as the scan meets it
      if (d.activeConns === 0) return d;
      const doh = expectedDelayOverhead(d);
      if (!least || loh * d.weight > doh * least.weight) {
        least = d;
        loh = doh;
      }
    }
    return least;
  }
}
