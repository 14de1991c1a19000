/**
 * Never queue (ip_vs_nq.c): the first usable dest with no active connection, else sed's choice
 * ((activeconns + 1) / weight, earliest wins a tie). The kernel returns an idle dest as soon as its scan meets it,
 * which is the first idle usable dest in list order.
 */
import type { RealServer } from '../dest.js';
import type { VirtualService } from '../service.js';
import { expectedDelayOverhead } from './sed.js';
import type { Scheduler } from './types.js';
import { leastBy } from './util.js';

export class NeverQueue implements Scheduler {
  readonly name = 'nq';

  update(): void {}

  schedule(svc: VirtualService): RealServer | null {
    const idle = svc.dests.find((d) => !d.overloaded && d.weight !== 0 && d.activeConns === 0);
    if (idle) return idle;
    return leastBy(svc.dests, expectedDelayOverhead, (loh, least, doh, d) => loh * d.weight > doh * least.weight);
  }
}
