/**
 * Which connection updates the master sends (ip_vs_sync_conn_needed, ip_vs_sync.c), as a pure function over the
 * connection's view, its per-connection sync marks and the sync sysctls. Times are milliseconds (HZ = 1000).
 */
import { CONN_F_TEMPLATE } from './codec.js';

/** /proc/sys/net/ipv4/vs/sync_* with the kernel's defaults. */
export interface SyncSysctl {
  /** sync_threshold[0]: a connection is synced when its packet count reaches it (default 3) */
  syncThreshold: number;
  /** sync_threshold[1] (sync_period): and then every this many packets; 0 = only once (default 50) */
  syncPeriod: number;
  /** sync_refresh_period (ms): send only when the expiry moved by this much (default 0 = off) */
  syncRefreshPeriodMs: number;
  /** sync_retries: resends of an unchanged entry with sync_refresh_period (0..3, default 0) */
  syncRetries: number;
  /** sync_persist_mode: connections under a persistence template are not synced, only the template (default 0) */
  syncPersistMode: number;
}

export const DEFAULT_SYNC_SYSCTL: Readonly<SyncSysctl> = {
  syncThreshold: 3,
  syncPeriod: 50,
  syncRefreshPeriodMs: 0,
  syncRetries: 0,
  syncPersistMode: 0,
};

/** What the rule reads of a connection. */
export interface SyncRuleConn {
  flags: number;
  protocol: number;
  state: number;
  timeoutMs: number;
  /** the controlling entry (cp->control): a template there puts the connection in persistence (in_persistence) */
  controlledBy?: { flags: number } | null;
}

/** Per-connection state the rule reads and updates (cp->old_state, cp->sync_endtime). */
export interface SyncMarks {
  oldState: number;
  syncEndtime: number;
}

const TCP = 6;
const SCTP = 132;
/** IP_VS_TCP_S_ESTABLISHED, FIN_WAIT, TIME_WAIT, CLOSE, CLOSE_WAIT */
const TCP_SYNC_STATES = (1 << 1) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7);
const TCP_S_ESTABLISHED = 1;
/** IP_VS_SCTP_S_ESTABLISHED (7), SHUTDOWN_SENT (8), SHUTDOWN_RECEIVED (9), SHUTDOWN_ACK_SENT (10), CLOSED (12) */
const SCTP_SYNC_STATES = (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 12);
const SCTP_S_ESTABLISHED = 7;

/**
 * Whether to send this update. `pkts` is the connection's incoming packet count (for a template, its sync counter;
 * for ONE_PACKET connections and non-template controllers, sync_threshold). Updates `marks` as the kernel does.
 */
export function syncConnNeeded(
  s: SyncSysctl,
  cp: SyncRuleConn,
  marks: SyncMarks,
  pkts: number,
  nowMs: number,
): boolean {
  const orig = marks.syncEndtime;
  let n = (nowMs + cp.timeoutMs) & ~3;
  let force: boolean;

  if (cp.flags & CONN_F_TEMPLATE) force = false;
  else if (s.syncPersistMode && cp.controlledBy && cp.controlledBy.flags & CONN_F_TEMPLATE) return false;
  else if (cp.protocol === TCP || cp.protocol === SCTP) {
    const states = cp.protocol === TCP ? TCP_SYNC_STATES : SCTP_SYNC_STATES;
    const established = cp.protocol === TCP ? TCP_S_ESTABLISHED : SCTP_S_ESTABLISHED;
    if (!((1 << cp.state) & states)) return false;
    force = cp.state !== marks.oldState;
    if (force && cp.state !== established) {
      marks.oldState = cp.state;
      marks.syncEndtime = n;
      return true;
    }
  } else {
    // UDP or another protocol with a single state
    force = false;
  }

  const refresh = s.syncRefreshPeriodMs;
  if (refresh > 0) {
    const diff = n - orig;
    const minDiff = Math.max(cp.timeoutMs >> 1, 10_000);
    // avoid a sync if the expiry moved by less than sync_refresh_period and less than half the timeout
    if (Math.abs(diff) < Math.min(refresh, minDiff)) {
      const retries = orig & 3;
      if (retries >= s.syncRetries) return false;
      if (nowMs < orig - cp.timeoutMs + (refresh >> 3)) return false;
      n |= retries + 1;
    }
  }
  if (s.syncPeriod > 0) {
    if (!(cp.flags & CONN_F_TEMPLATE) && pkts % s.syncPeriod !== s.syncThreshold) return false;
  } else if (refresh <= 0 && pkts !== s.syncThreshold) return false;

  marks.oldState = cp.state;
  // cmpxchg(&cp->sync_endtime, orig, n) || force: nothing races here, the exchange always succeeds
  marks.syncEndtime = n;
  return true;
}
