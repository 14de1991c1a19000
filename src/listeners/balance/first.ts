/**
 * balance first (HAProxy lb_ffirst): the first server in id order that still has a free connection slot; the next
 * one only takes traffic once the first is at maxconn. Without maxconn the first server takes everything.
 */
import { type Balancer, hasRoom, type LbServer } from './types.js';

export function first(): Balancer {
  return {
    name: 'first',
    pick(candidates: readonly LbServer[]) {
      for (const s of candidates) if (hasRoom(s)) return s;
      return null;
    },
  };
}
