/**
 * `show servers state` in HAProxy's format (version line `1`, a `# ` header, one space-separated line per server),
 * what HAProxy's `server-state-file` holds; and the admin changes the runtime API makes (set server … state /
 * weight, enable / disable server), applied to a server's state in the primary. Pure.
 */
import type { Pool, ServerState } from '../pool.js';
import { CHECK_STATUS_CODE } from './fields.js';

const HEADER =
  '# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight ' +
  'srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state ' +
  'srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port ' +
  'srv_check_addr srv_agent_addr srv_agent_port';

/** HAProxy's admin flags: FMAINT (forced), CMAINT (config), FDRAIN (forced) */
const ADMF_FMAINT = 0x01;
const ADMF_CMAINT = 0x04;
const ADMF_FDRAIN = 0x08;
/** its operational states */
const OP_STOPPED = 0;
const OP_RUNNING = 2;
const OP_STOPPING = 3;
/** its check results and check state flags (configured | enabled; paused in maintenance) */
const RES_UNKNOWN = 0;
const RES_FAILED = 2;
const RES_PASSED = 3;
const CHK_CONFIGURED = 0x02;
const CHK_ENABLED = 0x04;
const CHK_PAUSED = 0x08;

export function adminFlags(s: ServerState): number {
  return (
    (s.admin === 'maint' ? ADMF_FMAINT : 0) | (s.cfgMaint ? ADMF_CMAINT : 0) | (s.admin === 'drain' ? ADMF_FDRAIN : 0)
  );
}

function opState(s: ServerState): number {
  if (s.maint || !s.healthy) return OP_STOPPED;
  return s.agentPct === 0 ? OP_STOPPING : OP_RUNNING;
}

/** The lines of `show servers state [backend]`, or an error message (HAProxy's words). */
export function showServersState(pools: readonly Pool[], now: number, only?: string): string {
  const sel = only ? pools.filter((p) => p.spec.name === only) : pools;
  if (only && sel.length === 0) return "Can't find backend.\n";
  const lines = ['1', HEADER];
  for (const pool of sel) {
    const beId = pools.indexOf(pool) + 1;
    const checked = !!pool.spec.check;
    for (const s of pool.servers) {
      const c = checked && s.spec.check;
      const chk = pool.spec.check;
      const result = !c || !s.checkStatus ? RES_UNKNOWN : s.healthy ? RES_PASSED : RES_FAILED;
      const health = c && chk ? (s.healthy ? chk.rise + chk.fall - 1 - s.health : s.health) : s.healthy ? 2 : 0;
      lines.push(
        [
          beId,
          pool.spec.name,
          s.id + 1,
          s.name,
          s.spec.host,
          opState(s),
          adminFlags(s),
          Math.floor((s.baseWeight * s.agentPct) / 100),
          s.spec.weight,
          Math.max(0, Math.round((now - s.lastchg) / 1000)),
          CHECK_STATUS_CODE[s.checkStatus || 'INI'] ?? 0,
          result,
          health,
          c ? CHK_CONFIGURED | CHK_ENABLED | (s.maint ? CHK_PAUSED : 0) : 0,
          s.spec.agent ? CHK_CONFIGURED | CHK_ENABLED : 0,
          0,
          0,
          '-',
          s.spec.port,
          '-',
          0,
          0,
          '-',
          s.spec.agent?.host ?? '-',
          s.spec.agent?.port ?? 0,
        ].join(' '),
      );
    }
  }
  return `${lines.join('\n')}\n\n`;
}

export type AdminState = 'ready' | 'drain' | 'maint';

/** `set server B/S state …`: HAProxy's forced flags; `ready` and `drain` also leave a config `disabled`. */
export function setAdminState(s: ServerState, state: AdminState, now: number): boolean {
  const before = `${s.admin}/${s.cfgMaint}`;
  const wasMaint = s.maint;
  s.admin = state;
  if (state !== 'maint') s.cfgMaint = false;
  if (wasMaint !== s.maint) s.lastchg = now;
  // out of maintenance, a checked server starts over from the checks' point of view, as HAProxy's does
  if (wasMaint && !s.maint && s.spec.check) s.health = 0;
  return before !== `${s.admin}/${s.cfgMaint}`;
}

/**
 * `set server B/S weight N|N%`: an absolute weight 0..256, or a percentage of the configured one; returns the
 * error message (HAProxy's words) or undefined. It replaces an agent's percentage, as an agent's replaces it.
 */
export function setWeight(s: ServerState, arg: string): string | undefined {
  const m = /^(\d+)(%?)$/.exec(arg ?? '');
  if (!m) return 'Empty weight string empty or preceded by garbage';
  const n = Number(m[1]);
  let w: number;
  if (m[2]) {
    if (n > 100 * 256) return 'Relative weight too large.';
    w = Math.min(256, Math.round((s.spec.weight * n) / 100));
  } else {
    if (n > 256) return 'Absolute weight can only be between 0 and 256 inclusive.';
    w = n;
  }
  s.uweight = w;
  s.agentPct = 100;
  return undefined;
}
