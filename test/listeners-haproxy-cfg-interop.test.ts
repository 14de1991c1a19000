/**
 * The same haproxy.cfg run by a real haproxy (Debian's 2.6) and by `tierlb listeners --haproxy`, side by side on
 * loopback: one file, its ports taken from environment variables in quotes (which both read), the same recording
 * backends behind both. A table of requests must be answered identically: status, the backend that answered,
 * the redirect's Location, the response headers the rules set or delete, and the request headers the backend saw.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { controlRequest } from '../src/listeners/control.js';
import { BOTH, runBoth, type SideBySide, uniquePort, type Who } from './listeners-haproxy-cfg-helpers.js';

const haveHaproxy = spawnSync('haproxy', ['-v']).status === 0;

const CFG = `# one file for haproxy and tierlb: the ports come from the environment
global
    nbthread 1
    stats socket "\${CTL}"

defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s
    timeout http-request 5s

listen stats
    bind "127.0.0.1:\${STATS}"
    stats enable
    stats uri /stats

frontend www
    bind "127.0.0.1:\${FRONT}"
    acl is_api hdr(host) -i api.example.com
    acl api_path path_beg /api/ /v1/
    acl admin path_beg /admin
    acl internal src 10.0.0.0/8 192.168.0.0/16
    acl old_host hdr(host) -i old.example.com
    acl static path_end -i .css .js
    acl static path_reg ^/assets/[a-z]+/
    acl is_post method POST
    acl canary hdr(X-Canary) 1
    http-request deny deny_status 403 if admin !internal
    http-request redirect location https://example.com/moved code 301 if { path /old }
    http-request redirect prefix https://new.example.com code 308 if old_host
    http-request set-header X-Env prod
    http-request add-header X-Via "tierlb 1.0"
    http-request del-header X-Internal
    http-request deny if { hdr_beg(user-agent) -i badbot }
    http-response set-header X-Frame-Options DENY
    http-response del-header X-Powered-By
    acl server_error status ge 500
    http-response set-header Cache-Control no-store if { status 404 } || server_error
    redirect scheme https code 301 if { hdr(host) -i secure.example.com } !{ ssl_fc }
    use_backend api if is_api || api_path
    use_backend api if canary METH_GET
    use_backend static if static !is_post
    default_backend web

# only redirects: what they leave gets 503 (no backend)
frontend plain
    bind "127.0.0.1:\${PLAIN}"
    http-request redirect scheme https code 302 if { path_beg /login }
    http-request redirect prefix https://www.example.com drop-query if { path_beg /shop }

backend api
    balance roundrobin
    server a1 "127.0.0.1:\${API1}"
    server a2 "127.0.0.1:\${API2}"

backend static
    server s1 "127.0.0.1:\${STATIC1}"

backend web
    balance leastconn
    server w1 "127.0.0.1:\${WEB1}"
`;

/** [method, path, request headers, frontend] */
const TABLE: [string, string, Record<string, string>, ('www' | 'plain')?][] = [
  ['GET', '/login?next=/a', { host: 'shop.example.com' }, 'plain'],
  ['GET', '/other', { host: 'shop.example.com' }, 'plain'],
  ['GET', '/shop/cart?id=7', { host: 'shop.example.com' }, 'plain'],
  ['GET', '/', { host: 'www.example.com', 'x-internal': 'secret' }],
  ['GET', '/api/users', { host: 'www.example.com' }],
  ['GET', '/', { host: 'api.example.com' }],
  ['GET', '/', { host: 'API.Example.COM' }],
  ['GET', '/style.css', { host: 'www.example.com' }],
  ['GET', '/STYLE.CSS', { host: 'www.example.com' }],
  ['POST', '/style.css', { host: 'www.example.com' }],
  ['GET', '/assets/img/x.png', { host: 'www.example.com' }],
  ['GET', '/assets/IMG/x.png', { host: 'www.example.com' }],
  ['GET', '/admin/panel', { host: 'www.example.com' }],
  ['GET', '/old', { host: 'www.example.com' }],
  ['GET', '/oldx', { host: 'www.example.com' }],
  ['GET', '/x?y=1', { host: 'old.example.com' }],
  ['GET', '/p?q=2', { host: 'secure.example.com' }],
  ['GET', '/', { host: 'www.example.com', 'user-agent': 'BadBot/1.0' }],
  ['GET', '/', { host: 'www.example.com', 'user-agent': 'curl/8' }],
  ['GET', '/v2/x', { host: 'www.example.com', 'x-canary': '1' }],
  ['HEAD', '/', { host: 'www.example.com', 'x-canary': '1' }],
  ['GET', '/', { host: 'www.example.com', 'x-canary': '2' }],
  ['DELETE', '/', { host: 'www.example.com', 'x-canary': '1' }],
  ['GET', '/', { host: 'www.example.com', 'x-env': 'dev', 'x-via': 'client' }],
  ['GET', '/missing', { host: 'www.example.com' }],
  ['GET', '/broken', { host: 'www.example.com' }],
];

interface Recorder {
  server: http.Server;
  port: number;
}

/** A backend server that says which backend it belongs to and which of the rules' headers it was sent. */
async function recorder(backend: string, name: string): Promise<Recorder> {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const seen = {
        backend,
        server: name,
        'x-env': req.headers['x-env'] ?? null,
        'x-via': req.headers['x-via'] ?? null,
        'x-internal': req.headers['x-internal'] ?? null,
      };
      const code = req.url?.startsWith('/missing') ? 404 : req.url?.startsWith('/broken') ? 502 : 200;
      res.writeHead(code, {
        'content-type': 'application/json',
        'x-backend': backend,
        'x-powered-by': 'recorder',
        'x-frame-options': 'SAMEORIGIN',
      });
      res.end(JSON.stringify(seen));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { server, port: (server.address() as net.AddressInfo).port };
}

function ask(port: number, method: string, p: string, headers: Record<string, string>) {
  return new Promise<Record<string, unknown>>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: p, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => {
        let seen: unknown = null;
        if (res.statusCode === 200 && body) seen = JSON.parse(body);
        resolve({
          status: res.statusCode,
          backend: res.headers['x-backend'] ?? null,
          location: res.headers.location ?? null,
          'x-frame-options': res.headers['x-frame-options'] ?? null,
          'x-powered-by': res.headers['x-powered-by'] ?? null,
          'cache-control': res.headers['cache-control'] ?? null,
          seen,
        });
      });
    });
    req.setTimeout(10_000, () => req.destroy(new Error('client timeout')));
    req.on('error', reject);
    req.end();
  });
}

let both: SideBySide | undefined;
const recorders: Recorder[] = [];
let dir = '';
const FRONT = { haproxy: 0, tierlb: 0 };
const PLAIN = { haproxy: 0, tierlb: 0 };

test.before(async () => {
  // CI installs haproxy: without it this interop test fails rather than passing as skipped
  if (!haveHaproxy) throw new Error('haproxy is not installed (apt-get install haproxy); the interop test needs it');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tierlb-hacfg-'));
  const cfg = path.join(dir, 'haproxy.cfg');
  fs.writeFileSync(cfg, CFG);
  const backends: Record<string, string> = {};
  for (const [b, s, k] of [
    ['api', 'a1', 'API1'],
    ['api', 'a2', 'API2'],
    ['static', 's1', 'STATIC1'],
    ['web', 'w1', 'WEB1'],
  ]) {
    const r = await recorder(b, s);
    recorders.push(r);
    backends[k] = String(r.port);
  }
  const ports: Record<Who, Record<string, string>> = { haproxy: {}, tierlb: {} };
  for (const who of BOTH) {
    FRONT[who] = await uniquePort();
    PLAIN[who] = await uniquePort();
    ports[who] = {
      FRONT: String(FRONT[who]),
      PLAIN: String(PLAIN[who]),
      STATS: String(await uniquePort()),
      CTL: path.join(dir, `${who}.sock`),
    };
  }
  both = await runBoth(
    cfg,
    (who) => ({ ...backends, ...ports[who] }),
    (who) => [FRONT[who], PLAIN[who]],
  );
});

test.after.always(async () => {
  await both?.stop();
  for (const r of recorders) r.server.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

test.serial('haproxy 2.6 and tierlb --haproxy answer the request table identically', async (t) => {
  const rows: string[] = [];
  let differ = 0;
  for (const [method, p, headers, front] of TABLE) {
    const port = front === 'plain' ? PLAIN : FRONT;
    const ha = await ask(port.haproxy, method, p, headers);
    const us = await ask(port.tierlb, method, p, headers);
    // which server of a backend answered is the balancer's choice: the backend is what the rules decide
    for (const r of [ha, us]) if (r.seen) (r.seen as Record<string, unknown>).server = undefined;
    const same = JSON.stringify(ha) === JSON.stringify(us);
    if (!same) differ++;
    rows.push(
      `${same ? 'same' : 'DIFF'} ${method} ${headers.host}${p}: haproxy ${JSON.stringify(ha)}${same ? '' : ` tierlb ${JSON.stringify(us)}`}`,
    );
  }
  t.log(rows.join('\n'));
  t.is(differ, 0, rows.filter((r) => r.startsWith('DIFF')).join('\n'));
  // the table is not trivially uniform: every backend, a deny, and each kind of redirect appear
  const all = await Promise.all(TABLE.map(([m, p, h, f]) => ask((f === 'plain' ? PLAIN : FRONT).tierlb, m, p, h)));
  t.deepEqual(
    [...new Set(all.map((r) => r.backend ?? r.status))].sort(),
    [301, 302, 308, 403, 503, 'api', 'static', 'web'].sort(),
  );
});

test.serial(
  'reload re-reads the haproxy.cfg (stats socket = the control socket); a refused one keeps the running plan',
  async (t) => {
    const cfg = path.join(dir, 'haproxy.cfg');
    const ctl = path.join(dir, 'tierlb.sock');
    const before = await ask(FRONT.tierlb, 'GET', '/', { host: 'www.example.com' });
    t.is(before.backend, 'web');
    fs.writeFileSync(cfg, CFG.replace('default_backend web', 'default_backend static'));
    t.regex(await controlRequest(ctl, 'reload'), /^ok/);
    const after = await ask(FRONT.tierlb, 'GET', '/', { host: 'www.example.com' });
    t.is(after.backend, 'static');
    fs.writeFileSync(cfg, CFG.replace('default_backend web', 'default_backend nosuch'));
    const refused = await controlRequest(ctl, 'reload');
    t.regex(refused, /haproxy\.cfg:\d+:5: no backend named 'nosuch'/);
    t.is((await ask(FRONT.tierlb, 'GET', '/', { host: 'www.example.com' })).backend, 'static');
  },
);
