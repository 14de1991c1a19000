/**
 * What both daemons' status pages share (plain server-rendered HTML, no build step): escaping, the page around the
 * tables with its small refresh script, HTTP Basic for the admin mode, and the CSRF guard of its actions (POST
 * only, form-encoded, from the page's own origin).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

/** Text for HTML (element content and quoted attribute values). */
export function esc(v: unknown): string {
  return String(v ?? '').replace(
    /[&<>"'`]/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;', '`': '&#96;' })[c]!,
  );
}

export interface AdminCredentials {
  user: string;
  password: string;
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/** HTTP Basic against the configured user and password (compared in constant time). */
export function authorized(req: IncomingMessage, admin: AdminCredentials): boolean {
  const m = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(req.headers.authorization ?? '');
  if (!m) return false;
  const got = Buffer.from(m[1]!, 'base64').toString('utf8');
  return timingSafeEqual(digest(got), digest(`${admin.user}:${admin.password}`));
}

export function askCredentials(res: ServerResponse, realm: string): void {
  res.writeHead(401, {
    'www-authenticate': `Basic realm="${realm.replace(/["\\]/g, '')}", charset="UTF-8"`,
    'content-type': 'text/plain; charset=utf-8',
  });
  res.end('authentication required\n');
}

/**
 * A state-changing request comes from this page: its Origin (or, without one, its Referer) is this server's
 * own, or the browser says it is same-origin. A cross-site form post carries the admin's Basic credentials
 * too, so this is what stops it.
 */
export function sameOrigin(req: IncomingMessage): boolean {
  const host = req.headers.host;
  if (!host) return false;
  const self = new Set([`http://${host}`, `https://${host}`]);
  const origin = req.headers.origin;
  if (origin !== undefined) return self.has(origin);
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined) return site === 'same-origin';
  const ref = req.headers.referer;
  if (!ref) return false;
  try {
    return self.has(new URL(ref).origin);
  } catch {
    return false;
  }
}

/** A form-encoded body of at most `max` bytes (undefined: too big or another type). */
export function readForm(req: IncomingMessage, max = 4096): Promise<URLSearchParams | undefined> {
  return new Promise((resolve) => {
    if (!/^application\/x-www-form-urlencoded\b/i.test(req.headers['content-type'] ?? '')) {
      req.resume();
      resolve(undefined);
      return;
    }
    let body = '';
    let over = false;
    req.setEncoding('utf8');
    req.on('data', (d: string) => {
      if (over) return;
      body += d;
      if (body.length > max) over = true;
    });
    req.on('end', () => resolve(over ? undefined : new URLSearchParams(body)));
    req.on('error', () => resolve(undefined));
  });
}

const CSS = `body{font:13px/1.4 system-ui,sans-serif;margin:1em;color:#222;background:#fff}
h1{font-size:18px;margin:0 0 .3em}h2{font-size:15px;margin:1.2em 0 .3em}.meta{color:#555}
table{border-collapse:collapse;margin-bottom:.5em}th,td{border:1px solid #bbb;padding:2px 6px;text-align:right}
th{background:#dde}td.n{text-align:left;font-weight:600}tr.fe td,tr.be td{background:#eef}
.UP,.no.check,.OPEN,.MASTER,.ok{background:#c6efc6}.DOWN,.FAULT,.bad{background:#f5b5b5}
.DRAIN,.NOLB,.BACKUP{background:#ffe08a}.MAINT{background:#b9c7ff}.INIT{background:#ddd}
form{display:inline;margin:0}button{font-size:12px;margin:0 1px}input.w{width:3.5em}`;

/**
 * The page: a title, a meta line, the tables (`#tables`, refreshed every `refreshMs` by fetching `?partial=1`,
 * unless a form field has the focus). Its one script carries a fresh nonce that the Content-Security-Policy of
 * pageHeaders() alone allows: nothing else on the page can run, escaped or not.
 */
export function page(title: string, meta: string, tables: string, nonce: string, refreshMs = 2000): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<meta name="viewport" content="width=device-width"><style>${CSS}</style></head>
<body><h1>${esc(title)}</h1><div class="meta" id="meta">${meta}</div><div id="tables">${tables}</div>
<script nonce="${esc(nonce)}">
setInterval(async () => {
  const a = document.activeElement;
  if (a && (a.tagName === 'INPUT' || a.tagName === 'BUTTON')) return;
  try {
    const r = await fetch(location.pathname + '?partial=1', { credentials: 'same-origin', cache: 'no-store' });
    if (r.ok) document.getElementById('tables').innerHTML = await r.text();
  } catch {}
}, ${Math.max(500, refreshMs)});
</script></body></html>
`;
}

export function newNonce(): string {
  return randomBytes(16).toString('base64');
}

/** A page's response headers: no caching, no framing, only its own nonce'd script, forms only to itself. */
export function pageHeaders(nonce: string): Record<string, string> {
  return {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    'x-frame-options': 'DENY',
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'same-origin',
    'content-security-policy': `default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-${nonce}'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'`,
  };
}
