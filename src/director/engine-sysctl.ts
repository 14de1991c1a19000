/**
 * The config's `director.sysctl` (DirectorSysctl, camelCase booleans) as the engine's /proc/sys/net/ipv4/vs/* values
 * (EngineSysctl). sloppy_sctp has no engine counterpart (no SCTP state machine) and is left out.
 */

import type { EngineSysctl } from '../l4/engine.js';
import type { DirectorSysctl } from './config.js';

export function engineSysctl(s: DirectorSysctl): Partial<EngineSysctl> {
  return {
    expire_nodest_conn: s.expireNodestConn ? 1 : 0,
    expire_quiescent_template: s.expireQuiescentTemplate ? 1 : 0,
    sloppy_tcp: s.sloppyTcp ? 1 : 0,
    conn_reuse_mode: s.connReuseMode,
  };
}
