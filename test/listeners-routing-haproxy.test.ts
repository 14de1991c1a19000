/**
 * The same routing run by a real haproxy 2.6 (acl, use_backend, http-request redirect/deny/set-header/add-header/
 * del-header, http-response set-header) and by `tierlb listeners` (groups, use_group, http_request, http_response):
 * a table of requests gets the same answers from both — status, Location, Cache-Control, body (which group's
 * server answered), the response's added field — and the backend sees the same edited request fields. Two framing
 * cases of issue 15 too: an absolute-form target naming another site (400) and HTTP/1.0 with Transfer-Encoding
 * (answered, then closed). Host conditions are given without a port here: haproxy's hdr(host) sees the port,
 * tierlb's host condition strips it (config/listeners.yaml).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import {
  freePort,
  type HttpBackend,
  httpBackend,
  type Running,
  request,
  startListeners,
  until,
} from './listeners-helpers.js';

const haveHaproxy = spawnSync('haproxy', ['-v']).status === 0;
let haproxy: ChildProcess;
let haLog = '';
let run: Running;
let dir: string;
const B: Record<string, HttpBackend> = {};
const P: Record<string, number> = {};

test.before(async () => {
  if (!haveHaproxy) throw new Error('haproxy is not installed (apt-get install haproxy); the interop tests need it');
  for (const k of ['ha', 'tierlb']) P[k] = await freePort();
  for (const n of ['a1', 'st1', 'sh1']) B[n] = await httpBackend(n);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tierlb-haproxy-routing-'));
  const cfg = path.join(dir, 'haproxy.cfg');
  fs.writeFileSync(
    cfg,
    `defaults
  mode http
  timeout connect 2s
  timeout client 5s
  timeout server 5s
frontend fe
  bind 127.0.0.1:${P.ha}
  http-request redirect scheme https code 301 if { hdr(host) -i secure.example.com } !{ ssl_fc }
  http-request redirect location https://example.com/new code 302 if { path /old }
  http-request redirect prefix https://new.example.com code 308 if { hdr(host) -i old.example.com }
  http-request redirect prefix / code 303 drop-query if { path_beg /q }
  http-request deny deny_status 403 if { path_beg /admin } !{ src 10.0.0.0/8 }
  http-request set-header X-Env prod
  http-request add-header X-Via tierlb
  http-request del-header X-Internal
  http-request set-header X-Real-IP %[src]
  http-response set-header X-Frame-Options DENY
  use_backend api if { hdr(host) -i api.example.com } { path_beg /v1 }
  use_backend api if { hdr_end(host) -i .api.example.com } { path_beg /v1 }
  use_backend shared if { hdr(x-shared) yes }
  use_backend api if { path_reg ^/u/[0-9]+$ }
  use_backend api if { method POST } { path_end .json }
  default_backend static
backend api
  server a1 ${B.a1!.address}
backend static
  server st1 ${B.st1!.address}
backend shared
  server sh1 ${B.sh1!.address}
`,
  );
  haproxy = spawn('haproxy', ['-f', cfg, '-db'], { stdio: ['ignore', 'pipe', 'pipe'] });
  haproxy.stdout!.on('data', (d) => (haLog += d));
  haproxy.stderr!.on('data', (d) => (haLog += d));
  run = await startListeners(`listeners:
  workers: 2
  stats: { enabled: false }
  listen:
    - name: fe
      bind: 127.0.0.1:${P.tierlb}
      mode: http
      groups:
        - { name: api, servers: [ { name: a1, address: ${B.a1!.address} } ] }
        - { name: static, servers: [ { name: st1, address: ${B.st1!.address} } ] }
        - { name: shared, servers: [ { name: sh1, address: ${B.sh1!.address} } ] }
      default_group: static
      http_request:
        - { redirect: { scheme: https, code: 301 }, if: { host: [secure.example.com], tls: false } }
        - { redirect: { location: "https://example.com/new", code: 302 }, if: { path: [/old] } }
        - { redirect: { prefix: "https://new.example.com", code: 308 }, if: { host: [old.example.com] } }
        - { redirect: { prefix: /, code: 303, drop_query: true }, if: { path_prefix: [/q] } }
        - { deny: 403, if: { path_prefix: [/admin] }, unless: { src: [10.0.0.0/8] } }
        - { set_header: { name: X-Env, value: prod } }
        - { add_header: { name: X-Via, value: tierlb } }
        - { del_header: X-Internal }
        - { set_header: { name: X-Real-IP, value: "%[src]" } }
      http_response:
        - { set_header: { name: X-Frame-Options, value: DENY } }
      use_group:
        - { group: api, if: { host: [api.example.com], path_prefix: [/v1] } }
        - { group: api, if: { host: [.api.example.com], path_prefix: [/v1] } }
        - { group: shared, if: { header: { name: X-Shared, exact: ["yes"] } } }
        - { group: api, if: { path_regex: ["^/u/[0-9]+$"] } }
        - { group: api, if: { method: [POST], path_suffix: [.json] } }
`);
  const accepting = () =>
    new Promise<boolean>((resolve) => {
      const s = net.connect(P.ha!, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
  if (!(await until(accepting, 5000))) throw new Error(`haproxy did not start listening:\n${haLog}`);
});

test.after.always(async () => {
  await run?.stop();
  haproxy?.kill('SIGTERM');
  for (const b of Object.values(B)) await b.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

interface Case {
  path: string;
  method?: string;
  headers?: Record<string, string>;
}

const CASES: Case[] = [
  { path: '/' },
  { path: '/v1/users', headers: { host: 'api.example.com' } },
  { path: '/v1/users', headers: { host: 'API.Example.com' } },
  { path: '/v2/users', headers: { host: 'api.example.com' } },
  { path: '/v1/x', headers: { host: 'eu.api.example.com' } },
  { path: '/v1/x', headers: { host: 'a.b.api.example.com' } },
  { path: '/v1/x', headers: { host: 'xapi.example.com' } },
  { path: '/anything', headers: { 'x-shared': 'yes' } },
  { path: '/anything', headers: { 'x-shared': 'no' } },
  { path: '/u/42' },
  { path: '/u/x' },
  { path: '/data.json', method: 'POST' },
  { path: '/data.json' },
  { path: '/p/a?q=1', headers: { host: 'secure.example.com' } },
  { path: '/old' },
  { path: '/old/' },
  { path: '/a/b?c=d', headers: { host: 'old.example.com' } },
  { path: '/q/z?y=1' },
  { path: '/admin/users' },
  { path: '/administrator' },
  { path: '/h', headers: { 'x-env': 'dev', 'x-via': 'client', 'x-internal': 'secret', 'x-real-ip': '1.2.3.4' } },
];

/** what a client and the backend saw of one request */
async function outcome(port: number, c: Case) {
  for (const b of Object.values(B)) b.lastHeaders = undefined;
  const r = await request(`http://127.0.0.1:${port}${c.path}`, { method: c.method, headers: c.headers });
  const seen = Object.values(B).find((b) => b.lastHeaders)?.lastHeaders;
  return {
    status: r.status,
    location: r.headers.location,
    cacheControl: r.headers['cache-control'],
    contentLength: r.status >= 300 && r.status < 400 ? r.headers['content-length'] : undefined,
    body: r.body,
    frameOptions: r.headers['x-frame-options'],
    backend: seen && {
      env: seen['x-env'],
      via: seen['x-via'],
      internal: seen['x-internal'],
      realIp: seen['x-real-ip'],
    },
  };
}

test.serial('haproxy 2.6 and tierlb answer a table of requests alike', async (t) => {
  const statuses = new Set<number>();
  const bodies = new Set<string>();
  for (const c of CASES) {
    const ha = await outcome(P.ha!, c);
    const ours = await outcome(P.tierlb!, c);
    t.deepEqual(ours, ha, `${c.method ?? 'GET'} ${c.path} ${JSON.stringify(c.headers ?? {})}`);
    statuses.add(ours.status);
    if (ours.status === 200) bodies.add(ours.body);
  }
  // the table exercises every kind of answer and every group
  t.deepEqual([...statuses].sort(), [200, 301, 302, 303, 308, 403]);
  t.deepEqual([...bodies].sort(), ['a1', 'sh1', 'st1']);
});

/** raw bytes in, the answer's status (0: none) and whether the proxy closed the connection after it */
function raw(port: number, data: string, follow?: string): Promise<{ status: number; closed: boolean }> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let buf = '';
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      s.destroy();
      resolve({ status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(buf)?.[1] ?? 0), closed });
    };
    s.on('data', (d) => {
      buf += d.toString('latin1');
      if (follow && buf.includes('\r\n\r\n')) {
        s.write(follow);
        follow = undefined;
      }
    });
    s.on('end', () => finish(true));
    s.on('error', () => finish(true));
    s.setTimeout(2000, () => finish(false));
    s.write(data);
  });
}

test.serial('framing: absolute-form with another authority, HTTP/1.0 with Transfer-Encoding', async (t) => {
  const abs = 'GET http://other.example/abs HTTP/1.1\r\nHost: x\r\n\r\n';
  t.deepEqual(await raw(P.tierlb!, abs), await raw(P.ha!, abs));
  t.is((await raw(P.tierlb!, abs)).status, 400);
  const same = 'GET http://x/abs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n';
  t.deepEqual(await raw(P.tierlb!, same), await raw(P.ha!, same));
  const te =
    'POST /te HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n';
  const next = 'GET / HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n';
  const ours = await raw(P.tierlb!, te, next);
  t.deepEqual(ours, await raw(P.ha!, te, next));
  t.deepEqual(ours, { status: 200, closed: true });
});
