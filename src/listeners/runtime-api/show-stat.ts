/**
 * `show stat` in HAProxy 2.6's CSV (./fields.ts has the columns): the rows of ../stats.ts (FRONTEND, servers,
 * BACKEND per backend, the counters summed over every worker) widened with what HAProxy consumers read beside them:
 * row type, ids, address, mode and algorithm, check details and age, session rates, the runtime weight. The
 * status words are HAProxy's: UP, DOWN, DRAIN, NOLB, MAINT, `no check`; FRONTEND OPEN/STOP. Pure (time injected).
 */
import type { Pool, ServerState } from '../pool.js';
import type { StatRow } from '../stats.js';
import { SHOW_STAT_FIELDS } from './fields.js';

export type FullRow = Record<string, string | number>;

/** Sessions per second over the last second or more, per row (HAProxy's rate / rate_max), fed at each read. */
export class Rates {
  private readonly last = new Map<string, { t: number; total: number; rate: number; max: number }>();

  sample(key: string, total: number, now: number): { rate: number; max: number } {
    const e = this.last.get(key);
    if (!e) {
      const first = { t: now, total, rate: 0, max: 0 };
      this.last.set(key, first);
      return first;
    }
    if (now - e.t >= 1000) {
      e.rate = Math.max(0, Math.round(((total - e.total) * 1000) / (now - e.t)));
      e.max = Math.max(e.max, e.rate);
      e.t = now;
      e.total = total;
    }
    return e;
  }
}

/** HAProxy's status word for a server. */
export function serverStatus(s: ServerState): string {
  if (s.maint) return 'MAINT';
  if (!s.healthy) return 'DOWN';
  if (s.admin === 'drain') return 'DRAIN';
  if (s.agentPct === 0) return 'NOLB';
  return s.spec.check ? 'UP' : 'no check';
}

/** What the runtime API knows of one backend besides its pool. */
export interface StatContext {
  pools: readonly Pool[];
  rows: readonly StatRow[];
  now: number;
  pid: number;
  rates: Rates;
  /** mode and addresses by proxy name (../config.ts proxyInfo) */
  proxies: ReadonlyMap<string, { mode: string; binds: string[] }>;
}

/** ../stats.ts's rows in HAProxy's full shape (a row per FRONTEND, server and BACKEND). */
export function fullRows(ctx: StatContext): FullRow[] {
  const out: FullRow[] = [];
  const byPx = new Map(ctx.pools.map((p, i) => [p.spec.name, { pool: p, iid: i + 1 }]));
  for (const r of ctx.rows) {
    const px = byPx.get(String(r.pxname));
    const row: FullRow = {};
    for (const f of SHOW_STAT_FIELDS) row[f] = '';
    Object.assign(row, r);
    row.pid = ctx.pid;
    row.iid = px?.iid ?? 0;
    const key = `${r.pxname}/${r.svname}`;
    const rate = ctx.rates.sample(key, Number(r.stot) || 0, ctx.now);
    row.rate = rate.rate;
    row.rate_max = rate.max;
    const info = ctx.proxies.get(String(r.pxname));
    if (info) row.mode = info.mode;
    if (r.svname === 'FRONTEND') {
      row.type = 0;
      row.sid = 0;
      row.req_tot = r.stot;
      row.conn_tot = r.stot;
    } else if (r.svname === 'BACKEND') {
      row.type = 1;
      row.sid = 0;
      row.algo = px?.pool.spec.balance ?? '';
      row.lastchg = '';
      row.chkdown = '';
      row.uweight = r.weight;
    } else {
      row.type = 2;
      const s = px?.pool.servers.find((x) => x.name === r.svname);
      if (px && s) Object.assign(row, serverFields(px.pool, s, ctx.now));
    }
    out.push(row);
  }
  return out;
}

function serverFields(pool: Pool, s: ServerState, now: number): FullRow {
  const chk = pool.spec.check;
  const checked = !!(s.spec.check && chk);
  const f: FullRow = {
    sid: s.id + 1,
    status: serverStatus(s),
    addr: `${s.spec.host.includes(':') ? `[${s.spec.host}]` : s.spec.host}:${s.spec.port}`,
    uweight: Math.floor((s.baseWeight * s.agentPct) / 100),
    qlimit: '',
    throttle: '',
  };
  if (checked) {
    f.check_desc = s.maint ? '' : s.checkDesc;
    f.check_rise = chk!.rise;
    f.check_fall = chk!.fall;
    f.check_health = s.healthy ? chk!.rise + chk!.fall - 1 - s.health : s.health;
    f.last_chk = s.maint ? '' : s.checkDesc;
  }
  if (s.spec.slowstart > 0) {
    const el = now - s.upSince;
    if (el < s.spec.slowstart) f.throttle = Math.round((100 * el) / s.spec.slowstart);
  }
  return f;
}

/**
 * `show stat`'s filters, as HAProxy's: `{<iid>|<proxy>|-1} <type> <sid>` (type: -1 all, else a sum of 1 frontends,
 * 2 backends, 4 servers; sid -1 all), then `up` (only servers UP) or `no-maint` (servers not in maintenance).
 * Returns the rows, or HAProxy's words when the arguments are wrong.
 */
export function filterRows(rows: readonly FullRow[], args: readonly string[]): FullRow[] | string {
  let rest = [...args];
  let px: string | undefined;
  let type = -1;
  let sid = -1;
  if (rest.length && !['up', 'no-maint'].includes(rest[0]!)) {
    if (rest.length < 3) return "Require '<proxy>|<iid> <type> <sid>'.";
    const [p, ty, si] = rest;
    if (!/^-?\d+$/.test(ty!) || !/^-?\d+$/.test(si!)) return "Require '<proxy>|<iid> <type> <sid>'.";
    px = p === '-1' ? undefined : p;
    type = Number(ty);
    sid = Number(si);
    rest = rest.slice(3);
  }
  const up = rest.includes('up');
  const noMaint = rest.includes('no-maint');
  const bit = (r: FullRow) => (r.type === 0 ? 1 : r.type === 1 ? 2 : 4);
  return rows.filter((r) => {
    if (px !== undefined && r.pxname !== px && String(r.iid) !== px) return false;
    if (type !== -1 && (type & bit(r)) === 0) return false;
    if (r.type === 2) {
      if (sid !== -1 && r.sid !== sid) return false;
      if (up && !String(r.status).startsWith('UP') && r.status !== 'no check') return false;
      if (noMaint && r.status === 'MAINT') return false;
    }
    return true;
  });
}

/** The CSV: a `# ` header line, one line per row, each field followed by a comma, then an empty line (HAProxy). */
export function formatShowStat(rows: readonly FullRow[]): string {
  const line = (vals: readonly (string | number)[]) => vals.map((v) => `${csvField(String(v))},`).join('');
  const out = [`# ${line(SHOW_STAT_FIELDS)}`];
  for (const r of rows) out.push(line(SHOW_STAT_FIELDS.map((f) => r[f] ?? '')));
  return `${out.join('\n')}\n\n`;
}

/** HAProxy quotes a field holding a comma, a quote or a line break (doubling the quotes). */
function csvField(v: string): string {
  return /[",\n\r]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v;
}
