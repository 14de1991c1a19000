/**
 * balance static-rr (HAProxy lb_map): a precomputed weighted map walked in order. Weights are read when the map is
 * (re)built, i.e. when the set of candidates or their weights change; a full server is skipped in the walk.
 */
import { weightedMap } from './swrr.js';
import { type Balancer, hasRoom, type LbServer } from './types.js';

export function staticRr(): Balancer {
  let key = '';
  let map: LbServer[] = [];
  let pos = 0;
  return {
    name: 'static-rr',
    pick(candidates: readonly LbServer[]) {
      const k = candidates.map((s) => `${s.id}:${s.weight}`).join(',');
      if (k !== key) {
        key = k;
        map = weightedMap(candidates);
        pos = 0;
      }
      const byId = new Map(candidates.map((s) => [s.id, s]));
      for (let i = 0; i < map.length; i++) {
        const s = byId.get(map[pos]!.id)!;
        pos = (pos + 1) % map.length;
        if (hasRoom(s)) return s;
      }
      return null;
    },
  };
}
