/** `balance` expression → algorithm. The expressions are those of HAProxy (see BALANCE_RE in ../config-schema.ts). */
import { BALANCE_RE } from '../config-schema.js';
import { ListenersError } from '../errors.js';
import { first } from './first.js';
import { hdr } from './hdr.js';
import { leastconn } from './leastconn.js';
import { random } from './random.js';
import { roundrobin } from './roundrobin.js';
import { source } from './source.js';
import { staticRr } from './static-rr.js';
import type { Balancer, BalancerContext } from './types.js';
import { uri } from './uri.js';

export type { Balancer, BalancerContext, Cell, LbServer, PickRequest } from './types.js';
export { hasRoom, localCell } from './types.js';

/** Does the algorithm hash a request key (and so may return a full server to wait for)? */
export function isHashing(expr: string): boolean {
  return expr === 'source' || expr === 'uri' || expr.startsWith('hdr(');
}

export function createBalancer(expr: string, ctx: BalancerContext = { random: Math.random }): Balancer {
  const m = BALANCE_RE.exec(expr);
  if (!m)
    throw new ListenersError(
      'EBALANCE_UNKNOWN',
      `unknown balance '${expr}': use one of those in BALANCE_RE (config-schema.ts)`,
    );
  if (expr === 'roundrobin') return roundrobin();
  if (expr === 'static-rr') return staticRr();
  if (expr === 'leastconn') return leastconn(ctx.tie);
  if (expr === 'first') return first();
  if (expr === 'source') return source();
  if (expr === 'uri') return uri();
  if (expr.startsWith('random')) return random(m[2] ? Number(m[2]) : 2, ctx);
  return hdr(m[3]!);
}
