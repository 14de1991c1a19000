/**
 * Routing through the real `tierlb listeners` (primary + 2 workers): requests land on the group their host, path
 * and header say; each group balances with its own algorithm and checks its own servers; redirects and denies are
 * exact; request header edits reach a recording backend and response edits the client; the stats have a BACKEND
 * row per group and /metrics a tierlb_group_* series per group; a group is shared by two listeners; a tcp
 * listener picks its group by the client's address. (HTTP/2 requests route through the same code path,
 * src/listeners/worker/route-request.ts, from a RequestView of method, path, host and headers.)
 */
import http from 'node:http';
import net from 'node:net';
import test from 'ava';
import {
  freePort,
  type HttpBackend,
  httpBackend,
  type Running,
  request,
  startListeners,
  type TcpBackend,
  tcpBackend,
  until,
} from './listeners-helpers.js';

let run: Running;
const P: Record<string, number> = {};
const B: Record<string, HttpBackend> = {};
const T: Record<string, TcpBackend> = {};
/** answers the listener gave itself, counted as the test makes them */
let redirects = 0;
let denies = 0;
let yaml = '';

test.before(async () => {
  for (const l of ['front', 'front2', 'plain', 'same', 'tcpf', 'stats']) P[l] = await freePort();
  for (const n of ['a1', 'a2', 'st1', 'st2', 'sh1', 'k1', 'p1']) B[n] = await httpBackend(n);
  B.k1!.healthy = false;
  T.local = await tcpBackend('local', '127.0.0.1', { greet: true });
  T.other = await tcpBackend('other', '127.0.0.1', { greet: true });
  const srv = (n: string) => `{ name: ${n}, address: ${B[n]!.address} }`;
  yaml = `listeners:
  workers: 2
  stats: { bind: 127.0.0.1:${P.stats} }
  groups:
    - name: shared
      servers: [ ${srv('sh1')} ]
    - name: same
      servers: [ ${srv('p1')} ]
  listen:
    - name: front
      bind: 127.0.0.1:${P.front}
      mode: http
      groups:
        - name: api
          balance: roundrobin
          servers: [ ${srv('a1')}, ${srv('a2')} ]
        - name: static
          balance: first
          servers: [ ${srv('st1')}, ${srv('st2')} ]
        - name: sick
          check: { type: http, uri: /health, inter: 200ms, fall: 1, rise: 1 }
          servers: [ ${srv('k1')} ]
      default_group: static
      http_request:
        - { redirect: { scheme: https, code: 301 }, if: { host: [secure.example.com], tls: false } }
        - { redirect: { location: "https://example.com/new", code: 302 }, if: { path: [/old] } }
        - { redirect: { prefix: "https://new.example.com", code: 308 }, if: { host: [old.example.com] } }
        - { deny: 403, if: { path_prefix: [/admin] }, unless: { src: [10.0.0.0/8] } }
        - { deny: 429, if: { path_prefix: [/internal] }, unless: { src: [127.0.0.0/8] } }
        - { set_header: { name: X-Env, value: prod } }
        - { add_header: { name: X-Via, value: tierlb } }
        - { del_header: X-Internal }
        - { set_header: { name: X-Client, value: "%[src] via %[hdr(host)]" } }
      use_group:
        - { group: api, if: { host: [api.example.com, "*.api.example.com"], path_prefix: [/v1] } }
        - { group: shared, if: { header: { name: X-Shared, exact: ["yes"] } } }
        - { group: sick, if: { path_prefix: [/sick] } }
        - { group: api, if: { path_regex: ["^/u/[0-9]+$"] } }
      http_response:
        - { set_header: { name: X-Frame-Options, value: DENY } }
        - { del_header: X-Server, if: { path_prefix: [/hide] } }
        - { add_header: { name: X-Answer, value: fine }, if: { status: [2xx] } }
        - { add_header: { name: X-Answer, value: odd }, if: { not: { status: [2xx] } } }
    - name: front2
      bind: 127.0.0.1:${P.front2}
      mode: http
      default_group: shared
    - name: plain
      bind: 127.0.0.1:${P.plain}
      mode: http
      servers: [ ${srv('p1')} ]
    - name: same
      bind: 127.0.0.1:${P.same}
      mode: http
      default_group: same
    - name: tcpf
      bind: 127.0.0.1:${P.tcpf}
      groups:
        - name: tcp-local
          servers: [ { name: tl, address: ${T.local.address} } ]
        - name: tcp-other
          servers: [ { name: to, address: ${T.other.address} } ]
      default_group: tcp-other
      use_group:
        - { group: tcp-local, if: { src: [127.0.0.0/8] } }
`;
  run = await startListeners(yaml);
});

test.after.always(async () => {
  await run?.stop();
  for (const b of Object.values(B)) await b.close();
  for (const b of Object.values(T)) await b.close();
});

const get = (path: string, headers: Record<string, string> = {}, port = P.front!) =>
  request(`http://127.0.0.1:${port}${path}`, { headers });

test.serial('requests land on the group their host, path and header say', async (t) => {
  const on = async (path: string, headers: Record<string, string> = {}) => (await get(path, headers)).body;
  t.is(await on('/'), 'st1', 'default group');
  t.regex(await on('/v1/users', { host: 'api.example.com' }), /^a[12]$/);
  t.regex(await on('/v1/users', { host: 'API.example.com:8080' }), /^a[12]$/, 'host: case and port ignored');
  t.regex(await on('/v1/x', { host: 'eu.api.example.com' }), /^a[12]$/, 'wildcard host');
  t.is(await on('/v2/users', { host: 'api.example.com' }), 'st1', 'host matches, path does not');
  t.is(await on('/v1/x', { host: 'eu.west.api.example.com' }), 'st1', '* is one label');
  t.is(await on('/anything', { 'x-shared': 'yes' }), 'sh1', 'header');
  t.is(await on('/anything', { 'x-shared': 'no' }), 'st1');
  t.regex(await on('/u/42'), /^a[12]$/, 'path regex');
  t.is(await on('/u/x'), 'st1');
  // a file-level group, used by two listeners
  t.is((await get('/', {}, P.front2)).body, 'sh1');
  // a listener in the one-group form is unchanged
  t.is((await get('/', {}, P.plain)).body, 'p1');
});

test.serial('each group balances with its own algorithm: api roundrobin, static first', async (t) => {
  const api: string[] = [];
  const stat: string[] = [];
  for (let i = 0; i < 6; i++) {
    api.push((await get('/v1/x', { host: 'api.example.com' })).body);
    stat.push((await get('/s')).body);
  }
  t.deepEqual(api.filter((b) => b === 'a1').length, 3, api.join(' '));
  t.deepEqual(stat, ['st1', 'st1', 'st1', 'st1', 'st1', 'st1']);
});

test.serial('redirects: exact status and Location, nothing reaches a server', async (t) => {
  const hits = () => Object.values(B).reduce((n, b) => n + b.hits, 0);
  const before = hits();
  const scheme = await get('/p/a?q=1', { host: 'secure.example.com:8080' });
  t.is(scheme.status, 301);
  t.is(scheme.headers.location, 'https://secure.example.com:8080/p/a?q=1');
  t.is(scheme.headers['content-length'], '0');
  const loc = await get('/old');
  t.is(loc.status, 302);
  t.is(loc.headers.location, 'https://example.com/new');
  t.is(loc.headers['cache-control'], 'no-cache');
  const prefix = await get('/a/b?c=d', { host: 'old.example.com' });
  t.is(prefix.status, 308);
  t.is(prefix.headers.location, 'https://new.example.com/a/b?c=d');
  redirects += 3;
  t.is(hits(), before);
  // a keep-alive connection carries on after a redirect
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const r1 = await request(`http://127.0.0.1:${P.front}/old`, { agent });
  const r2 = await request(`http://127.0.0.1:${P.front}/`, { agent });
  redirects++;
  agent.destroy();
  t.is(r1.status, 302);
  t.is(r2.body, 'st1');
});

test.serial('deny: the status and error page unless the client is in the CIDR', async (t) => {
  const d = await get('/admin/users');
  t.is(d.status, 403);
  t.regex(d.body, /403 Forbidden/);
  const d2 = await get('/internal/x', { host: 'api.example.com' });
  t.is(d2.status, 200, 'unless src 127.0.0.0/8: loopback passes');
  denies++;
});

test.serial('header edits: set/add/del on the request reach the backend; the response gets its own', async (t) => {
  const r = await get('/h', { 'x-env': 'dev', 'x-via': 'client', 'x-internal': 'secret' });
  t.is(r.body, 'st1');
  const seen = B.st1!.lastHeaders!;
  t.is(seen['x-env'], 'prod', 'set replaces');
  t.is(seen['x-via'], 'client, tierlb', 'add appends');
  t.is(seen['x-internal'], undefined, 'del removes');
  t.is(seen['x-client'], `127.0.0.1 via 127.0.0.1:${P.front}`, 'a value made of fetches');
  t.is(r.headers['x-frame-options'], 'DENY');
  t.is(r.headers['x-server'], 'st1');
  t.is(r.headers['x-answer'], 'fine', 'a condition on the server status');
  const hidden = await get('/hide');
  t.is(hidden.headers['x-server'], undefined, 'response del_header');
  t.is(hidden.headers['x-frame-options'], 'DENY');
  // listeners without rules: nothing edited
  await get('/h', { 'x-internal': 'secret' }, P.plain);
  t.is(B.p1!.lastHeaders!['x-internal'], 'secret');
  t.is(B.p1!.lastHeaders!['x-env'], undefined);
});

test.serial(
  'each group checks its own servers: sick goes DOWN, its requests get 503, the others stay UP',
  async (t) => {
    const row = async (px: string, sv: string) =>
      (await run.statsJson()).find((r) => r.pxname === px && r.svname === sv);
    t.true(await until(async () => (await row('sick', 'k1'))?.status === 'DOWN', 10_000));
    t.is((await row('api', 'a1'))?.status, 'UP');
    t.is((await row('static', 'st1'))?.status, 'UP');
    t.is((await get('/sick')).status, 503);
    t.is((await row('sick', 'BACKEND'))?.status, 'DOWN');
  },
);

test.serial('stats: a FRONTEND row per listener, servers and BACKEND per group; /metrics per group', async (t) => {
  // a listener and a group of the same name (HAProxy frontend + backend `same`): one name in the stats
  t.is((await get('/', {}, P.same)).body, 'p1');
  const rows = await run.statsJson();
  const r = (px: string, sv: string) => rows.find((x) => x.pxname === px && x.svname === sv)!;
  t.deepEqual(
    rows.map((x) => `${x.pxname}/${x.svname}`),
    [
      'front/FRONTEND',
      'front2/FRONTEND',
      'plain/FRONTEND',
      'plain/p1',
      'plain/BACKEND',
      'same/FRONTEND',
      'same/p1',
      'same/BACKEND',
      'tcpf/FRONTEND',
      'api/a1',
      'api/a2',
      'api/BACKEND',
      'static/st1',
      'static/st2',
      'static/BACKEND',
      'sick/k1',
      'sick/BACKEND',
      'tcp-local/tl',
      'tcp-local/BACKEND',
      'tcp-other/to',
      'tcp-other/BACKEND',
      'shared/sh1',
      'shared/BACKEND',
    ],
  );
  // a group counts the answers of the requests sent to it; the listener counts every answer it gave
  t.is(Number(r('api', 'BACKEND').hrsp_2xx), B.a1!.hits + B.a2!.hits);
  t.is(Number(r('api', 'a1').stot) > 0, true);
  t.is(Number(r('static', 'BACKEND').hrsp_3xx), 0);
  t.is(Number(r('front', 'FRONTEND').hrsp_3xx), redirects);
  t.is(Number(r('front', 'FRONTEND').hrsp_4xx), denies);
  t.is(Number(r('sick', 'BACKEND').hrsp_5xx), 1);
  t.is(Number(r('static', 'st2').lbtot), 0, 'balance first');
  t.is(Number(r('same', 'FRONTEND').hrsp_2xx), 1);
  t.is(Number(r('same', 'p1').stot), 1);
  t.is(Number(r('plain', 'p1').stot), 2, 'the same backend in another group is counted apart');
  const m = await request(`http://127.0.0.1:${P.stats}/metrics`);
  t.regex(
    m.body,
    new RegExp(`tierlb_group_http_responses_total\\{group="api",code="2xx"\\} ${B.a1!.hits + B.a2!.hits}`),
  );
  t.regex(m.body, /tierlb_group_up\{group="sick"\} 0/);
  t.regex(m.body, /tierlb_group_up\{group="api"\} 1/);
  t.regex(m.body, /tierlb_server_up\{listener="sick",server="k1"\} 0/);
  t.regex(m.body, /tierlb_listener_http_responses_total\{listener="front",code="3xx"\} \d+/);
});

test.serial('a tcp listener picks its group by the client address', async (t) => {
  const greet = await new Promise<string>((resolve, reject) => {
    const s = net.connect(P.tcpf!, '127.0.0.1');
    s.once('data', (d) => {
      resolve(d.toString());
      s.destroy();
    });
    s.once('error', reject);
  });
  t.is(greet, 'hello from local\n');
});

/** a raw Upgrade request; resolves with the answer's head and the socket */
function upgrade(path: string, host: string): Promise<{ head: string; sock: net.Socket }> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(P.front!, '127.0.0.1');
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString();
      const end = buf.indexOf('\r\n\r\n');
      if (end >= 0) {
        sock.removeAllListeners('data');
        resolve({ head: buf.slice(0, end), sock });
      }
    });
    sock.once('error', reject);
    sock.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`);
  });
}

test.serial('an Upgrade request is routed and denied by the same rules', async (t) => {
  const { head, sock } = await upgrade('/v1/ws', 'api.example.com');
  t.regex(head, /^HTTP\/1\.1 101/);
  const name = /x-server: (a[12])/i.exec(head)?.[1];
  t.truthy(name, head);
  const echo = new Promise<string>((r) => sock.once('data', (d) => r(d.toString())));
  sock.write('hi');
  t.is(await echo, `${name}:hi`);
  sock.destroy();
  const denied = await upgrade('/admin/ws', 'api.example.com');
  t.regex(denied.head, /^HTTP\/1\.1 403 Forbidden/);
  denied.sock.destroy();
});

test.serial('a reload takes the new rules: the same request lands on another group', async (t) => {
  t.is((await get('/r', { 'x-shared': 'yes' })).body, 'sh1');
  run.writeConfig(yaml.replace('{ group: shared, if: { header:', '{ group: api, if: { header:'));
  t.is(await run.reload(), 'ok\n');
  t.true(await until(async () => /^a[12]$/.test((await get('/r', { 'x-shared': 'yes' })).body), 10_000));
  t.is((await get('/', {}, P.front2)).body, 'sh1', 'the shared group still serves front2');
});
