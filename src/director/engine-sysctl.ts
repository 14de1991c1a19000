/**
 * The config's `director.sysctl` (DirectorSysctl, camelCase booleans) as the engine's /proc/sys/net/ipv4/vs/* values
 * (EngineSysctl). sloppy_sctp has no engine counterpart (no SCTP state machine) and is left out; the defenses and
 * amemthresh (pages → entries of CONN_ENTRY_BYTES) only when the plan sets them, conn_table_bytes through setTableBytes.
 */

import { CONN_ENTRY_BYTES } from '../l4/conn/table.js';
import type { Engine, EngineSysctl } from '../l4/engine.js';

const PAGE_BYTES = 4096;

import { DEFENSE_DEFAULTS, type DirectorSysctl } from './config.js';

export function engineSysctl(s: DirectorSysctl): Partial<EngineSysctl> {
  const e: Partial<EngineSysctl> = {
    expire_nodest_conn: s.expireNodestConn ? 1 : 0,
    expire_quiescent_template: s.expireQuiescentTemplate ? 1 : 0,
    sloppy_tcp: s.sloppyTcp ? 1 : 0,
    conn_reuse_mode: s.connReuseMode,
  };
  if (s.dropEntry !== undefined) e.drop_entry = s.dropEntry;
  if (s.dropPacket !== undefined) e.drop_packet = s.dropPacket;
  if (s.secureTcp !== undefined) e.secure_tcp = s.secureTcp;
  if (s.amDroprate !== undefined) e.am_droprate = s.amDroprate;
  // the kernel counts free memory in pages; the engine counts free entries under the table's bound
  if (s.amemthresh !== undefined) e.amemthresh = Math.ceil((s.amemthresh * PAGE_BYTES) / CONN_ENTRY_BYTES);
  return e;
}

/**
 * Apply a plan's sysctls to the engine, the director's memory defenses (DEFENSE_DEFAULTS) under what the plan
 * sets: the table's memory bound first, so the defenses see its room. The worker applies DEFAULT_SYSCTL this way at
 * start, so a director without a config has them too.
 */
export function applyEngineSysctl(engine: Engine, plan: DirectorSysctl): void {
  const s = { ...DEFENSE_DEFAULTS, ...plan };
  engine.setTableBytes(s.connTableBytes);
  engine.setSysctl(engineSysctl(s));
}
