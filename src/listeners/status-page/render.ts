/**
 * The listeners' status page, server-rendered: per backend (today one per listener) its FRONTEND, its servers and
 * its BACKEND, with HAProxy's stats page columns (status, check result and age, sessions cur/max/total, session
 * rate, bytes, errors, weight, admin state) and, in admin mode, the drain / ready / maint and weight actions.
 * Everything that comes from the config or the network is escaped. Pure.
 */
import { esc } from '../../common/status-page.js';
import type { Pool } from '../pool.js';
import type { FullRow } from '../runtime-api/show-stat.js';

export interface RenderContext {
  rows: readonly FullRow[];
  backends: readonly Pool[];
  /** mode and addresses by proxy name (../config.ts proxyInfo) */
  proxies: ReadonlyMap<string, { mode: string; binds: string[] }>;
  /** the injected clock's now (check ages) */
  now: number;
  admin: boolean;
  /** the result of the last action, shown once */
  notice?: string;
}

const COLS = [
  'Name',
  'Status',
  'Check',
  'Last check',
  'Cur',
  'Max',
  'Total',
  'Rate/s',
  'Bytes in',
  'Bytes out',
  'Req err',
  'Conn err',
  'Resp err',
  'Weight',
  'Admin',
];

function age(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return '';
  const s = Math.max(0, Math.round(ms / 1000));
  return s < 120 ? `${s}s ago` : s < 7200 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`;
}

function cells(r: FullRow, extra: { check: string; last: string; weight: string; admin: string }): string {
  const v = [r.scur, r.smax, r.stot, r.rate, r.bin, r.bout, r.ereq, r.econ, r.eresp];
  const status = String(r.status ?? '');
  return (
    `<td class="n">${esc(r.svname)}</td><td class="st ${esc(status)}">${esc(status)}</td>` +
    `<td class="chk">${esc(extra.check)}</td><td>${esc(extra.last)}</td>` +
    v.map((x) => `<td>${esc(x)}</td>`).join('') +
    `<td class="w">${esc(extra.weight)}</td><td class="adm">${esc(extra.admin)}</td>`
  );
}

function actions(backend: string, server: string): string {
  const id = `${backend}/${server}`;
  const hidden = `<input type="hidden" name="server" value="${esc(id)}">`;
  const btn = (a: string) =>
    `<form method="post" action="/status/admin">${hidden}<button type="submit" name="action" value="${a}" data-action="${a}">${a}</button></form>`;
  return (
    `<td class="act">${btn('drain')}${btn('ready')}${btn('maint')}` +
    `<form method="post" action="/status/admin">${hidden}<input class="w" name="weight" aria-label="weight" placeholder="w|w%">` +
    '<button type="submit" name="action" value="weight" data-action="weight">weight</button></form></td>'
  );
}

/** The tables (what `?partial=1` refreshes). */
export function renderTables(ctx: RenderContext): string {
  const out: string[] = [];
  if (ctx.notice) out.push(`<p class="notice" id="notice">${esc(ctx.notice)}</p>`);
  const head = `<tr>${COLS.map((c) => `<th>${c}</th>`).join('')}${ctx.admin ? '<th>Actions</th>' : ''}</tr>`;
  for (const pool of ctx.backends) {
    const name = pool.spec.name;
    const info = ctx.proxies.get(name);
    const rows = ctx.rows.filter((r) => r.pxname === name);
    const chk = pool.spec.check;
    const chkText = chk
      ? `${chk.type}${chk.type === 'http' ? ` ${chk.method} ${chk.uri}` : ''} every ${chk.inter} ms`
      : 'no check';
    out.push(
      `<h2 id="px-${esc(name)}">${esc(name)} <span class="meta">${esc(info?.mode ?? '')} · ${esc(pool.spec.balance)} · ` +
        `${esc(info?.binds.join(', ') ?? '')} · ${esc(chkText)}</span></h2>`,
    );
    out.push(`<table data-backend="${esc(name)}">${head}`);
    for (const r of rows) {
      const kind = r.svname === 'FRONTEND' ? 'fe' : r.svname === 'BACKEND' ? 'be' : 'sv';
      if (kind !== 'sv') {
        out.push(
          `<tr class="${kind}">${cells(r, { check: '', last: '', weight: String(r.weight ?? ''), admin: '' })}${ctx.admin ? '<td></td>' : ''}</tr>`,
        );
        continue;
      }
      const s = pool.servers.find((x) => x.name === r.svname);
      const checkText = r.check_status
        ? `${r.check_status}${r.check_code ? ` ${r.check_code}` : ''}${r.check_desc ? `: ${r.check_desc}` : ''}`
        : '';
      const admin = s ? (s.maint ? 'maint' : s.admin) : '';
      const weight = s
        ? `${r.weight}/${s.baseWeight}${s.uweight !== undefined ? ` (set, config ${s.spec.weight})` : ''}`
        : String(r.weight);
      out.push(
        `<tr class="sv" data-server="${esc(`${name}/${r.svname}`)}" data-status="${esc(r.status)}" data-admin="${esc(admin)}">` +
          cells(r, {
            check: checkText,
            last: age(s?.lastCheck === undefined ? undefined : ctx.now - s.lastCheck),
            weight,
            admin,
          }) +
          (ctx.admin ? actions(name, String(r.svname)) : '') +
          '</tr>',
      );
    }
    out.push('</table>');
  }
  return out.join('\n');
}
