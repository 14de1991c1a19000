/**
 * Weighted round robin (ip_vs_wrr.c). State: cl (the last pick, or the list head), cw (current weight), mw (max
 * weight - (di - 1)) and di (gcd of the positive weights). Each pass over the list picks the dests with
 * weight >= cw; cw drops by di after each pass and wraps to mw. Every change to the list or a weight resets cl to
 * the head and adjusts cw the way ip_vs_wrr_dest_changed does (cw is kept, not restarted, so a service built by
 * adding dests one by one starts with cw = 1 - the kernel's first round is one pick per dest in list order).
 */
import type { RealServer } from '../dest.js';
import type { VirtualService } from '../service.js';
import type { Scheduler } from './types.js';
import { gcd } from './util.js';

export class WeightedRoundRobin implements Scheduler {
  readonly name = 'wrr';
  /** cl, the current dest, as its list position (no search per pick); -1 = the list head. update() resets it. */
  private cl = -1;
  private cw = 0;
  private mw = 0;
  private di = 1;

  /** ip_vs_wrr_init_svc: cw starts at mw, which update() does for cw = 0 */
  constructor(svc: VirtualService) {
    this.update(svc);
  }

  /** ip_vs_wrr_dest_changed (add_dest, del_dest, upd_dest) */
  update(svc: VirtualService): void {
    this.cl = -1;
    this.di = gcdWeight(svc);
    this.mw = maxWeight(svc) - (this.di - 1);
    if (this.cw > this.mw || this.cw === 0) this.cw = this.mw;
    else if (this.di > 1) this.cw = Math.trunc(this.cw / this.di) * this.di + 1;
  }

  schedule(svc: VirtualService): RealServer | null {
    const dests = svc.dests;
    const n = dests.length;
    let pos = this.cl;
    if (this.mw === 0) return null;
    const last = pos;
    let stop = -2;
    let lastPass = false;
    let restarted = false;
    for (;;) {
      for (pos++; pos < n; pos++) {
        const d = dests[pos];
        if (!d.overloaded && d.weight >= this.cw) {
          this.cl = pos;
          return d;
        }
        if (pos === stop) {
          this.cl = pos;
          return null;
        }
      }
      pos = -1;
      this.cw -= this.di;
      if (this.cw <= 0) {
        this.cw = this.mw;
        // a whole pass down to weight 1 already covered every dest: all are overloaded (or weight 0)
        if (lastPass || last === -1) {
          this.cl = -1;
          return null;
        }
        restarted = true;
      }
      lastPass = this.cw <= this.di;
      // the first weight-1 pass only covered the dests after `last`; finish with the ones up to it
      if (lastPass && restarted && last !== -1) stop = last;
    }
  }
}

function gcdWeight(svc: VirtualService): number {
  let g = 0;
  for (const d of svc.dests) if (d.weight > 0) g = g > 0 ? gcd(d.weight, g) : d.weight;
  return g || 1;
}

function maxWeight(svc: VirtualService): number {
  let w = 0;
  for (const d of svc.dests) if (d.weight > w) w = d.weight;
  return w;
}
