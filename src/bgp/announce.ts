/**
 * The director's announce rule (pure): which VIPs this director announces over BGP right now.
 *
 * A VIP is announced only while this director can serve it:
 * - the data path is up (the NFQUEUE worker runs and the director is not stopping: a stop, a quorum loss and SIGTERM
 *   all withdraw, SIGTERM before the data path drains);
 * - the quorum of its services is met — keepalived's semantics: a health-checked service's state is the checker's
 *   `quorumUp` (src/ha/checks/state.ts: live weight sum ≥ quorum + hysteresis to come up, < quorum − hysteresis to go
 *   down, so a flapping server does not flap the route); a service without checks counts every configured real
 *   server as alive (keepalived's default), so it has quorum while its configured weights sum to at least 1.
 *   With `require: all` (default) every service on the VIP must have quorum (a VIP announced here must serve all of
 *   its ports); with `any`, one is enough.
 * A VIP the bgp section lists that no service uses is not announced (nothing would answer on it). At start, a
 * checked service counts only once each of its real servers has been probed (keepalived assumes them alive until a
 * check fails; announcing on that assumption would announce, then withdraw a VIP whose servers are down).
 */

export interface ServiceInput {
  /** `tcp 10.99.0.1:80`, for the reasons */
  name: string;
  /** the VIPs the service answers on: a VIP service's address, a fwmark service's `match:` VIPs */
  vips: readonly string[];
  /** health-checked: the checker's quorum state; absent: not checked */
  quorumUp?: boolean;
  /** the configured real servers' weight sum (used when not checked) */
  weightSum: number;
  /**
   * health-checked and not every real server has been probed once yet: the checker's state is its start assumption
   * (keepalived counts servers alive until a check fails), so the VIP waits for the first results
   */
  firstChecksPending?: boolean;
}

export interface AnnounceInput {
  datapathUp: boolean;
  stopping: boolean;
  services: readonly ServiceInput[];
  /** the VIPs to consider (the bgp section's list); absent: every VIP of the services */
  vips?: readonly string[];
  require: 'all' | 'any';
}

export interface AnnounceDecision {
  vip: string;
  announce: boolean;
  /** why (for the log and the status) */
  reason: string;
}

/** A service's quorum as the announce rule sees it. */
export function serviceHasQuorum(s: ServiceInput): boolean {
  return s.quorumUp ?? s.weightSum >= 1;
}

/** One decision per VIP, in the order of `vips` (or of first appearance in the services). */
export function announceDecisions(input: AnnounceInput): AnnounceDecision[] {
  const byVip = new Map<string, ServiceInput[]>();
  for (const s of input.services)
    for (const v of s.vips) {
      const l = byVip.get(v) ?? [];
      l.push(s);
      byVip.set(v, l);
    }
  const vips = input.vips ?? [...byVip.keys()];
  return vips.map((vip) => {
    const no = (reason: string): AnnounceDecision => ({ vip, announce: false, reason });
    if (input.stopping) return no('director stopping');
    if (!input.datapathUp) return no('data path down');
    const svcs = byVip.get(vip) ?? [];
    if (svcs.length === 0) return no('no service uses this VIP');
    const pending = svcs.filter((s) => s.firstChecksPending);
    if (pending.length) return no(`waiting for the first checks: ${pending.map((s) => s.name).join(', ')}`);
    const lost = svcs.filter((s) => !serviceHasQuorum(s));
    if (input.require === 'all' && lost.length) return no(`quorum lost: ${lost.map((s) => s.name).join(', ')}`);
    if (input.require === 'any' && lost.length === svcs.length)
      return no(`quorum lost on every service: ${lost.map((s) => s.name).join(', ')}`);
    return {
      vip,
      announce: true,
      reason: lost.length ? `quorum met on ${svcs.length - lost.length}/${svcs.length}` : 'quorum met',
    };
  });
}

/** Restart delay of the routing daemon after its `attempt`-th consecutive failure (1-based): 0.5 s doubling to 30 s. */
export function restartDelayMs(attempt: number): number {
  return Math.min(30_000, 500 * 2 ** Math.max(0, attempt - 1));
}
