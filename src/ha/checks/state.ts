/**
 * The health-check state logic of keepalived's checker (check_tcp.c tcp_epilog, check_http.c epilog,
 * check_misc.c misc_check_child_thread, ipwrapper.c update_svr_checker_state / perform_svr_state /
 * update_quorum_state / init_service_rs, ipvswrapper.c ipvs_cmd's inhibit rules). Pure: no I/O, no timers. A checker
 * is fed probe outcomes and answers when it wants to run next; the virtual server turns checker transitions into
 * the table changes (add / edit weight / delete) keepalived would make, plus events for logs and notify scripts.
 */

import { MAX_WEIGHT } from '../../l4/dest.js';

/** Which keepalived epilog a checker follows (they differ in when a failure is retried). */
export type CheckerKind = 'tcp' | 'http' | 'misc';

export interface CheckerTiming {
  kind: CheckerKind;
  /** delay_loop (ms) */
  delayLoopMs: number;
  /** retry (nb_get_retry): further attempts after a failure before the checker reports down */
  retry: number;
  /** delay_before_retry (ms) */
  delayBeforeRetryMs: number;
  /** misc_dynamic: the script's exit code sets the weight */
  dynamic?: boolean;
}

/** A probe's outcome. `exitCode` is the MISC_CHECK script's exit status (undefined when it was killed). */
export interface CheckOutcome {
  ok: boolean;
  exitCode?: number;
  reason?: string;
}

export type HealthAction =
  | { op: 'add'; addr: string; port: number; weight: number; sorry: boolean }
  | { op: 'edit'; addr: string; port: number; weight: number; sorry: boolean }
  | { op: 'del'; addr: string; port: number; sorry: boolean };

export type HealthEvent =
  | { type: 'rs-up' | 'rs-down'; addr: string; port: number; inhibit: boolean }
  | { type: 'quorum-up' | 'quorum-down'; weightSum: number; threshold: number; init: boolean }
  | { type: 'sorry-add' | 'sorry-del'; addr: string; port: number; inhibit: boolean }
  | { type: 'weight'; addr: string; port: number; from: number; to: number };

/** IPVS weights are 0..MAX_WEIGHT (real_weight). */
export function realWeight(w: number): number {
  return Math.max(0, Math.min(w, MAX_WEIGHT));
}

/** One checker of one real server: its up/down view, retry counter and misc_dynamic weight. */
export class CheckerState {
  isUp: boolean;
  hasRun = false;
  retryIt = 0;
  /** misc_dynamic: this checker's contribution to the server's effective weight (keepalived cur_weight) */
  curWeight = 0;
  /** misc: the last exit status acted upon */
  lastExitCode = 0;

  constructor(
    readonly timing: CheckerTiming,
    alpha: boolean,
  ) {
    this.isUp = !alpha;
  }
}

/** What the caller must do after a checker ran: wait `delayMs` before running it again. */
export interface EpilogResult {
  delayMs: number;
  actions: HealthAction[];
  events: HealthEvent[];
}

export interface RealServerHealthSpec {
  addr: string;
  port: number;
  /** configured weight (keepalived iweight) */
  weight: number;
  inhibitOnFailure: boolean;
  checkers: CheckerTiming[];
}

export interface SorrySpec {
  addr: string;
  port: number;
  /** default 1 */
  weight?: number;
  inhibit: boolean;
}

export interface VirtualServerHealthSpec {
  /** minimum sum of live weights (default 1) */
  quorum: number;
  hysteresis: number;
  /** servers start down until their checks succeed */
  alpha: boolean;
  sorry?: SorrySpec;
  realServers: RealServerHealthSpec[];
}

export class RealServerState {
  readonly addr: string;
  readonly port: number;
  readonly iweight: number;
  readonly inhibit: boolean;
  readonly checkers: CheckerState[];
  /** in the pool as far as the checks are concerned (keepalived rs->alive) */
  alive = false;
  /** present in the service table (keepalived rs->set) */
  set = false;
  numFailed = 0;
  effectiveWeight: number;

  constructor(spec: RealServerHealthSpec, alpha: boolean) {
    this.addr = spec.addr;
    this.port = spec.port;
    this.iweight = spec.weight;
    this.inhibit = spec.inhibitOnFailure;
    this.effectiveWeight = spec.weight;
    this.checkers = spec.checkers.map((t) => new CheckerState(t, alpha));
    this.numFailed = this.checkers.filter((c) => !c.isUp).length;
  }
}

interface SorryState {
  addr: string;
  port: number;
  weight: number;
  inhibit: boolean;
  alive: boolean;
  set: boolean;
}

/**
 * One virtual server's health: its real servers, their checkers, quorum and the sorry server. Each method returns
 * the table changes to apply, in order.
 */
export class VirtualServerState {
  readonly quorum: number;
  readonly hysteresis: number;
  readonly realServers: RealServerState[];
  /** keepalived vs->quorum_state_up */
  quorumUp: boolean;
  private readonly sorry?: SorryState;
  private actions: HealthAction[] = [];
  private events: HealthEvent[] = [];

  constructor(spec: VirtualServerHealthSpec) {
    this.quorum = spec.quorum;
    this.hysteresis = spec.hysteresis;
    this.realServers = spec.realServers.map((r) => new RealServerState(r, spec.alpha));
    if (spec.sorry) this.sorry = { ...spec.sorry, weight: spec.sorry.weight ?? 1, alive: false, set: false };
    // set_quorum_states: nothing is alive before the services are initialised
    this.quorumUp = this.weighLive() >= this.quorum + this.hysteresis;
  }

  get sorryAlive(): boolean {
    return this.sorry?.alive ?? false;
  }

  /** Sum of the live servers' weights (weigh_live_realservers). */
  weighLive(): number {
    let n = 0;
    for (const rs of this.realServers) if (rs.alive) n += realWeight(rs.effectiveWeight);
    return n;
  }

  /**
   * init_service_rs + update_quorum_state(init) + the inhibited sorry server: what goes into the table at start.
   * `present` tells which servers are already in the table (they count as set; those the checks keep out are removed).
   */
  init(present: (addr: string, port: number) => boolean = () => false): {
    actions: HealthAction[];
    events: HealthEvent[];
  } {
    for (const rs of this.realServers) {
      rs.set = present(rs.addr, rs.port);
      if ((rs.numFailed === 0 && !rs.alive) || (rs.inhibit && !rs.set)) {
        this.ipvsCmd('add', rs);
        if (rs.numFailed === 0) rs.alive = true;
      } else if (rs.set && rs.numFailed > 0 && !rs.inhibit) {
        // alpha mode on a table that already holds the server: keep it out until a check succeeds
        this.ipvsCmd('del', rs);
      }
    }
    const s = this.sorry;
    if (s) s.set = present(s.addr, s.port);
    this.updateQuorum(true);
    if (s?.inhibit && !s.set) {
      this.actions.push({ op: 'add', addr: s.addr, port: s.port, weight: 0, sorry: true });
      s.set = true;
    } else if (s?.set && !s.alive && !s.inhibit) {
      this.actions.push({ op: 'del', addr: s.addr, port: s.port, sorry: true });
      s.set = false;
    }
    return this.take();
  }

  /**
   * A checker finished a run. Returns when to run it next and what to change. This is each checker kind's epilog
   * followed by update_svr_checker_state.
   */
  result(rsIndex: number, checkerIndex: number, o: CheckOutcome): EpilogResult {
    const rs = this.realServers[rsIndex];
    const c = rs.checkers[checkerIndex];
    const t = c.timing;
    let delayMs = t.delayLoopMs;

    if (t.kind === 'misc') {
      delayMs = this.miscEpilog(rs, c, o);
    } else if (o.ok) {
      c.retryIt = 0;
      if (!c.isUp || !c.hasRun) this.checkerState(true, rs, c);
    } else {
      // tcp retries only while the checker is up; http retries a failing URL whatever its state
      const canRetry = t.kind === 'http' || c.isUp;
      if (canRetry && c.retryIt < t.retry) {
        c.retryIt++;
        delayMs = t.delayBeforeRetryMs;
      } else {
        c.retryIt = 0;
        if (c.isUp || !c.hasRun) this.checkerState(false, rs, c);
      }
    }
    c.hasRun = true;
    const r = this.take();
    return { delayMs, ...r };
  }

  private miscEpilog(rs: RealServerState, c: CheckerState, o: CheckOutcome): number {
    const t = c.timing;
    const status = o.exitCode;
    // exit 0 = up; with misc_dynamic 2..255 = up with weight status − 2; anything else (1, killed) = down
    const good = status !== undefined && (status === 0 || (t.dynamic === true && status >= 2 && status <= 255));
    if (good) {
      if (status !== c.lastExitCode) {
        // the weight set with misc_dynamic is the exit status minus two (0..253); 0 restores the configured weight
        let eff = rs.effectiveWeight - c.curWeight;
        c.curWeight = status ? status - 2 - rs.iweight : 0;
        eff += c.curWeight;
        this.updateWeight(rs, eff);
        c.lastExitCode = status;
      }
      if (!c.isUp || !c.hasRun) this.checkerState(true, rs, c);
      c.retryIt = 0;
    } else if (c.isUp || !c.hasRun) {
      if (c.retryIt < t.retry) {
        c.retryIt++;
      } else {
        c.retryIt = 0;
        rs.effectiveWeight -= c.curWeight;
        c.curWeight = 0;
        c.lastExitCode = status ?? -1;
        this.checkerState(false, rs, c);
      }
    } else if (status !== undefined) {
      c.lastExitCode = status;
    }
    return c.retryIt ? t.delayBeforeRetryMs : t.delayLoopMs;
  }

  /** update_svr_checker_state */
  private checkerState(alive: boolean, rs: RealServerState, c: CheckerState): void {
    if (c.isUp === alive) {
      c.hasRun = true;
      return;
    }
    c.hasRun = true;
    if (alive) {
      if (rs.numFailed <= 1 && !this.serverState(true, rs)) return;
    } else if (rs.numFailed === 0 && !this.serverState(false, rs)) return;
    // set_checker_state
    c.isUp = alive;
    if (!alive) rs.numFailed++;
    else if (rs.numFailed) rs.numFailed--;
  }

  /** perform_svr_state */
  private serverState(alive: boolean, rs: RealServerState): boolean {
    if (rs.alive === alive) return true;
    if (this.quorumUp || !this.sorry || !this.sorry.alive) this.ipvsCmd(alive ? 'add' : 'del', rs);
    rs.alive = alive;
    this.events.push({ type: alive ? 'rs-up' : 'rs-down', addr: rs.addr, port: rs.port, inhibit: rs.inhibit });
    this.updateQuorum(false);
    return true;
  }

  /** update_svr_wgt */
  private updateWeight(rs: RealServerState, weight: number): void {
    const oldW = realWeight(rs.effectiveWeight);
    const newW = realWeight(weight);
    rs.effectiveWeight = weight;
    if (newW === oldW) return;
    this.events.push({ type: 'weight', addr: rs.addr, port: rs.port, from: oldW, to: newW });
    if (rs.set && rs.alive && (this.quorumUp || !this.sorry || !this.sorry.alive)) this.ipvsCmd('edit', rs);
    this.updateQuorum(false);
  }

  /** update_quorum_state */
  private updateQuorum(init: boolean): void {
    const weightSum = this.weighLive();
    const threshold = this.quorum + (this.quorumUp ? -1 : 1) * this.hysteresis;
    const s = this.sorry;
    if (!this.quorumUp && weightSum >= threshold) {
      this.quorumUp = true;
      if (s?.alive) {
        this.sorryCmd('del');
        s.alive = false;
        this.events.push({ type: 'sorry-del', addr: s.addr, port: s.port, inhibit: s.inhibit });
        // put the live servers back
        for (const rs of this.realServers) if (rs.alive) this.ipvsCmd('add', rs);
      }
      this.events.push({ type: 'quorum-up', weightSum, threshold, init });
    } else if ((this.quorumUp && (!weightSum || weightSum < threshold)) || (init && !this.quorumUp && s && !s.alive)) {
      this.quorumUp = false;
      if (s && !s.alive) {
        // take the remaining live servers out and put the sorry server in
        for (const rs of this.realServers) if (rs.alive) this.ipvsCmd('del', rs);
        this.sorryCmd('add');
        s.alive = true;
        this.events.push({ type: 'sorry-add', addr: s.addr, port: s.port, inhibit: s.inhibit });
      }
      this.events.push({ type: 'quorum-down', weightSum, threshold, init });
    }
  }

  /** ipvs_cmd for a real server, with inhibit_on_failure turning removal into weight 0. */
  private ipvsCmd(cmd: 'add' | 'del' | 'edit', rs: RealServerState): void {
    const base = { addr: rs.addr, port: rs.port, sorry: false };
    const weight = realWeight(rs.effectiveWeight);
    if (cmd === 'del' && rs.inhibit) {
      if (rs.set) this.actions.push({ op: 'edit', ...base, weight: 0 });
    } else if (cmd === 'add' && rs.inhibit && rs.set) {
      this.actions.push({ op: 'edit', ...base, weight });
    } else if (cmd === 'add') {
      if (rs.set) {
        this.actions.push({ op: 'edit', ...base, weight });
      } else {
        rs.set = true;
        this.actions.push({ op: 'add', ...base, weight: rs.inhibit && rs.numFailed ? 0 : weight });
      }
    } else if (cmd === 'del') {
      if (rs.set) {
        rs.set = false;
        this.actions.push({ op: 'del', ...base });
      }
    } else if (rs.set) {
      this.actions.push({ op: 'edit', ...base, weight });
    }
  }

  private sorryCmd(cmd: 'add' | 'del'): void {
    const s = this.sorry as SorryState;
    const base = { addr: s.addr, port: s.port, sorry: true };
    if (cmd === 'del') {
      if (s.inhibit) {
        if (s.set) this.actions.push({ op: 'edit', ...base, weight: 0 });
      } else if (s.set) {
        s.set = false;
        this.actions.push({ op: 'del', ...base });
      }
    } else if (s.set) {
      this.actions.push({ op: 'edit', ...base, weight: s.weight });
    } else {
      s.set = true;
      this.actions.push({ op: 'add', ...base, weight: s.weight });
    }
  }

  private take(): { actions: HealthAction[]; events: HealthEvent[] } {
    const r = { actions: this.actions, events: this.events };
    this.actions = [];
    this.events = [];
    return r;
  }
}
