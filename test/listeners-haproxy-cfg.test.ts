/**
 * haproxy.cfg as a config format: a haproxy.cfg and the equivalent YAML give the same listener plan (golden pairs in
 * test/golden/haproxy-*.cfg / .yaml, both accepted by a real `haproxy -c`), every keyword tierlb does not run is
 * reported at file:line:col (a warning, or an error that refuses the file), and HAProxy's tokenizer rules hold.
 */
import { isDeepStrictEqual } from 'node:util';
import test from 'ava';
import { run as configCli } from '../src/cli/config.js';
import { type ListenersConfig, loadListenersConfig } from '../src/listeners/config.js';
import {
  formatDiagnostic,
  type HaproxyLoadResult,
  listenersConfigFromHaproxy,
  loadHaproxyCfg,
  loadHaproxyCfgString,
} from '../src/listeners/haproxy-cfg/load.js';
import { splitLine } from '../src/listeners/haproxy-cfg/tokenize.js';

const GOLDEN = new URL('./golden/', import.meta.url).pathname;

const plan = (c: ListenersConfig | undefined) => c && { ...c, file: '' };
const load = (text: string, env: Record<string, string> = {}): HaproxyLoadResult =>
  loadHaproxyCfgString(text, 'h.cfg', { env, isDir: (p) => p.endsWith('/') });
const errs = (r: HaproxyLoadResult) => r.errors.map(formatDiagnostic);
const warns = (r: HaproxyLoadResult) => r.warnings.map(formatDiagnostic);

for (const name of ['listen', 'routes']) {
  test(`golden: haproxy-${name}.cfg and haproxy-${name}.yaml produce the same listener plan`, async (t) => {
    const h = loadHaproxyCfg(`${GOLDEN}haproxy-${name}.cfg`);
    t.deepEqual(errs(h), []);
    const y = await loadListenersConfig(`${GOLDEN}haproxy-${name}.yaml`);
    t.truthy(h.config);
    t.deepEqual(plan(h.config), plan(y));
  });
}

test('golden: the plans are not trivially equal (a changed server weight tells them apart)', async (t) => {
  const h = loadHaproxyCfg(`${GOLDEN}haproxy-routes.cfg`);
  const y = await loadListenersConfig(`${GOLDEN}haproxy-routes.yaml`);
  const changed = structuredClone(plan(y)) as ListenersConfig;
  changed.groups[2].servers[0].weight = 4;
  t.false(isDeepStrictEqual(plan(h.config), changed));
  t.is(h.config?.groups.map((g) => g.name).join(), 'api,static,web');
  t.is(h.config?.listeners[0].defaultGroup, 'web');
});

test('the unsupported keywords: warnings where ignoring is harmless, errors where it would change behaviour', (t) => {
  const r = load(`global
  daemon
  lua-load /etc/haproxy/x.lua
  tune.bufsize 32768
defaults
  mode http
  log global
  option httplog
  option http-server-close
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  timeout tarpit 5s
frontend f
  bind :80
  capture request header Host len 32
  http-request set-path /x
  http-request capture req.hdr(host) len 10
  http-request return status 200
  stick-table type ip size 1m
  tcp-request inspect-delay 5s
  tcp-request content reject if { src 10.0.0.1 }
  compression algo gzip
  default_backend b
backend b
  cookie SRV insert indirect
  option ssl-hello-chk
  option allbackups
  http-check disable-on-404
  hash-type consistent
  server s1 10.0.0.1:80 check cookie s1 fastinter 1s port 8080
userlist admins
  user admin password x
program sidecar
  command /bin/true
`);
  t.deepEqual(errs(r), [
    "h.cfg:3:3: 'lua-load' is not supported by tierlb (Lua scripts)",
    "h.cfg:17:16: 'http-request set-path' is not supported by tierlb (http-request set-path: tierlb runs redirect, set-header, add-header, del-header and deny)",
    "h.cfg:19:16: 'http-request return' is not supported by tierlb (http-request return: tierlb runs redirect, set-header, add-header, del-header and deny)",
    "h.cfg:20:3: 'stick-table' is not supported by tierlb (ignoring it would change what clients get)",
    "h.cfg:22:15: 'tcp-request content' is not supported by tierlb (tcp rules: write routing with use_backend and http-request rules)",
    "h.cfg:26:3: 'cookie' is not supported by tierlb (ignoring it would change what clients get)",
    "h.cfg:27:10: 'option ssl-hello-chk' is not supported by tierlb (ssl-hello-chk: tierlb checks with tcp connect (option tcp-check) or http (option httpchk))",
    "h.cfg:29:14: 'http-check disable-on-404' is not supported by tierlb (not done by tierlb checks)",
    "h.cfg:31:54: server option 'port' is not supported by tierlb",
    "h.cfg:34:1: section 'program' is not supported by tierlb (it would run a service of its own)",
  ]);
  t.deepEqual(warns(r), [
    "h.cfg:2:3: 'daemon': tierlb runs in the foreground under systemd, ignored",
    "h.cfg:4:3: 'tune.bufsize': a tuning tierlb does not have, ignored",
    "h.cfg:7:3: 'log': logging is pino JSON on stderr in tierlb, ignored",
    "h.cfg:8:10: 'option httplog': not needed by tierlb, ignored",
    "h.cfg:9:10: 'option http-server-close': not needed by tierlb, ignored",
    "h.cfg:13:11: 'timeout tarpit': not used by tierlb, ignored",
    "h.cfg:16:3: 'capture': logging is pino JSON on stderr in tierlb, ignored",
    "h.cfg:18:16: 'http-request capture': about logging, which tierlb does its own way, ignored",
    "h.cfg:21:15: 'tcp-request inspect-delay': not needed by tierlb, ignored",
    "h.cfg:23:3: 'compression': tierlb does not compress: answers pass with the server's own encoding, ignored",
    "h.cfg:30:3: 'hash-type': tierlb's hash-based balancing uses its own hash, ignored",
    "h.cfg:31:31: server option 'cookie s1': cookie persistence is not supported by tierlb (the backend `cookie` keyword is refused), ignored",
    "h.cfg:31:41: server option 'fastinter 1s': tierlb checks at one interval (inter), ignored",
    "h.cfg:32:1: section 'userlist' is not used by tierlb (authentication (http-request auth) is refused where it is used), ignored",
  ]);
  t.is(r.config, undefined);
});

test('syntax and value errors name file:line:col', (t) => {
  const r = load(`maxconn 10
global
  nbthread two
defaults
  timeout client 5 s
frontend f
  bind 1.2.3.4
  acl a path_beg "/x
  use_backend b if nosuch
  use_backend b if { path_beg }
  default_backend b
backend b
  balance url_param id
  server s1 10.0.0.1 check
  server s2 10.0.0.2:80 weight 300
  server s3 10.0.0.3:80 ssl
`);
  t.deepEqual(errs(r), [
    "h.cfg:1:1: 'maxconn' outside of any section (global, defaults, frontend, backend, listen)",
    "h.cfg:3:12: 'nbthread': 'two' is not an integer in 1..256",
    "h.cfg:5:20: 'timeout': unexpected 's'",
    "h.cfg:7:8: '1.2.3.4': a bind address needs a port",
    'h.cfg:8:18: unmatched double quote',
    "h.cfg:9:20: no ACL named 'nosuch' is declared before this line",
    "h.cfg:10:22: ACL 'path_beg' needs at least one path",
    "h.cfg:13:11: 'balance url_param' is not supported by tierlb (roundrobin, static-rr, leastconn, source, first, random, random(N), uri, hdr(NAME))",
    "h.cfg:14:13: '10.0.0.1': tierlb needs the server's port (HAProxy would reuse the client's destination port)",
    "h.cfg:15:32: 'server': '300' is not an integer in 0..256",
    "h.cfg:16:3: server s3: 'ssl' verifies the server's certificate by default but no 'ca-file' is given (add 'ca-file FILE', or 'verify none' where the network is trusted)",
  ]);
});

test("the YAML loader's checks are reported at the haproxy.cfg line behind the value", (t) => {
  const r = load(`defaults
  mode http
listen a
  bind 127.0.0.1:8000
  server s1 10.0.0.1:80
  server s1 10.0.0.2:80
listen b
  bind 127.0.0.1:8000
  server t1 10.0.0.3:80
`);
  t.deepEqual(errs(r), [
    "h.cfg:6:3: listen[0].servers[1].name: server 's1' is defined twice",
    'h.cfg:8:3: listen[1].bind: 127.0.0.1:8000 is already bound by listen[0]',
  ]);
});

test('HAProxy tokenizer: blanks, comments, quotes, escapes, environment variables', (t) => {
  const env = { HOST: 'example.com', EMPTY: '' };
  const words = (s: string) => splitLine(s, 'f', 1, env, []).words;
  t.deepEqual(words('  server s1 10.0.0.1:80   check # a comment'), ['server', 's1', '10.0.0.1:80', 'check']);
  t.deepEqual(words('a "b c" \'d e\' f\\ g \\#h i#j'), ['a', 'b c', 'd e', 'f g', '#h', 'i']);
  t.deepEqual(words('"a b"c\'d\'"e"'), ['a bcde']);
  // biome-ignore lint/suspicious/noTemplateCurlyInString: HAProxy's own ${NAME} syntax, not a template
  t.deepEqual(words('x "$HOST" "${HOST}:80" \'$HOST\' $HOST "\\$HOST" "${NOPE-dflt}" "$NOPE"'), [
    'x',
    'example.com',
    'example.com:80',
    '$HOST',
    '$HOST',
    '$HOST',
    'dflt',
    '',
  ]);
  t.deepEqual(words('path_reg ^/v\\d+/ "\\x41\\t"'), ['path_reg', '^/v\\d+/', 'A\t']);
  t.deepEqual(words('\'a\\ b\' "# not a comment"'), ['a\\ b', '# not a comment']);
  const errors: { message: string }[] = [];
  splitLine("a 'b", 'f', 1, env, errors as never);
  t.is(errors[0]?.message, 'unmatched single quote');
});

test('environment variables in quotes reach the plan', (t) => {
  const r = load(
    `listen web
  mode http
  bind "\${ADDR}:\${PORT}"
  server s1 "$BACKEND:80"
`,
    { ADDR: '127.0.0.1', PORT: '8111', BACKEND: '10.9.9.9' },
  );
  t.deepEqual(errs(r), []);
  t.is(r.config?.listeners[0].port, 8111);
  t.is(r.config?.listeners[0].servers[0].host, '10.9.9.9');
});

test('a backend two frontends use is one group; a frontend with two binds is two listeners', (t) => {
  const r = load(`defaults
  mode http
frontend a
  bind 127.0.0.1:8001
  bind 127.0.0.1:8002
  default_backend app
frontend b
  bind 127.0.0.1:8003
  use_backend app if { path_beg /app }
  default_backend other
backend app
  server s1 10.0.0.1:80
backend other
  server s2 10.0.0.2:80
listen two
  bind 127.0.0.1:8004,127.0.0.1:8005
  server s3 10.0.0.3:80
`);
  t.deepEqual(errs(r), []);
  t.deepEqual(
    r.config?.listeners.map((l) => `${l.name}@${l.port}→${l.defaultGroup}`),
    ['a@8001→app', 'a-2@8002→app', 'b@8003→other', 'two@8004→two', 'two-2@8005→two'],
  );
  t.deepEqual(
    r.config?.groups.map((g) => g.name),
    ['app', 'other', 'two'],
  );
});

test("maxconn and backlog: bind options and frontend keywords become the listener's; a backend's maxconn is ignored with a warning", (t) => {
  const r = load(`defaults
  mode tcp
  maxconn 500
frontend a
  bind 127.0.0.1:8001 maxconn 20 backlog 64
  bind 127.0.0.1:8002
  backlog 128
  default_backend app
frontend b
  bind 127.0.0.1:8003 maxconn 9000
  maxconn 100
  default_backend app
backend app
  maxconn 7
  server s1 10.0.0.1:80
`);
  t.deepEqual(errs(r), []);
  t.deepEqual(
    r.config?.listeners.map((l) => `${l.name} maxconn ${l.maxconn} backlog ${l.backlog}`),
    ['a maxconn 20 backlog 64', 'a-2 maxconn 500 backlog 128', 'b maxconn 100 backlog 100'],
  );
  t.deepEqual(warns(r), [
    "h.cfg:3:3: 'maxconn 500' is enforced per bind by tierlb (each of the 2 listeners gets it), not over all binds together",
    "h.cfg:14:3: 'maxconn' ignored: backend app has no frontend capability (server maxconn limits a backend)",
  ]);
});

test('a listen section named in use_backend, an unknown backend and mode mismatches are refused', (t) => {
  const r = load(`frontend f
  mode http
  bind :80
  use_backend nope if { path /x }
  use_backend t if { path /y }
  default_backend l
backend t
  mode tcp
  server s 10.0.0.1:80
listen l
  mode http
  bind :81
  server s 10.0.0.2:80
`);
  t.deepEqual(errs(r), [
    "h.cfg:4:3: no backend named 'nope'",
    'h.cfg:5:3: backend t is mode tcp but frontend f is mode http',
    "h.cfg:6:3: 'l' is a listen section: use_backend names a backend",
  ]);
});

test('global and stats: nbthread → workers, tune.maxaccept, no-memory-trimming, stats socket → control, a stats listen → listeners.stats.bind', (t) => {
  const r = load(`global
  nbthread 4
  tune.maxaccept 16
  no-memory-trimming
  stats socket /run/haproxy/admin.sock level admin
defaults
  mode http
listen stats
  bind 127.0.0.1:8404
  stats enable
  stats uri /stats
  stats refresh 10s
listen web
  bind :80
  server s 10.0.0.1:80
`);
  t.deepEqual(errs(r), []);
  t.is(r.config?.workers, 4);
  t.false(r.config?.memoryTrim);
  t.deepEqual(
    r.config?.listeners.map((l) => l.maxaccept),
    [16],
  );
  t.is(r.config?.control, '/run/haproxy/admin.sock');
  t.deepEqual(r.config?.stats, { enabled: true, host: '127.0.0.1', port: 8404 });
  t.true(
    warns(r).includes(
      "h.cfg:12:9: 'stats refresh': not used by tierlb (its stats page is /metrics and /stats.json), ignored",
    ),
  );
});

test('listenersConfigFromHaproxy throws one ConfigError with every problem, and passes warnings on', async (t) => {
  const seen: string[] = [];
  const e = await t.throwsAsync(listenersConfigFromHaproxy(`${GOLDEN}haproxy-listen.cfg.missing`, (w) => seen.push(w)));
  t.regex(e?.message ?? '', /haproxy-listen\.cfg\.missing: cannot read: ENOENT/);
  const cfg = await listenersConfigFromHaproxy(`${GOLDEN}haproxy-listen.cfg`, (w) => seen.push(w));
  t.is(cfg.listeners.length, 3);
  t.true(seen.some((w) => w.endsWith("'option httplog': not needed by tierlb, ignored")));
});

test('tierlb config check --haproxy lists warnings and errors, exits 1 when refused; --yaml prints the YAML', async (t) => {
  const io = () => {
    const o = { out: '', err: '' };
    return {
      o,
      io: { stdout: { write: (s: string) => (o.out += s) }, stderr: { write: (s: string) => (o.err += s) } },
    };
  };
  const a = io();
  t.is(await configCli(['check', '--haproxy', `${GOLDEN}haproxy-listen.cfg`], a.io), 0);
  t.regex(a.o.out, /haproxy-listen\.cfg: ok — 3 listeners, 3 server groups, 3 workers, 6 warnings/);
  t.regex(a.o.err, /haproxy-listen\.cfg:11:12: warning: 'option httplog': not needed by tierlb, ignored/);
  const b = io();
  t.is(await configCli(['check', '--haproxy', `${GOLDEN}haproxy-routes.cfg`, '--yaml'], b.io), 0);
  t.regex(b.o.out, /^listeners:\n {2}groups:\n {4}- name: api\n/);
  const c = io();
  t.is(await configCli(['check', '--haproxy', `${GOLDEN}nope.cfg`], c.io), 1);
  t.regex(c.o.err, /nope\.cfg:0:0: error: cannot read: ENOENT\n.*refused: 1 error, 0 warnings/);
  const d = io();
  t.is(await configCli(['check', '--haproxy'], d.io), 2);
});

test('bind ssl and server ssl map onto tls: and ssl: (crt FILE|DIR, crt-base, alpn as HAProxy 2.6 offers it, client CA, versions, ciphers)', (t) => {
  const r = load(`global
  crt-base /etc/ssl/tierlb
  ca-base /etc/ssl/ca
  ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets
  ssl-default-bind-ciphers ECDHE+AESGCM
defaults
  mode http
frontend https
  bind 127.0.0.1:8443 ssl crt www.pem crt /etc/ssl/other.pem alpn h2,http/1.1
  bind 127.0.0.1:9443 ssl crt certs/ ca-file clients.pem verify required no-tlsv12 ciphersuites TLS_AES_256_GCM_SHA384
  bind 127.0.0.1:10443 ssl crt www.pem ca-file clients.pem
  default_backend app
frontend tcp
  mode tcp
  bind 127.0.0.1:11443 ssl crt www.pem
  default_backend db
backend db
  mode tcp
  server d1 10.0.0.3:5432
backend app
  server a1 10.0.0.1:443 ssl verify required ca-file servers.pem sni str(app.internal)
  server a2 10.0.0.2:443 ssl verify none
`);
  const listen = r.section.listen as Record<string, unknown>[];
  t.deepEqual(listen[0].tls, {
    certs: [{ cert: '/etc/ssl/tierlb/www.pem' }, { cert: '/etc/ssl/other.pem' }],
    min_version: 'TLSv1.2',
    ciphers: 'ECDHE+AESGCM',
    alpn: ['h2', 'http/1.1'],
  });
  t.deepEqual(listen[1].tls, {
    cert_dir: '/etc/ssl/tierlb/certs/',
    min_version: 'TLSv1.3',
    ciphers: 'ECDHE+AESGCM',
    client_ca: '/etc/ssl/ca/clients.pem',
    verify: 'required',
    ciphersuites: 'TLS_AES_256_GCM_SHA384',
    alpn: ['http/1.1'],
  });
  t.deepEqual(listen[2].tls, {
    certs: [{ cert: '/etc/ssl/tierlb/www.pem' }],
    min_version: 'TLSv1.2',
    ciphers: 'ECDHE+AESGCM',
    client_ca: '/etc/ssl/ca/clients.pem',
    verify: 'none',
    alpn: ['http/1.1'],
  });
  t.deepEqual(listen[3].tls, {
    certs: [{ cert: '/etc/ssl/tierlb/www.pem' }],
    min_version: 'TLSv1.2',
    ciphers: 'ECDHE+AESGCM',
  });
  const groups = r.section.groups as { name: string; servers: Record<string, unknown>[] }[];
  const servers = groups.find((g) => g.name === 'app')?.servers ?? [];
  t.deepEqual(
    servers.map((s) => s.ssl),
    [{ verify: 'required', ca: '/etc/ssl/ca/servers.pem', sni: 'app.internal' }, { verify: 'none' }],
  );
  t.true(warns(r).includes("h.cfg:4:48: ssl-default-bind-options 'no-tls-tickets' is not used by tierlb, ignored"));
});

test('a frontend without backend (redirects only) answers 503 to the rest, as HAProxy; without any backend it is refused', (t) => {
  const r = load(`defaults
  mode http
frontend http
  bind :80
  http-request redirect scheme https code 301 if { hdr(host) -i www.example.com }
frontend https
  bind :8443
  default_backend web
backend web
  server w1 10.0.0.1:80
`);
  t.deepEqual(errs(r), []);
  t.deepEqual(warns(r), [
    "h.cfg:3:1: frontend http has no backend: what its rules do not answer gets 503, as in HAProxy (tierlb's listener names backend web as its default group, never reached)",
  ]);
  const l = (r.section.listen as Record<string, unknown>[])[0];
  t.deepEqual(l.http_request, [
    { redirect: { scheme: 'https', code: 301 }, if: { host: ['www.example.com'] } },
    { deny: 503 },
  ]);
  t.is(l.default_group, 'web');
  const none = load(`frontend http
  mode http
  bind :80
  http-request redirect scheme https
`);
  t.deepEqual(errs(none), [
    'h.cfg:1:1: frontend http has no server and no backend: tierlb needs somewhere to send requests (add default_backend)',
  ]);
});

test('http-response conditions: status (codes, ranges, operators), src and ssl_fc; request fields are refused', (t) => {
  const r = load(`defaults
  mode http
frontend f
  bind :80
  acl err status ge 500
  acl nf status 404 410
  acl api path_beg /api
  http-response set-header Cache-Control no-store if err || nf || { status 300:399 }
  http-response del-header Server unless { ssl_fc }
  http-response set-header X-Api yes if api
  http-request deny if err
  default_backend b
backend b
  server s 10.0.0.1:80
`);
  t.deepEqual(errs(r), [
    "h.cfg:10:38: an http-response condition on path_prefix: tierlb's response rules look at status, src and ssl_fc only (HAProxy would read the response's headers there)",
    'h.cfg:11:21: a request rule cannot look at the response status',
  ]);
  const l = (r.section.listen as Record<string, unknown>[])[0];
  t.deepEqual(l.http_response, [
    {
      set_header: { name: 'Cache-Control', value: 'no-store' },
      if: { any: [{ status: ['500:599'] }, { status: [404, 410] }, { status: ['300:399'] }] },
    },
    { del_header: 'Server', unless: { tls: true } },
  ]);
});

test('header values: text, %% and %[fetch] pass to the rules (which check the fetch); log variables are refused', (t) => {
  const r = load(`defaults
  mode http
frontend f
  bind :80
  http-request set-header X-Client %[src]
  http-request set-header X-Pct "100%%"
  http-request set-header X-Log %ci
  redirect location /x%%y
  default_backend b
backend b
  server s 10.0.0.1:80
`);
  t.deepEqual(errs(r), [
    "h.cfg:7:33: '%ci': log-format variables (%ci, %{+Q}[...], ...) are not supported by tierlb: text, %% and %[fetch] are",
  ]);
  const l = (r.section.listen as Record<string, unknown>[])[0];
  t.deepEqual(l.http_request, [
    { set_header: { name: 'X-Client', value: '%[src]' } },
    { set_header: { name: 'X-Pct', value: '100%%' } },
    { redirect: { location: '/x%y' } },
  ]);
  const bad = load(`defaults
  mode http
frontend f
  bind :80
  http-request set-header X-Id %[uuid]
  default_backend b
backend b
  server s 10.0.0.1:80
`);
  t.deepEqual(errs(bad), [
    'h.cfg:5:3: listen[0].http_request[0].set_header.value: unknown %[uuid] (value fetches: src, method, path, query, host, ssl_fc, status, hdr(name); %% for a %)',
  ]);
});

test('conditional blocks: .if/.elif/.else/.endif with defined, streq, version_atleast, nesting; what HAProxy 2.6 takes', (t) => {
  const text = `.if defined(WITH_API)
listen api
  mode http
  bind :81
  server a 10.0.0.1:80
.endif
listen web
  mode http
  bind :80
.if streq("$ENV",prod)
  server p 10.0.0.2:80
.elif version_atleast(2.4)
  .if !defined(NOPE)
  server v 10.0.0.3:80
  .endif
.else
  server e 10.0.0.4:80
.endif
.if version_before(2.6)
  server old 10.0.0.5:80
.endif
`;
  const servers = (env: Record<string, string>) => {
    const r = load(text, env);
    t.deepEqual(errs(r), []);
    return r.config?.listeners.map((l) => `${l.name}:${l.servers.map((s) => s.name).join(',')}`).join(' ');
  };
  t.is(servers({ ENV: 'prod' }), 'web:p');
  t.is(servers({ ENV: 'dev', WITH_API: '1' }), 'api:a web:v');
  t.deepEqual(errs(load('.if feature(OPENSSL)\n.endif\n.endif\n.if 1\n')), [
    "h.cfg:1:5: '.if feature(OPENSSL)': tierlb evaluates one term (defined, streq, strneq, version_atleast, version_before, a number), maybe negated with '!'",
    "h.cfg:3:1: '.endif' without an '.if'",
    "h.cfg:4:1: '.if' without its '.endif'",
  ]);
});

test('src ACL values: addresses, CIDRs, IPv4 netmasks, IPv6; anything else is refused', (t) => {
  const r = load(`frontend f
  mode http
  bind :80
  acl a src 10.1.2.3 10.0.0.0/8 172.16.0.0/255.240.0.0 192.168.1.0/255.255.255.0 ::1 fd00::/8
  http-request deny if a
  default_backend b
backend b
  mode http
  server s 10.0.0.1:80
`);
  t.deepEqual(errs(r), []);
  const l = (r.section.listen as Record<string, unknown>[])[0];
  t.deepEqual(l.http_request, [
    {
      deny: true,
      if: { src: ['10.1.2.3/32', '10.0.0.0/8', '172.16.0.0/12', '192.168.1.0/24', '::1/128', 'fd00::/8'] },
    },
  ]);
  const bad = load(`frontend f
  mode http
  bind :80
  acl a src 10.0.0.0/255.0.255.0
  acl b src example.com
  default_backend b
backend b
  mode http
  server s 10.0.0.1:80
`);
  t.deepEqual(errs(bad), [
    "h.cfg:4:9: '10.0.0.0/255.0.255.0' is not an address, a CIDR or an address/netmask",
    "h.cfg:5:9: 'example.com' is not an address, a CIDR or an address/netmask",
  ]);
});

test('option splice-auto / splice-request / splice-response: warned about and not used (the in-kernel splice is slower than the relay here)', (t) => {
  const r = load(`defaults
  mode tcp
  option splice-auto
listen a
  bind 127.0.0.1:8001
  server s1 10.0.0.1:80
listen b
  bind 127.0.0.1:8002
  no option splice-auto
  option splice-response
  server s2 10.0.0.2:80
`);
  t.deepEqual(errs(r), []);
  const why =
    "tierlb relays in Node: its in-kernel splice is slower there on Linux 6.18; 'splice: auto' in the YAML turns it on";
  t.deepEqual(warns(r), [
    `h.cfg:3:10: 'option splice-auto': ${why}, ignored`,
    `h.cfg:10:10: 'option splice-response': ${why}, ignored`,
  ]);
  t.deepEqual(
    r.config?.listeners.map((l) => `${l.name}:${l.splice}`),
    ['a:off', 'b:off'],
  );
});
