/**
 * The director's status page, on its metrics address (`--metrics` / `director.metrics.bind`) beside /metrics:
 * services and their real servers (weight, forwarding, active / inactive connections, connections, rates, bytes),
 * the connection table, the data path's counters, the VRRP instances and the sync daemons; it refreshes itself. In
 * admin mode (`director.metrics.admin: {user, password}`, HTTP Basic) a real server's weight can be changed: the
 * page runs `-e … -w N` through the same admin path as `tierlb adm -e`.
 *   GET / and /status, GET /status/admin, POST /status/admin (service, server, weight; same origin)
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  type AdminCredentials,
  askCredentials,
  authorized,
  esc,
  newNonce,
  page,
  pageHeaders,
  readForm,
  sameOrigin,
} from '../common/status-page.js';
import type { MetricsSnapshot } from './worker-ha.js';

export interface DirectorPageSource {
  snapshot(): Promise<unknown>;
  readonly vrrpStates: ReadonlyMap<string, { state: string; vrid: number; priority: number }>;
  /** admin mode: the credentials (undefined: read-only) */
  readonly pageAdmin?: AdminCredentials;
  /** run an ipvsadm command line through the director's admin path (as `tierlb adm` does) */
  adm?(argv: string[]): Promise<{ code: number; stderr: string }>;
}

const FWD: Record<string, string> = { route: 'Route', masq: 'Masq', tunnel: 'Tunnel' };
const FWD_FLAG: Record<string, string> = { route: '-g', masq: '-m', tunnel: '-i' };

const hp = (addr: string, port: number) => (addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`);

/** The ipvsadm options naming a service from its description (`TCP 10.0.0.1:80`, `FWM 3 IPv6`). */
export function serviceArgsOf(desc: string): string[] | undefined {
  const fwm = /^FWM (\d+)( IPv6)?$/.exec(desc);
  if (fwm) return ['-f', fwm[1]!, ...(fwm[2] ? ['-6'] : [])];
  const m = /^(TCP|UDP|SCTP) (\S+)$/.exec(desc);
  if (!m) return undefined;
  return [m[1] === 'TCP' ? '-t' : m[1] === 'UDP' ? '-u' : '--sctp-service', m[2]!];
}

export function renderDirectorTables(
  snap: MetricsSnapshot,
  vrrp: DirectorPageSource['vrrpStates'],
  admin: boolean,
  notice?: string,
): string {
  const out: string[] = [];
  if (notice) out.push(`<p class="notice" id="notice">${esc(notice)}</p>`);
  out.push('<h2>Virtual services</h2>');
  const head =
    '<tr><th>Service / real server</th><th>Forward</th><th>Weight</th><th>ActiveConn</th><th>InActConn</th>' +
    '<th>Conns</th><th>CPS</th><th>InPPS</th><th>OutPPS</th><th>InBPS</th><th>OutBPS</th><th>Bytes in</th><th>Bytes out</th>' +
    `${admin ? '<th>Actions</th>' : ''}</tr>`;
  out.push(`<table id="services">${head}`);
  for (const s of snap.services) {
    const st = s.stats;
    out.push(
      `<tr class="be" data-service="${esc(s.service)}"><td class="n">${esc(s.service)}</td><td></td><td></td>` +
        `<td>${esc(s.dests.reduce((a, d) => a + d.activeConns, 0))}</td><td>${esc(s.dests.reduce((a, d) => a + d.inactConns, 0))}</td>` +
        `<td>${esc(st.conns)}</td><td>${esc(st.cps)}</td><td>${esc(st.inpps)}</td><td>${esc(st.outpps)}</td>` +
        `<td>${esc(st.inbps)}</td><td>${esc(st.outbps)}</td><td>${esc(st.inbytes)}</td><td>${esc(st.outbytes)}</td>` +
        `${admin ? '<td></td>' : ''}</tr>`,
    );
    for (const d of s.dests) {
      const name = hp(d.addr, d.port);
      const ds = d.stats;
      const act = admin
        ? `<td class="act"><form method="post" action="/status/admin"><input type="hidden" name="service" value="${esc(s.service)}">` +
          `<input type="hidden" name="server" value="${esc(name)}"><input class="w" name="weight" aria-label="weight" value="${esc(d.weight)}">` +
          '<button type="submit" data-action="weight">set weight</button></form></td>'
        : '';
      out.push(
        `<tr class="sv ${d.weight > 0 ? 'ok' : 'DRAIN'}" data-service="${esc(s.service)}" data-server="${esc(name)}" data-weight="${esc(d.weight)}">` +
          `<td class="n">→ ${esc(name)}</td><td>${esc(FWD[d.fwd] ?? d.fwd)}</td><td class="w">${esc(d.weight)}</td>` +
          `<td>${esc(d.activeConns)}</td><td>${esc(d.inactConns)}</td><td>${esc(ds.conns)}</td><td>${esc(ds.cps)}</td>` +
          `<td>${esc(ds.inpps)}</td><td>${esc(ds.outpps)}</td><td>${esc(ds.inbps)}</td><td>${esc(ds.outbps)}</td>` +
          `<td>${esc(ds.inbytes)}</td><td>${esc(ds.outbytes)}</td>${act}</tr>`,
      );
    }
  }
  out.push('</table>');
  const e = snap.engine;
  const c = snap.counters;
  out.push('<h2>Connections and data path</h2><table id="conns">');
  out.push(
    `<tr><th>Connection table</th><td id="conn-count">${esc(e?.size ?? '')}</td><th>Max</th><td>${esc(e?.maxConns ?? '')}</td></tr>` +
      `<tr><th>Packets</th><td>${esc(c.packets)}</td><th>Passed</th><td>${esc(c.passed)}</td></tr>` +
      `<tr><th>Dropped</th><td>${esc(c.dropped)}</td><th>Forwarded</th><td>${esc(
        Object.entries(c.forwarded)
          .map(([k, v]) => `${k} ${v}`)
          .join(', '),
      )}</td></tr>`,
  );
  out.push('</table>');
  out.push('<h2>VRRP</h2><table id="vrrp"><tr><th>Instance</th><th>VRID</th><th>State</th><th>Priority</th></tr>');
  if (vrrp.size === 0) out.push('<tr><td class="n" colspan="4">no VRRP instance</td></tr>');
  for (const [name, v] of vrrp)
    out.push(
      `<tr data-instance="${esc(name)}"><td class="n">${esc(name)}</td><td>${esc(v.vrid)}</td><td class="${esc(v.state)}">${esc(v.state)}</td><td>${esc(v.priority)}</td></tr>`,
    );
  out.push('</table>');
  out.push(
    '<h2>Connection sync</h2><table id="sync"><tr><th>Daemon</th><th>syncid</th><th>Messages</th><th>Connections</th></tr>',
  );
  if (snap.sync.daemons.length === 0) out.push('<tr><td class="n" colspan="4">no sync daemon</td></tr>');
  for (const d of snap.sync.daemons) {
    const n =
      d.state === 'master'
        ? [snap.sync.master?.messages ?? '', snap.sync.master?.conns ?? '']
        : [
            snap.sync.backup?.messages ?? '',
            Object.values(snap.sync.backup?.installed ?? {}).reduce((a: number, v) => a + (v ?? 0), 0),
          ];
    out.push(
      `<tr><td class="n">${esc(d.state)}</td><td>${esc(d.syncid)}</td><td>${esc(n[0])}</td><td>${esc(n[1])}</td></tr>`,
    );
  }
  out.push('</table>');
  return out.join('\n');
}

async function render(src: DirectorPageSource, url: URL, admin: boolean, res: ServerResponse): Promise<void> {
  const snap = (await src.snapshot()) as MetricsSnapshot;
  const tables = renderDirectorTables(snap, src.vrrpStates, admin, url.searchParams.get('msg') ?? undefined);
  const nonce = newNonce();
  res.writeHead(200, pageHeaders(nonce));
  if (url.searchParams.get('partial') === '1') {
    res.end(tables);
    return;
  }
  const meta =
    `pid ${process.pid} · ${snap.services.length} services · ${esc(snap.engine?.size ?? 0)} connections` +
    (admin ? ' · <b>admin mode</b>' : src.pageAdmin ? ' · <a href="/status/admin">admin</a>' : '');
  res.end(page(`tierlb director${admin ? ' (admin)' : ''}`, meta, tables, nonce));
}

/** Serve the page's routes; false for another path. */
export async function handleDirectorPage(
  req: IncomingMessage,
  res: ServerResponse,
  src: DirectorPageSource,
): Promise<boolean> {
  const url = new URL(req.url ?? '/', 'http://x');
  if (url.pathname === '/' || url.pathname === '/status') {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET' }).end('method not allowed\n');
      return true;
    }
    await render(src, url, false, res);
    return true;
  }
  if (url.pathname !== '/status/admin') return false;
  const admin = src.pageAdmin;
  if (!admin || !src.adm) {
    res.writeHead(404).end('admin mode is off (director.metrics.admin in the config)\n');
    return true;
  }
  if (!authorized(req, admin)) {
    req.resume();
    askCredentials(res, 'tierlb director admin');
    return true;
  }
  if (req.method === 'GET' || req.method === 'HEAD') {
    await render(src, url, true, res);
    return true;
  }
  if (req.method !== 'POST') {
    res.writeHead(405, { allow: 'GET, POST' }).end('method not allowed\n');
    return true;
  }
  if (!sameOrigin(req)) {
    req.resume();
    res.writeHead(403).end('cross-origin request refused\n');
    return true;
  }
  const form = await readForm(req);
  if (!form) {
    res.writeHead(400).end('expected a small application/x-www-form-urlencoded body\n');
    return true;
  }
  const service = form.get('service') ?? '';
  const server = form.get('server') ?? '';
  const weight = form.get('weight') ?? '';
  const snap = (await src.snapshot()) as MetricsSnapshot;
  const svc = snap.services.find((s) => s.service === service);
  const dest = svc?.dests.find((d) => hp(d.addr, d.port) === server);
  const sargs = serviceArgsOf(service);
  let msg: string;
  if (!svc || !dest || !sargs) msg = `${service} ${server}: no such real server`;
  else if (!/^\d{1,5}$/.test(weight) || Number(weight) > 65535) msg = `weight '${weight}': give 0..65535`;
  else {
    const r = await src.adm(['-e', ...sargs, '-r', server, FWD_FLAG[dest.fwd] ?? '-g', '-w', weight]);
    msg = r.code === 0 ? `${service} → ${server}: weight ${weight}` : `${service} → ${server}: ${r.stderr.trim()}`;
  }
  res.writeHead(303, { location: `/status/admin?msg=${encodeURIComponent(msg)}` }).end();
  return true;
}
