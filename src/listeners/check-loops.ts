/**
 * The primary's health-check and agent-check loops: one prober per server (however many workers), the first checks
 * spread over one interval as HAProxy does. A server in maintenance is out of the checks (they resume when it
 * leaves it); a state change goes to the primary, which publishes it to every worker.
 */
import type { Clock } from '../common/clock.js';
import { applyResult, runAgent, runCheck } from './checks.js';
import type { Pool, ServerState } from './pool.js';

export class CheckLoops {
  private stops: (() => void)[] = [];

  constructor(
    private readonly clockOf: () => Clock,
    private readonly changed: (pool: Pool, s: ServerState, why: string) => void,
  ) {}

  private get clock(): Clock {
    return this.clockOf();
  }

  /** (Re)start the loops of these backends' servers. */
  start(pools: readonly Pool[]): void {
    this.stop();
    for (const pool of pools) {
      for (const s of pool.servers) {
        if (s.spec.check && pool.spec.check) this.checkLoop(pool, s);
        if (s.spec.agent) this.agentLoop(pool, s);
      }
    }
  }

  stop(): void {
    for (const stop of this.stops) stop();
    this.stops = [];
  }

  private loop(every: number, fn: () => Promise<void>): void {
    let stopped = false;
    let timer: NodeJS.Timeout | undefined;
    const next = (delay: number) => {
      timer = setTimeout(async () => {
        if (stopped) return;
        const t0 = Date.now();
        await fn();
        if (!stopped) next(Math.max(0, every - (Date.now() - t0)));
      }, delay);
    };
    // spread the first checks over one interval, as HAProxy does
    next(Math.floor(Math.random() * Math.min(every, 1000)));
    this.stops.push(() => {
      stopped = true;
      if (timer) clearTimeout(timer);
    });
  }

  private checkLoop(pool: Pool, s: ServerState): void {
    const spec = pool.spec.check!;
    this.loop(spec.inter, async () => {
      // in maintenance a server is out of the checks (HAProxy): they resume when it leaves it
      if (s.maint) return;
      const r = await runCheck(
        s.spec.host,
        s.spec.port,
        spec,
        Math.min(pool.spec.timeout.check, spec.inter),
        s.spec.ssl,
      );
      if (s.maint) return;
      s.lastCheck = this.clock.now();
      const change = applyResult(s, r, spec, this.clock.now());
      if (change) this.changed(pool, s, `${r.status} ${r.desc}`);
    });
  }

  private agentLoop(pool: Pool, s: ServerState): void {
    const a = s.spec.agent!;
    this.loop(a.inter, async () => {
      const r = await runAgent(a.host, a.port, a.send, Math.min(pool.spec.timeout.check, a.inter));
      if (!r) return; // an unreachable agent changes nothing (HAProxy)
      const before = `${s.status}/${s.weightAt(this.clock.now())}`;
      if (r.admin) s.admin = r.admin;
      if (r.weightPct !== undefined) s.agentPct = r.weightPct;
      if (r.oper === 'down' && s.healthy) {
        s.healthy = false;
        s.chkdown++;
        s.lastchg = this.clock.now();
      } else if (r.oper === 'up' && !s.healthy) {
        s.healthy = true;
        s.upSince = this.clock.now();
        s.lastchg = this.clock.now();
      }
      if (`${s.status}/${s.weightAt(this.clock.now())}` !== before)
        this.changed(pool, s, `agent: ${r.admin ?? ''} ${r.oper ?? ''} ${r.weightPct ?? ''}% ${r.desc ?? ''}`.trim());
    });
  }
}
