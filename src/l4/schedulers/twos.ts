/**
 * Power of two choices (ip_vs_twos.c): two weighted random picks among the usable dests, keep the one with the
 * lower overhead / weight (the first pick unless the second is strictly lower).
 *
 * The kernel draws prandom_u32() % (total_weight + 1) for each pick, so a draw of 0 and a draw of 1..w1 both land on
 * the first dest (it gets w1 + 1 of the total_weight + 1 outcomes). We draw the u32 as floor(random() * 2^32) from
 * the injected ctx.random.
 */
import type { RealServer } from '../dest.js';
import type { VirtualService } from '../service.js';
import type { Scheduler, SchedulerContext } from './types.js';

export class TwoChoices implements Scheduler {
  readonly name = 'twos';

  constructor(private readonly ctx: SchedulerContext) {}

  update(): void {}

  schedule(svc: VirtualService): RealServer | null {
    let total = 0;
    for (const d of svc.dests) if (!d.overloaded && d.weight > 0) total += d.weight;
    if (total === 0) return null;
    total += 1;
    let r1 = this.u32() % total;
    let r2 = this.u32() % total;
    let choice1: RealServer | null = null;
    let choice2: RealServer | null = null;
    for (const d of svc.dests) {
      if (d.overloaded || d.weight <= 0) continue;
      r1 -= d.weight;
      r2 -= d.weight;
      if (r1 <= 0 && !choice1) choice1 = d;
      if (r2 <= 0 && !choice2) choice2 = d;
      if (choice1 && choice2) break;
    }
    // both are always found: each draw is at most the sum of the weights
    const c1 = choice1 as RealServer;
    const c2 = choice2 as RealServer;
    return c2.weight * c1.overhead > c1.weight * c2.overhead ? c2 : c1;
  }

  private u32(): number {
    return Math.floor(this.ctx.random() * 0x100000000) >>> 0;
  }
}
