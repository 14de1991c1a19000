/**
 * balance random / random(N) (HAProxy lb_chash random): N weighted random draws, the one with the fewest
 * connections wins ("power of N choices"; random(2) is power of two choices, HAProxy's default draws is 2).
 * random(1) is plain weighted random.
 */
import { type Balancer, type BalancerContext, hasRoom, type LbServer } from './types.js';

function draw(servers: readonly LbServer[], total: number, r: number): LbServer {
  let x = r * total;
  for (const s of servers) {
    x -= s.weight;
    if (x < 0) return s;
  }
  return servers[servers.length - 1]!;
}

export function random(draws: number, ctx: BalancerContext): Balancer {
  return {
    name: `random(${draws})`,
    pick(candidates: readonly LbServer[]) {
      const room = candidates.filter(hasRoom);
      if (room.length === 0) return null;
      const total = room.reduce((a, s) => a + s.weight, 0);
      let best: LbServer | null = null;
      for (let i = 0; i < Math.max(1, draws); i++) {
        const s = draw(room, total, ctx.random());
        if (!best || s.conns * best.weight < best.conns * s.weight) best = s;
      }
      return best;
    },
  };
}
