/** balance roundrobin (HAProxy lb_fwrr): weighted, dynamic weights, skips full servers. */
import { Swrr } from './swrr.js';
import { type Balancer, hasRoom, type LbServer } from './types.js';

export function roundrobin(): Balancer {
  const rr = new Swrr();
  return {
    name: 'roundrobin',
    pick(candidates: readonly LbServer[]) {
      return rr.next(candidates.filter(hasRoom));
    },
  };
}
