/** balance source (HAProxy lb_map + source hash): the client address picks the server, so a client sticks to one. */
import { HashMap } from './hash.js';
import { roundrobin } from './roundrobin.js';
import type { Balancer, LbServer, PickRequest } from './types.js';

export function source(): Balancer {
  const map = new HashMap();
  const fallback = roundrobin();
  return {
    name: 'source',
    pick(candidates: readonly LbServer[], req: PickRequest) {
      if (!req.src) return fallback.pick(candidates, req);
      return map.lookup(candidates, req.src);
    },
  };
}
