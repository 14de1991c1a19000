/** balance uri: the request path (before '?') picks the server, so a path sticks to one (cache affinity). */
import { HashMap } from './hash.js';
import { roundrobin } from './roundrobin.js';
import type { Balancer, LbServer, PickRequest } from './types.js';

export function uri(): Balancer {
  const map = new HashMap();
  const fallback = roundrobin();
  return {
    name: 'uri',
    pick(candidates: readonly LbServer[], req: PickRequest) {
      if (req.uri === undefined) return fallback.pick(candidates, req);
      const q = req.uri.indexOf('?');
      return map.lookup(candidates, q < 0 ? req.uri : req.uri.slice(0, q));
    },
  };
}
