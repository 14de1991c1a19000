/**
 * The status pages without a browser: what comes from the config is escaped, the admin mode is off unless
 * configured, a wrong password is refused, a cross-site post is refused, an action changes the state.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import test from 'ava';
import { ManualClock } from '../src/common/clock.js';
import { esc, sameOrigin } from '../src/common/status-page.js';
import { renderDirectorTables, serviceArgsOf } from '../src/director/status-page.js';
import type { MetricsSnapshot } from '../src/director/worker-ha.js';
import { loadListenersConfigString, proxyInfo } from '../src/listeners/config.js';
import '../src/listeners/config-schema.js';
import { Pool } from '../src/listeners/pool.js';
import type { RuntimeHost } from '../src/listeners/runtime-api/commands.js';
import { fullRows, Rates } from '../src/listeners/runtime-api/show-stat.js';
import { statRows } from '../src/listeners/stats.js';
import { handleStatusPage } from '../src/listeners/status-page/http.js';
import { renderTables } from '../src/listeners/status-page/render.js';

const EVIL = '<script>alert(1)</script>';

function host(): { host: RuntimeHost; pool: Pool; changes: string[] } {
  const cfg = loadListenersConfigString(`listeners:
  workers: 1
  listen:
    - name: web
      bind: 127.0.0.1:1
      mode: http
      check: { type: http, uri: "/h?${EVIL}" }
      servers:
        - { name: a, address: 127.0.0.1:2 }
        - { name: b, address: 127.0.0.1:3 }
`);
  const clock = new ManualClock(1_000_000);
  const pool = new Pool(cfg.listeners[0]!, clock);
  // a name the schema refuses still renders as text (the renderer trusts nothing)
  (pool.servers[1]!.spec as { name: string }).name = EVIL;
  const changes: string[] = [];
  const rates = new Rates();
  const PROXIES = proxyInfo(cfg.listeners);
  const h: RuntimeHost = {
    backends: () => [pool],
    proxies: () => PROXIES,
    now: () => clock.now(),
    changed: (_p, s, why) => changes.push(`${s.name} ${why}`),
    fullRows: async () =>
      fullRows({
        pools: [pool],
        rows: statRows([pool], {}, clock.now(), () => true),
        now: clock.now(),
        pid: 1,
        rates,
        proxies: PROXIES,
      }),
    info: async () => [
      ['Node', `n${EVIL}`],
      ['Pid', 1],
    ],
  };
  return { host: h, pool, changes };
}

test('esc and the renderers: config values are text, never markup', async (t) => {
  t.is(esc(`"'<>&\``), '&quot;&#39;&lt;&gt;&amp;&#96;');
  const { host: h } = host();
  const html = renderTables({
    rows: await h.fullRows(),
    backends: h.backends(),
    proxies: h.proxies(),
    now: h.now(),
    admin: true,
  });
  t.false(html.includes('<script'));
  t.true(html.includes('&lt;script&gt;alert(1)&lt;/script&gt;'));
  t.regex(html, /data-server="web\/&lt;script&gt;/);
  const snap = {
    services: [
      {
        service: 'TCP 10.0.0.1:80',
        stats: { conns: 1, cps: 0, inpps: 0, outpps: 0, inbps: 0, outbps: 0, inbytes: 0, outbytes: 0 },
        dests: [
          {
            addr: '10.0.1.1',
            port: 80,
            fwd: 'route',
            weight: 2,
            activeConns: 1,
            inactConns: 0,
            stats: { conns: 1, cps: 0, inpps: 0, outpps: 0, inbps: 0, outbps: 0, inbytes: 0, outbytes: 0 },
          },
        ],
      },
    ],
    counters: { packets: 0, passed: 0, dropped: 0, forwarded: {}, bad: {} },
    sync: { daemons: [] },
  } as unknown as MetricsSnapshot;
  const d = renderDirectorTables(snap, new Map([[EVIL, { state: 'MASTER', vrid: 51, priority: 100 }]]), true);
  t.false(d.includes('<script'));
  t.regex(d, /data-server="10\.0\.1\.1:80" data-weight="2"/);
  t.deepEqual(serviceArgsOf('TCP 10.0.0.1:80'), ['-t', '10.0.0.1:80']);
  t.deepEqual(serviceArgsOf('FWM 3 IPv6'), ['-f', '3', '-6']);
  t.is(serviceArgsOf('TCP 1.2.3.4:5; rm -rf'), undefined);
});

test('sameOrigin: Origin, then Sec-Fetch-Site, then Referer', (t) => {
  const req = (h: Record<string, string>) =>
    ({ headers: { host: 'lb:9101', ...h } }) as unknown as http.IncomingMessage;
  t.true(sameOrigin(req({ origin: 'http://lb:9101' })));
  t.false(sameOrigin(req({ origin: 'http://evil.example' })));
  t.false(sameOrigin(req({ origin: 'null' })));
  t.true(sameOrigin(req({ 'sec-fetch-site': 'same-origin' })));
  t.false(sameOrigin(req({ 'sec-fetch-site': 'cross-site' })));
  t.true(sameOrigin(req({ referer: 'http://lb:9101/status/admin' })));
  t.false(sameOrigin(req({})));
});

test('the listeners page over HTTP: read-only by default, 401 on a wrong password, 403 cross-site, an action applies', async (t) => {
  const { host: h, pool, changes } = host();
  let admin: { user: string; password: string } | undefined;
  const server = http.createServer(async (req, res) => {
    if (!(await handleStatusPage(req, res, { host: h, admin }))) res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => server.close());
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const page = await fetch(`${base}/status`);
  t.is(page.status, 200);
  const body = await page.text();
  t.false(body.includes('<script>alert'));
  t.false(body.includes('name="action"'), 'no actions without admin mode');
  // the one script runs by its nonce, which the policy alone allows
  const nonce = /script-src 'nonce-([^']+)'/.exec(page.headers.get('content-security-policy') ?? '')?.[1];
  t.truthy(nonce);
  t.is(body.match(/<script/g)?.length, 1);
  t.true(body.includes(`<script nonce="${nonce}">`));
  t.is((await fetch(`${base}/status/admin`)).status, 404, 'admin mode is off by default');
  admin = { user: 'ops', password: 'pw' };
  const auth = (p: string) => `Basic ${Buffer.from(p).toString('base64')}`;
  t.is((await fetch(`${base}/status/admin`, { headers: { authorization: auth('ops:wrong') } })).status, 401);
  t.is((await fetch(`${base}/status/admin`)).status, 401);
  const ok = await fetch(`${base}/status/admin`, { headers: { authorization: auth('ops:pw') } });
  t.is(ok.status, 200);
  t.regex(await ok.text(), /data-action="drain"/);
  const post = (headers: Record<string, string>, form: string) =>
    fetch(`${base}/status/admin`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      body: form,
    });
  const cross = await post(
    { authorization: auth('ops:pw'), origin: 'http://evil.example' },
    'server=web/a&action=drain',
  );
  t.is(cross.status, 403);
  t.is(pool.servers[0]!.admin, 'ready');
  t.is((await post({ origin: base }, 'server=web/a&action=drain')).status, 401, 'a post needs the password too');
  const done = await post({ authorization: auth('ops:pw'), origin: base }, 'server=web/a&action=drain');
  t.is(done.status, 303);
  t.is(pool.servers[0]!.admin, 'drain');
  t.deepEqual(changes, ['a status page: state drain']);
  const w = await post({ authorization: auth('ops:pw'), origin: base }, 'server=web/a&action=weight&weight=9');
  t.is(w.status, 303);
  t.is(pool.servers[0]!.uweight, 9);
  const bad = await post({ authorization: auth('ops:pw'), origin: base }, 'server=web/a;reload&action=maint');
  t.regex(decodeURIComponent(bad.headers.get('location') ?? ''), /No such server/);
  t.is(pool.servers[0]!.admin, 'drain');
});
