/**
 * The routing rules of a listener, compiled (src/listeners/routing): the condition language (host, path, method,
 * header, src, tls, any/all/not, ignore_case), http_request in order (redirects exactly as HAProxy 2.6 writes them,
 * deny, header edits seen by later rules), use_group's first match, http_response edits, and the config's refusals
 * at file:line (unknown group, bad regex, bad CIDR, ...).
 */
import http2 from 'node:http2';
import type net from 'node:net';
import test from 'ava';
import { loadListenersConfigString } from '../src/listeners/config.js';
import { compileCondition, normalizeHost, type RuleProblem, targetPath } from '../src/listeners/routing/conditions.js';
import { applyHeaderOps, type HeaderOp, HttpRequestView } from '../src/listeners/routing/headers.js';
import { type Decision, type RawRoutes, Router } from '../src/listeners/routing/rules.js';

interface Req {
  method?: string;
  url?: string;
  headers?: Record<string, string | string[]>;
  src?: string;
  tls?: boolean;
}

const view = (r: Req) =>
  new HttpRequestView(
    { method: r.method ?? 'GET', url: r.url ?? '/', headers: { host: 'www.example.com', ...r.headers } },
    r.src ?? '192.0.2.1',
    r.tls ?? false,
  );

/** does condition `c` hold for request `r` (the condition must compile) */
function holds(t: { deepEqual: (a: unknown, b: unknown) => void }, c: unknown, r: Req, http = true): boolean {
  const out: RuleProblem[] = [];
  const p = compileCondition(c, [], out, { http });
  t.deepEqual(out, []);
  return p(view(r));
}

const decide = (routes: RawRoutes, r: Req): Decision => Router.of(routes, { http: true }).decide(view(r));

test('host: exact (port and case ignored), .suffix (names under it), *.wild (one label)', (t) => {
  const c = { host: ['api.example.com', '.corp.example', '*.wild.example'] };
  const h = (host: string) => holds(t, c, { headers: { host } });
  t.true(h('api.example.com'));
  t.true(h('API.Example.COM:8080'));
  t.true(h('api.example.com.'));
  t.false(h('xapi.example.com'));
  t.true(h('a.corp.example'));
  t.true(h('a.b.corp.example'));
  t.false(h('corp.example'));
  t.false(h('evilcorp.example'));
  t.true(h('x.wild.example'));
  t.false(h('x.y.wild.example'));
  t.false(h('wild.example'));
  t.is(normalizeHost('[2001:db8::1]:443'), '[2001:db8::1]');
  t.is(normalizeHost('2001:db8::1'), '2001:db8::1');
  // HTTP/2 has :authority instead of Host
  const v = new HttpRequestView({ method: 'GET', url: '/', headers: { ':authority': 'api.example.com' } }, '', true);
  t.is(v.host, 'api.example.com');
});

test('path: exact, prefix, suffix, regex on the path without the query; ignore_case', (t) => {
  t.true(holds(t, { path: ['/a'] }, { url: '/a?x=1' }));
  t.false(holds(t, { path: ['/a'] }, { url: '/a/' }));
  t.true(holds(t, { path_prefix: ['/api'] }, { url: '/apis' }), 'a plain string prefix, as HAProxy path_beg');
  t.true(holds(t, { path_suffix: ['.css'] }, { url: '/s/x.css?v=2' }));
  t.false(holds(t, { path_suffix: ['.css'] }, { url: '/x?f=.css' }));
  t.true(holds(t, { path_regex: ['^/u/[0-9]+$'] }, { url: '/u/42' }));
  t.false(holds(t, { path_regex: ['^/u/[0-9]+$'] }, { url: '/u/x' }));
  t.false(holds(t, { path_prefix: ['/API'] }, { url: '/api/x' }));
  t.true(holds(t, { path_prefix: ['/API'], ignore_case: true }, { url: '/api/x' }));
  t.true(holds(t, { path_regex: ['^/API'], ignore_case: true }, { url: '/api/x' }));
  t.is(targetPath('http://h.example:81/p/q?x'), '/p/q');
  t.is(targetPath('http://h.example'), '/');
  t.is(targetPath('*'), '*');
});

test('method, header (elements of every occurrence, present), src CIDRs, tls', (t) => {
  t.true(holds(t, { method: ['GET', 'HEAD'] }, { method: 'HEAD' }));
  t.false(holds(t, { method: ['GET'] }, { method: 'get' }));
  const canary = { header: { name: 'X-Canary', exact: ['1'] } };
  t.true(holds(t, canary, { headers: { 'x-canary': '1' } }));
  t.true(holds(t, canary, { headers: { 'x-canary': '0, 1' } }));
  t.false(holds(t, canary, { headers: { 'x-canary': '10' } }));
  t.false(holds(t, canary, {}));
  t.true(holds(t, { header: { name: 'accept', prefix: ['text/'] } }, { headers: { accept: 'image/png, text/html' } }));
  t.true(holds(t, { header: { name: 'X-A', present: true } }, { headers: { 'x-a': '' } }));
  t.true(holds(t, { header: { name: 'X-A', present: false } }, {}));
  t.true(
    holds(
      t,
      {
        header: [
          { name: 'X-A', present: true },
          { name: 'X-B', exact: ['b'] },
        ],
      },
      { headers: { 'x-a': '1', 'x-b': 'b' } },
    ),
  );
  t.false(holds(t, { header: { name: 'x-b', exact: ['B'] } }, { headers: { 'x-b': 'b' } }));
  t.true(holds(t, { header: { name: 'x-b', exact: ['B'] }, ignore_case: true }, { headers: { 'x-b': 'b' } }));
  const src = { src: ['10.0.0.0/8', '2001:db8::/32', '192.0.2.7'] };
  t.true(holds(t, src, { src: '10.1.2.3' }));
  t.true(holds(t, src, { src: '::ffff:10.1.2.3' }), 'an IPv4-mapped client matches IPv4 CIDRs');
  t.true(holds(t, src, { src: '2001:db8:1::5' }));
  t.true(holds(t, src, { src: '192.0.2.7' }));
  t.false(holds(t, src, { src: '192.0.2.8' }));
  t.false(holds(t, src, { src: '11.0.0.1' }));
  t.true(holds(t, { tls: true }, { tls: true }));
  t.false(holds(t, { tls: true }, { tls: false }));
  // a tcp listener: src and tls work without a request
  t.true(holds(t, { src: ['192.0.2.0/24'], tls: false }, {}, false));
});

test('keys AND, lists OR; any / all / not; if and unless', (t) => {
  const c = { host: ['a.example', 'b.example'], path_prefix: ['/v1'] };
  t.true(holds(t, c, { headers: { host: 'b.example' }, url: '/v1/x' }));
  t.false(holds(t, c, { headers: { host: 'b.example' }, url: '/v2/x' }));
  const any = { any: [{ path: ['/x'] }, { method: ['POST'] }] };
  t.true(holds(t, any, { url: '/x' }));
  t.true(holds(t, any, { method: 'POST' }));
  t.false(holds(t, any, {}));
  t.true(holds(t, { all: [{ path: ['/x'] }, { not: { method: ['POST'] } }] }, { url: '/x' }));
  t.false(holds(t, { all: [{ path: ['/x'] }, { not: { method: ['POST'] } }] }, { url: '/x', method: 'POST' }));
  const routes: RawRoutes = {
    http_request: [{ deny: 403, if: { path_prefix: ['/admin'] }, unless: { src: ['10.0.0.0/8'] } }],
  };
  t.like(decide(routes, { url: '/admin/x', src: '192.0.2.1' }), { kind: 'deny', status: 403 });
  t.like(decide(routes, { url: '/admin/x', src: '10.9.9.9' }), { kind: 'forward' });
  t.like(decide(routes, { url: '/public', src: '192.0.2.1' }), { kind: 'forward' });
});

test('redirects as HAProxy 2.6 writes them: scheme keeps Host as sent, prefix keeps path and query', (t) => {
  const routes: RawRoutes = {
    http_request: [
      { redirect: { scheme: 'https', code: 301 }, if: { path_prefix: ['/s'] } },
      { redirect: { prefix: 'https://new.example.com', code: 308 }, if: { path_prefix: ['/p'] } },
      { redirect: { prefix: '/' }, if: { path_prefix: ['/q'] } },
      { redirect: { prefix: 'https://n.example', drop_query: true, code: 303 }, if: { path_prefix: ['/d'] } },
      { redirect: { location: 'https://x.example/' }, if: { path_prefix: ['/l'] } },
    ],
  };
  const host = { host: 'Ex.com:8080' };
  t.deepEqual(decide(routes, { url: '/s/a?b=1', headers: host }), {
    kind: 'redirect',
    status: 301,
    location: 'https://Ex.com:8080/s/a?b=1',
  });
  t.deepEqual(decide(routes, { url: '/p/a?x', headers: host }), {
    kind: 'redirect',
    status: 308,
    location: 'https://new.example.com/p/a?x',
  });
  t.deepEqual(decide(routes, { url: '/q/z?y' }), { kind: 'redirect', status: 302, location: '/q/z?y' });
  t.deepEqual(decide(routes, { url: '/d/z?y' }), { kind: 'redirect', status: 303, location: 'https://n.example/d/z' });
  t.deepEqual(decide(routes, { url: '/l' }), { kind: 'redirect', status: 302, location: 'https://x.example/' });
  // an absolute-form target: the path and query of it
  t.deepEqual(decide(routes, { url: 'http://Ex.com:8080/s?q', headers: host }), {
    kind: 'redirect',
    status: 301,
    location: 'https://Ex.com:8080/s?q',
  });
});

test('http_request in order: header edits are seen by later rules and use_group; first use_group wins', (t) => {
  const routes: RawRoutes = {
    http_request: [
      { set_header: { name: 'X-Tier', value: 'gold' }, if: { header: { name: 'X-Key', exact: ['k1'] } } },
      { del_header: 'X-Key' },
      { deny: 401, if: { header: { name: 'X-Key', present: true } } },
      { add_header: { name: 'X-Via', value: 'tierlb' } },
    ],
    use_group: [
      { group: 'gold', if: { header: { name: 'x-tier', exact: ['gold'] } } },
      { group: 'api', if: { path_prefix: ['/api'] } },
      { group: 'never', if: { path_prefix: ['/api'] } },
    ],
    http_response: [
      { set_header: { name: 'X-Served-By', value: 'api' }, if: { path_prefix: ['/api'] } },
      { del_header: 'Server' },
      { set_header: { name: 'Cache-Control', value: 'no-store' }, if: { status: ['5xx', 404, '300:302'] } },
    ],
  };
  const d = decide(routes, { url: '/api/x', headers: { 'x-key': 'k1', 'x-via': 'client' } });
  t.is(d.kind, 'forward');
  if (d.kind !== 'forward') return;
  t.is(d.group, 'gold');
  t.deepEqual(
    d.request.map((o) => `${o.op} ${o.name}`),
    ['set X-Tier', 'del X-Key', 'add X-Via'],
  );
  t.deepEqual(
    d.response!(200).map((o) => `${o.op} ${o.name}`),
    ['set X-Served-By', 'del Server'],
  );
  t.deepEqual(
    d.response!(503).map((o) => `${o.op} ${o.name}`),
    ['set X-Served-By', 'del Server', 'set Cache-Control'],
  );
  t.is(d.response!(404).length, 3);
  t.is(d.response!(301).length, 3);
  t.is(d.response!(303).length, 2);
  const d2 = decide(routes, { url: '/api/x' });
  t.like(d2, { kind: 'forward', group: 'api' });
  const d3 = decide(routes, { url: '/other' });
  t.like(d3, { kind: 'forward', group: undefined });
  if (d3.kind === 'forward')
    t.deepEqual(
      d3.response!(200).map((o) => o.name),
      ['Server'],
    );
});

test('header values may fetch from the request: %[src], %[hdr(name)], %[ssl_fc], %[status]; %% is a %', (t) => {
  const routes: RawRoutes = {
    http_request: [
      { set_header: { name: 'X-Real-IP', value: '%[src]' } },
      { set_header: { name: 'X-Orig', value: 'host=%[req.hdr(Host)] tls=%[ssl_fc] 100%% %[method] %[path]?%[query]' } },
    ],
    http_response: [{ add_header: { name: 'X-Status', value: 'was %[status]' } }],
  };
  const d = decide(routes, { url: '/p?x=1', src: '192.0.2.9', headers: { host: 'h.example' } });
  if (d.kind !== 'forward') return t.fail();
  t.deepEqual(
    d.request.map((o) => [o.name, o.value]),
    [
      ['X-Real-IP', '192.0.2.9'],
      ['X-Orig', 'host=h.example tls=0 100% GET /p?x=1'],
    ],
  );
  t.deepEqual(
    d.response!(404).map((o) => o.value),
    ['was 404'],
  );
  const out: RuleProblem[] = [];
  Router.compile({ http_request: [{ set_header: { name: 'X', value: '%[rand]' } }] }, { http: true }, out);
  t.regex(out[0]!.message, /unknown %\[rand\]/);
});

test('an HTTP/2 request (node:http2 compatibility API) is decided as its HTTP/1.1 twin', async (t) => {
  const routes: RawRoutes = {
    http_request: [{ redirect: { scheme: 'https', code: 301 }, if: { path: ['/go'] } }],
    use_group: [{ group: 'api', if: { host: ['api.example.com'], path_prefix: ['/v1'], method: ['POST'] } }],
  };
  const router = Router.of(routes, { http: true });
  const server = http2.createServer((req, res) => {
    const d = router.decide(new HttpRequestView(req, '127.0.0.1', false));
    res.end(JSON.stringify(d.kind === 'forward' ? { kind: d.kind, group: d.group ?? null } : d));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as net.AddressInfo).port;
  const client = http2.connect(`http://127.0.0.1:${port}`);
  const ask = (headers: http2.OutgoingHttpHeaders) =>
    new Promise<unknown>((resolve, reject) => {
      const req = client.request(headers);
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (d: string) => (body += d));
      req.on('end', () => resolve(JSON.parse(body)));
      req.on('error', reject);
      req.end();
    });
  try {
    t.deepEqual(await ask({ ':method': 'POST', ':path': '/v1/x?y=1', ':authority': 'API.example.com:8443' }), {
      kind: 'forward',
      group: 'api',
    });
    t.deepEqual(await ask({ ':method': 'GET', ':path': '/v1/x', ':authority': 'api.example.com' }), {
      kind: 'forward',
      group: null,
    });
    t.deepEqual(await ask({ ':path': '/go?q', ':authority': 'h.example:8080' }), {
      kind: 'redirect',
      status: 301,
      location: 'https://h.example:8080/go?q',
    });
    // the same decisions as for HTTP/1.1 requests
    t.like(decide(routes, { method: 'POST', url: '/v1/x?y=1', headers: { host: 'API.example.com:8443' } }), {
      group: 'api',
    });
  } finally {
    client.close();
    await new Promise<void>((r) => server.close(() => r()));
  }
});

test('header edits on flat fields: set replaces every occurrence, add appends, del removes (any case)', (t) => {
  const op = (o: HeaderOp['op'], name: string, value = ''): HeaderOp => ({
    op: o,
    name,
    lname: name.toLowerCase(),
    value,
  });
  const fields = ['Host', 'h', 'X-A', '1', 'x-a', '2', 'X-B', 'b'];
  t.deepEqual(applyHeaderOps([...fields], [op('set', 'X-A', 'new')]), ['Host', 'h', 'X-B', 'b', 'X-A', 'new']);
  t.deepEqual(applyHeaderOps([...fields], [op('add', 'X-A', '3')]), [...fields, 'X-A', '3']);
  t.deepEqual(applyHeaderOps([...fields], [op('del', 'x-A'), op('del', 'X-B')]), ['Host', 'h']);
});

const HEAD = `listeners:
  workers: 1
  groups:
    - name: shared
      servers: [ { name: s1, address: 127.0.0.1:1 } ]
  listen:
`;

test('config: groups resolve with their own balance and inherited settings; a listener with servers is one group', (t) => {
  const c = loadListenersConfigString(`${HEAD}    - name: web
      bind: 127.0.0.1:8080
      mode: http
      retries: 5
      timeout: { server: 7s }
      groups:
        - name: api
          balance: leastconn
          timeout: { connect: 1s }
          servers: [ { name: a1, address: 127.0.0.1:2 } ]
        - name: static
          retries: 1
          servers: [ { name: st1, address: 127.0.0.1:3 } ]
      use_group:
        - { group: shared, if: { path_prefix: [/s] } }
    - name: old
      bind: 127.0.0.1:8081
      servers: [ { name: o1, address: 127.0.0.1:4 } ]
`);
  const [web, old] = c.listeners;
  t.is(web!.defaultGroup, 'api', 'the first group when the listener has no servers of its own');
  t.is(old!.defaultGroup, 'old');
  t.deepEqual(
    c.groups.map((g) => [g.name, g.balance, g.retries, g.timeout.server, g.timeout.connect]),
    [
      ['api', 'leastconn', 5, 7000, 1000],
      ['static', 'roundrobin', 1, 7000, 5000],
      ['old', 'roundrobin', 3, 50_000, 5000],
      ['shared', 'roundrobin', 3, 50_000, 5000],
    ],
  );
  t.deepEqual(
    old!.servers.map((s) => s.name),
    ['o1'],
  );
});

test('config: a check merges over defaults.check, for a listener and for its groups', (t) => {
  const c = loadListenersConfigString(`listeners:
  defaults:
    check: { inter: 5s, rise: 4 }
  listen:
    - name: web
      bind: 127.0.0.1:8080
      mode: http
      check: { type: http, uri: /h }
      servers: [ { name: w1, address: 127.0.0.1:2 } ]
      groups:
        - name: g
          check: { uri: /g, fall: 7 }
          servers: [ { name: g1, address: 127.0.0.1:3 } ]
`);
  t.like(c.listeners[0]!.check, { type: 'http', uri: '/h', inter: 5000, rise: 4, fall: 3 });
  t.like(c.groups.find((g) => g.name === 'g')!.check, { type: 'http', uri: '/g', inter: 5000, rise: 4, fall: 7 });
  t.is(c.listeners[0]!.defaultGroup, 'web', 'its own servers, when it has some');
});

test('config: rule problems are refused at file:line', (t) => {
  const bad = `${HEAD}    - name: web
      bind: 127.0.0.1:8080
      mode: http
      groups:
        - name: api
          servers: [ { name: a1, address: 127.0.0.1:2 } ]
        - name: shared
          servers: [ { name: a1, address: 127.0.0.1:2 } ]
      default_group: nowhere
      use_group:
        - { group: nope, if: { host: [a.example] } }
        - { group: api, if: { path_regex: ["(["] } }
        - { group: api, if: { src: [10.0.0.0/33, bogus] } }
        - { group: api, if: { hots: [a] } }
      http_request:
        - { redirect: { scheme: https }, deny: 403 }
        - { set_header: { name: Content-Length, value: "1" } }
        - { set_header: { name: X-S, value: "1" }, if: { status: [500] } }
    - name: t
      bind: 127.0.0.1:8082
      groups:
        - name: tg
          servers: [ { name: x, address: 127.0.0.1:5 } ]
      use_group:
        - { group: tg, if: { path: [/x] } }
      http_response:
        - { del_header: Server }
`;
  const err = t.throws(() => loadListenersConfigString(bad, 'r.yaml'));
  const msg = err!.message;
  t.regex(msg, /r\.yaml:13:\d+: .*group 'shared' is defined twice \(first at line 4\)/);
  t.regex(msg, /r\.yaml:15:\d+: .*default_group: no group 'nowhere'/);
  t.regex(msg, /r\.yaml:17:\d+: .*use_group\[0\]\.group: no group 'nope'/);
  t.regex(msg, /r\.yaml:18:\d+: .*path_regex\[0\]: bad regex \/\(\[\//);
  t.regex(msg, /r\.yaml:19:\d+: .*src\[0\]: '10\.0\.0\.0\/33': prefix length must be 0\.\.32/);
  t.regex(msg, /r\.yaml:19:\d+: .*src\[1\]: 'bogus' is not an address or CIDR/);
  t.regex(msg, /r\.yaml:20:\d+: .*unknown condition 'hots'/);
  t.regex(msg, /r\.yaml:22:\d+: .*one action per rule \(found redirect, deny\)/);
  t.regex(msg, /r\.yaml:23:\d+: .*'Content-Length' is the proxy's own/);
  t.regex(msg, /r\.yaml:24:\d+: .*status: only in http_response rules/);
  t.regex(msg, /r\.yaml:31:\d+: .*'path' needs mode: http/);
  t.regex(msg, /r\.yaml:33:\d+: .*http_response needs mode: http/);
});

test('config: a group is one mode; uri/hdr balance needs http; a listener without servers needs groups', (t) => {
  const bad = `${HEAD}    - name: h
      bind: 127.0.0.1:8080
      mode: http
      default_group: shared
    - name: t
      bind: 127.0.0.1:8081
      default_group: shared
    - name: n
      bind: 127.0.0.1:8082
      balance: leastconn
`;
  const err = t.throws(() => loadListenersConfigString(bad, 'm.yaml'));
  t.regex(err!.message, /m\.yaml:4:\d+: .*group 'shared' is used by both tcp and http listeners/);
  t.regex(err!.message, /m\.yaml:16:\d+: .*balance applies to the listener's own servers/);
  t.regex(err!.message, /m\.yaml:14:\d+: listeners\.listen\[2\]: missing required key 'servers'/);
});
