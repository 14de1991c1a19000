/**
 * balance leastconn (HAProxy lb_fwlc): the server with the fewest connections relative to its weight
 * (conns / weight), connections counted over the whole cluster. Ties rotate round-robin so equal servers share.
 */
import { type Balancer, type Cell, hasRoom, type LbServer, localCell } from './types.js';

/** `tie` holds the id ties last went to (-1 at first); the workers share one so ties rotate over the node. */
export function leastconn(tie: Cell = localCell(-1)): Balancer {
  return {
    name: 'leastconn',
    pick(candidates: readonly LbServer[]) {
      let best: LbServer[] = [];
      for (const s of candidates) {
        if (!hasRoom(s)) continue;
        if (best.length === 0) {
          best = [s];
          continue;
        }
        const b = best[0]!;
        // s.conns / s.weight vs b.conns / b.weight, without division
        const cmp = s.conns * b.weight - b.conns * s.weight;
        if (cmp < 0) best = [s];
        else if (cmp === 0) best.push(s);
      }
      if (best.length === 0) return null;
      const last = tie.get();
      const next = best.find((s) => s.id > last) ?? best[0]!;
      tie.set(next.id);
      return next;
    },
  };
}
