/**
 * The status page's routes on the listeners' stats address (beside /metrics):
 *   GET  / and /status        the page, read-only (`?partial=1`: the tables alone, what the page's script refreshes)
 *   GET  /status/admin        the page with the actions (HTTP Basic; 404 unless `stats.admin` is configured)
 *   POST /status/admin        an action: server=B/S, action=ready|drain|maint|weight, weight=N|N% (HTTP Basic,
 *                             form-encoded, same origin), then 303 back to the page
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
} from '../../common/status-page.js';
import { adminAction, type RuntimeHost } from '../runtime-api/commands.js';
import { renderTables } from './render.js';

export interface StatusPageOptions {
  host: RuntimeHost;
  admin?: AdminCredentials;
}

async function render(o: StatusPageOptions, url: URL, admin: boolean, res: ServerResponse): Promise<void> {
  const rows = await o.host.fullRows();
  const notice = url.searchParams.get('msg') ?? undefined;
  const tables = renderTables({
    rows,
    backends: o.host.backends(),
    proxies: o.host.proxies(),
    now: o.host.now(),
    admin,
    notice,
  });
  const nonce = newNonce();
  res.writeHead(200, pageHeaders(nonce));
  if (url.searchParams.get('partial') === '1') {
    res.end(tables);
    return;
  }
  const info = new Map(await o.host.info());
  const meta =
    `node ${esc(info.get('Node'))} · pid ${esc(info.get('Pid'))} · up ${esc(info.get('Uptime'))} · ` +
    `${esc(info.get('Nbthread'))} workers · ${esc(info.get('CurrConns'))} connections now, ${esc(info.get('CumConns'))} in all` +
    (admin ? ' · <b>admin mode</b>' : o.admin ? ' · <a href="/status/admin">admin</a>' : '');
  res.end(page(`tierlb listeners${admin ? ' (admin)' : ''}`, meta, tables, nonce));
}

/** Serve the page's routes; false when the request is for another path. */
export async function handleStatusPage(
  req: IncomingMessage,
  res: ServerResponse,
  o: StatusPageOptions,
): Promise<boolean> {
  const url = new URL(req.url ?? '/', 'http://x');
  const p = url.pathname;
  if (p === '/' || p === '/status') {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET' }).end('method not allowed\n');
      return true;
    }
    await render(o, url, false, res);
    return true;
  }
  if (p !== '/status/admin') return false;
  if (!o.admin) {
    res.writeHead(404).end('admin mode is off (stats.admin in the listeners config)\n');
    return true;
  }
  if (!authorized(req, o.admin)) {
    req.resume();
    askCredentials(res, 'tierlb listeners admin');
    return true;
  }
  if (req.method === 'GET' || req.method === 'HEAD') {
    await render(o, url, true, res);
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
  const server = form.get('server') ?? '';
  const action = form.get('action') ?? '';
  const err = adminAction(o.host, server, action, form.get('weight') ?? undefined);
  const msg = err
    ? `${server}: ${err}`
    : `${server}: ${action}${action === 'weight' ? ` ${form.get('weight')}` : ''} done`;
  res.writeHead(303, { location: `/status/admin?msg=${encodeURIComponent(msg)}` }).end();
  return true;
}
