/**
 * Smooth weighted round-robin (the sequence nginx uses): every pick adds each server's weight to its running score,
 * takes the highest and subtracts the total from it. Equal weights rotate strictly in id order; weights 5,1,1 give
 * a a b a c a a (spread out, not bunched). Weights may change between picks (slowstart, agent %): the rotation
 * adapts at once, which is what HAProxy's dynamic roundrobin (lb_fwrr) gives too.
 */
import type { LbServer } from './types.js';

export class Swrr {
  private readonly score = new Map<number, number>();

  /** Pick among `servers` (all eligible); null when empty. */
  next(servers: readonly LbServer[]): LbServer | null {
    if (servers.length === 0) return null;
    let total = 0;
    let best: LbServer | null = null;
    let bestScore = -Infinity;
    for (const s of servers) {
      const v = (this.score.get(s.id) ?? 0) + s.weight;
      this.score.set(s.id, v);
      total += s.weight;
      if (v > bestScore) {
        bestScore = v;
        best = s;
      }
    }
    this.score.set(best!.id, bestScore - total);
    if (this.score.size > servers.length * 2) this.prune(servers);
    return best;
  }

  private prune(servers: readonly LbServer[]): void {
    const keep = new Set(servers.map((s) => s.id));
    for (const id of this.score.keys()) if (!keep.has(id)) this.score.delete(id);
  }
}

/** One full weighted cycle (length = sum of weights) in smooth order: the map static-rr and the hashes index. */
export function weightedMap(servers: readonly LbServer[]): LbServer[] {
  const w = new Swrr();
  const total = servers.reduce((a, s) => a + s.weight, 0);
  const out: LbServer[] = [];
  for (let i = 0; i < total; i++) out.push(w.next(servers)!);
  return out;
}
