/**
 * Stats: what each worker counts (sessions, bytes, errors, retries), what the primary knows (server state, slots,
 * queue, checks), and the rows they add up to — HAProxy's `show stat` CSV field names where they match. Pure.
 */
import type { Pool } from './pool.js';

export interface WorkerServerStats {
  stot: number;
  bin: number;
  bout: number;
  econ: number;
  eresp: number;
  wretr: number;
  wredis: number;
}

export interface WorkerListenerStats {
  scur: number;
  smax: number;
  stot: number;
  bin: number;
  bout: number;
  ereq: number;
  /** mode tcp: connections spliced in the kernel, and the bytes the kernel carried for them (both ways; they are in
   * bin/bout too) */
  splice_tot: number;
  splice_bytes: number;
  /** HTTP responses by class: 1xx..5xx, other */
  hrsp: Record<string, number>;
  servers: Record<string, WorkerServerStats>;
}

export type WorkerSnapshot = Record<string, WorkerListenerStats>;

/** the HTTP response classes counted (hrsp_* fields) */
export const HRSP_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx', 'other'] as const;

export function emptyServerStats(): WorkerServerStats {
  return { stot: 0, bin: 0, bout: 0, econ: 0, eresp: 0, wretr: 0, wredis: 0 };
}

export function emptyListenerStats(): WorkerListenerStats {
  return { scur: 0, smax: 0, stot: 0, bin: 0, bout: 0, ereq: 0, splice_tot: 0, splice_bytes: 0, hrsp: {}, servers: {} };
}

/** Sum snapshots (smax sums too: the peak of each worker, an upper bound of the node's peak). */
export function sumSnapshots(snaps: WorkerSnapshot[]): WorkerSnapshot {
  const out: WorkerSnapshot = {};
  for (const snap of snaps) {
    for (const [l, ls] of Object.entries(snap)) {
      const o = (out[l] ??= emptyListenerStats());
      for (const k of ['scur', 'smax', 'stot', 'bin', 'bout', 'ereq', 'splice_tot', 'splice_bytes'] as const)
        o[k] += ls[k] ?? 0;
      for (const [c, n] of Object.entries(ls.hrsp)) o.hrsp[c] = (o.hrsp[c] ?? 0) + n;
      for (const [s, ss] of Object.entries(ls.servers)) {
        const os = (o.servers[s] ??= emptyServerStats());
        for (const k of Object.keys(os) as (keyof WorkerServerStats)[]) os[k] += ss[k];
      }
    }
  }
  return out;
}

export const FIELDS = [
  'pxname',
  'svname',
  'qcur',
  'qmax',
  'scur',
  'smax',
  'slim',
  'stot',
  'bin',
  'bout',
  'ereq',
  'econ',
  'eresp',
  'wretr',
  'wredis',
  'status',
  'weight',
  'act',
  'bck',
  'chkfail',
  'chkdown',
  'lastchg',
  'check_status',
  'check_code',
  'lbtot',
  'hrsp_1xx',
  'hrsp_2xx',
  'hrsp_3xx',
  'hrsp_4xx',
  'hrsp_5xx',
  'hrsp_other',
  // tierlb's own, after HAProxy's: mode tcp's in-kernel splice (FRONTEND rows)
  'splice_tot',
  'splice_bytes',
] as const;

export type StatRow = Record<(typeof FIELDS)[number], string | number>;

function row(pxname: string, svname: string): StatRow {
  const r = {} as StatRow;
  for (const f of FIELDS) r[f] = '';
  r.pxname = pxname;
  r.svname = svname;
  return r;
}

/**
 * HAProxy's `show stat` rows: per listener its FRONTEND row, per group (HAProxy backend) one row per server and its
 * BACKEND row, pxname being the listener's or the group's name. A listener's own servers are the group named after
 * it, so a listener in the one-group form gives FRONTEND, servers, BACKEND under one name, as before groups.
 * `frontends` (default: one per pool, named after it) are the config's listeners; a group comes after the listener
 * of the same name, the other groups in config order after the listeners.
 */
export function statRows(
  pools: readonly Pool[],
  agg: WorkerSnapshot,
  now: number,
  listening: (l: string) => boolean,
  frontends: readonly { name: string }[] = pools.map((p) => p.spec),
): StatRow[] {
  const rows: StatRow[] = [];
  const byName = new Map(pools.map((p) => [p.spec.name, p]));
  const done = new Set<string>();
  for (const f of frontends) {
    rows.push(frontendRow(f.name, agg[f.name] ?? emptyListenerStats(), listening(f.name)));
    const own = byName.get(f.name);
    if (own) {
      backendRows(rows, own, agg, now);
      done.add(f.name);
    }
  }
  for (const p of pools) if (!done.has(p.spec.name)) backendRows(rows, p, agg, now);
  return rows;
}

function frontendRow(name: string, ls: WorkerListenerStats, open: boolean): StatRow {
  const fe = row(name, 'FRONTEND');
  Object.assign(fe, { scur: ls.scur, smax: ls.smax, stot: ls.stot, bin: ls.bin, bout: ls.bout, ereq: ls.ereq });
  fe.splice_tot = ls.splice_tot ?? 0;
  fe.splice_bytes = ls.splice_bytes ?? 0;
  fe.status = open ? 'OPEN' : 'STOP';
  for (const c of HRSP_CLASSES) fe[`hrsp_${c}`] = ls.hrsp[c] ?? 0;
  return fe;
}

/** a group's server rows and BACKEND row (its hrsp: the answers of requests sent to it) */
function backendRows(rows: StatRow[], pool: Pool, agg: WorkerSnapshot, now: number): void {
  const name = pool.spec.name;
  const ls = agg[name] ?? emptyListenerStats();
  {
    const be = row(name, 'BACKEND');
    const tot = {
      scur: 0,
      smax: 0,
      stot: 0,
      bin: 0,
      bout: 0,
      econ: 0,
      eresp: 0,
      wretr: 0,
      wredis: 0,
      weight: 0,
      act: 0,
      bck: 0,
      lbtot: 0,
    };
    for (const s of pool.servers) {
      const ss = ls.servers[s.name] ?? emptyServerStats();
      const r = row(name, s.name);
      const w = s.weightAt(now);
      Object.assign(r, {
        qcur: 0,
        qmax: 0,
        scur: s.conns,
        smax: s.smax,
        slim: s.maxconn || '',
        stot: ss.stot,
        bin: ss.bin,
        bout: ss.bout,
        econ: ss.econ,
        eresp: ss.eresp,
        wretr: ss.wretr,
        wredis: ss.wredis,
        status: s.status,
        weight: w,
        act: s.spec.backup ? 0 : 1,
        bck: s.spec.backup ? 1 : 0,
        chkfail: s.spec.check ? s.chkfail : '',
        chkdown: s.spec.check ? s.chkdown : '',
        lastchg: Math.round((now - s.lastchg) / 1000),
        check_status: s.spec.check ? s.checkStatus || 'INI' : '',
        check_code: s.checkCode || '',
        lbtot: s.lbtot,
      });
      rows.push(r);
      for (const k of ['scur', 'stot', 'bin', 'bout', 'econ', 'eresp', 'wretr', 'wredis', 'lbtot'] as const)
        tot[k] += Number(r[k]);
      tot.smax = Math.max(tot.smax, s.smax);
      if (s.status === 'UP') {
        if (s.spec.backup) tot.bck++;
        else tot.act++;
        tot.weight += w;
      }
    }
    Object.assign(be, tot, { qcur: pool.qcur, qmax: pool.qmax, status: tot.act + tot.bck > 0 ? 'UP' : 'DOWN' });
    for (const c of HRSP_CLASSES) be[`hrsp_${c}`] = ls.hrsp[c] ?? 0;
    rows.push(be);
  }
}

/** HAProxy's `show stat` CSV: a "# " header line, then one line per row. */
export function formatCsv(rows: readonly StatRow[]): string {
  const lines = [`# ${FIELDS.join(',')}`];
  for (const r of rows) lines.push(FIELDS.map((f) => String(r[f])).join(','));
  return `${lines.join('\n')}\n`;
}

const TABLE_FIELDS = [
  'pxname',
  'svname',
  'status',
  'weight',
  'qcur',
  'scur',
  'smax',
  'stot',
  'bin',
  'bout',
  'ereq',
  'econ',
  'eresp',
  'wretr',
  'wredis',
  'check_status',
  'lbtot',
] as const;

/** An aligned table of the main columns (the default output of `tierlb listeners stats`). */
export function formatTable(rows: readonly StatRow[]): string {
  const cells = [TABLE_FIELDS.map(String), ...rows.map((r) => TABLE_FIELDS.map((f) => String(r[f])))];
  const widths = TABLE_FIELDS.map((_, i) => Math.max(...cells.map((c) => c[i]!.length)));
  return `${cells
    .map((c) =>
      c
        .map((v, i) => v.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')}\n`;
}
