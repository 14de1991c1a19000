/**
 * The TLS config of the listeners: the schema's checks, resolution, cert_dir, SNI matching, cipher lists; and an
 * HTTP/2 connection's wait between streams on ManualTimers.
 */
import fs from 'node:fs';
import type http2 from 'node:http2';
import path from 'node:path';
import type tls from 'node:tls';
import test from 'ava';
import { ManualTimers } from '../src/common/timers.js';
import { ConfigError } from '../src/config/index.js';
import { loadListenersConfig, loadListenersConfigString } from '../src/listeners/config.js';
import '../src/listeners/config-schema.js';
import { readTlsFiles } from '../src/listeners/tls-files.js';
import { H2Conn } from '../src/listeners/worker/h2.js';
import { CertIndex, cipherString } from '../src/listeners/worker/tls.js';
import { makePki, type Pki } from './listeners-tls-helpers.js';

let pki: Pki;
test.before(async () => {
  pki = await makePki([
    { name: 'a', cn: 'a.test', san: 'DNS:a.test,DNS:www.a.test' },
    { name: 'wild', cn: 'wild', san: 'DNS:*.b.test' },
    { name: 'cnonly', cn: 'cn.test' },
  ]);
});
test.after.always(() => pki?.cleanup());

const yaml = (listener: string) => `listeners:
  listen:
    - name: web
      bind: 127.0.0.1:8443
${listener}
      servers: [ { name: s1, address: 127.0.0.1:8080 } ]
`;

function problems(text: string): string {
  try {
    loadListenersConfigString(text, 'l.yaml');
    return '';
  } catch (e) {
    if (e instanceof ConfigError) return e.format();
    throw e;
  }
}

test('tls and ssl resolve with their defaults', (t) => {
  const cfg = loadListenersConfigString(
    yaml(`      mode: http
      tls: { certs: [ { cert: /x.pem } ] }
      ssl: { ca: /ca.pem }`),
  );
  const l = cfg.listeners[0]!;
  t.deepEqual(l.tls, {
    certs: [{ cert: '/x.pem', key: undefined }],
    certDir: undefined,
    minVersion: 'TLSv1.2',
    ciphers: undefined,
    ciphersuites: undefined,
    alpn: ['h2', 'http/1.1'],
    clientCa: undefined,
    verify: 'none',
  });
  t.deepEqual(l.servers[0]!.ssl, { verify: 'required', ca: '/ca.pem', sni: undefined });
  const tcp = loadListenersConfigString(yaml(`      mode: tcp\n      tls: { cert_dir: /d, client_ca: /ca.pem }`));
  t.deepEqual(tcp.listeners[0]!.tls!.alpn, []);
  t.is(tcp.listeners[0]!.tls!.verify, 'required');
});

test('tls mistakes are reported at their place', (t) => {
  t.regex(
    problems(yaml('      mode: http\n      tls: { min_version: TLSv1.3 }')),
    /l\.yaml:6:\d+: .*tls: tls needs certificates/,
  );
  t.regex(
    problems(yaml('      mode: tcp\n      tls: { certs: [ { cert: /x } ], alpn: [h2] }')),
    /tls\.alpn: alpn h2 needs mode: http/,
  );
  t.regex(
    problems(yaml('      mode: http\n      tls: { certs: [ { cert: /x } ], verify: required }')),
    /tls\.verify: verify required needs client_ca/,
  );
  t.regex(
    problems(yaml('      mode: http\n      tls: { certs: [ { cert: /x } ], ciphers: "TLS_AES_128_GCM_SHA256" }')),
    /tls\.ciphers: TLS 1\.3 suites/,
  );
  t.regex(
    problems(yaml('      mode: http\n      tls: { certs: [ { cert: /x } ], min_version: TLSv1.1 }')),
    /min_version/,
  );
  t.regex(problems(yaml('      mode: http\n      ssl: { verify: sometimes }')), /ssl\.verify/);
});

test('a certificate file that is missing or has no key is refused at its line', async (t) => {
  const f = path.join(pki.dir, 'l.yaml');
  fs.writeFileSync(f, yaml(`      mode: http\n      tls:\n        certs:\n          - { cert: ${pki.leaf.a!.cert} }`));
  const e1 = await t.throwsAsync(loadListenersConfig(f), { instanceOf: ConfigError });
  t.regex(e1.message, /l\.yaml:8:\d+: listeners\.listen\[0\]\.tls\.certs\[0\]\.cert: .*a\.pem holds no private key/);
  fs.writeFileSync(
    f,
    yaml(`      mode: http\n      tls: { certs: [ { cert: ${pki.dir}/nope.pem, key: ${pki.leaf.a!.key} } ] }`),
  );
  const e2 = await t.throwsAsync(loadListenersConfig(f), { instanceOf: ConfigError });
  t.regex(e2.message, /cannot read the certificate .*nope\.pem: ENOENT/);
  // a good one: the files are read into the config
  fs.writeFileSync(
    f,
    yaml(`      mode: http\n      tls: { certs: [ { cert: ${pki.leaf.a!.cert}, key: ${pki.leaf.a!.key} } ] }`),
  );
  const cfg = await loadListenersConfig(f);
  t.deepEqual(cfg.listeners[0]!.tls!.material!.certs[0]!.names, ['a.test', 'www.a.test']);
});

test('cert_dir takes every certificate with its key (inside, or FILE.key beside) in name order', (t) => {
  const dir = path.join(pki.dir, 'certs');
  fs.mkdirSync(dir);
  const L = pki.leaf;
  fs.writeFileSync(path.join(dir, '1-a.pem'), fs.readFileSync(L.a!.cert, 'utf8') + fs.readFileSync(L.a!.key, 'utf8'));
  fs.copyFileSync(L.wild!.cert, path.join(dir, '2-wild.pem'));
  fs.copyFileSync(L.wild!.key, path.join(dir, '2-wild.pem.key'));
  fs.copyFileSync(L.cnonly!.cert, path.join(dir, '3-cn.crt'));
  fs.copyFileSync(L.cnonly!.key, path.join(dir, '3-cn.key'));
  const m = readTlsFiles({ certs: [], certDir: dir, minVersion: 'TLSv1.2', alpn: [], verify: 'none' });
  t.deepEqual(
    m.certs.map((c) => c.names),
    [['a.test', 'www.a.test'], ['*.b.test'], ['cn.test']],
  );
});

test('SNI: exact names first, then a one-label wildcard, else the first certificate', (t) => {
  const idx = new CertIndex(
    [
      { names: ['a.test'], value: 'A' },
      { names: ['*.b.test', 'exact.b.test'], value: 'W' },
      { names: ['x.b.test'], value: 'X' },
    ],
    'A',
  );
  t.is(idx.find('x.b.test'), 'X');
  t.is(idx.find('Y.B.TEST'), 'W');
  t.is(idx.find('exact.b.test.'), 'W');
  t.is(idx.find('deep.y.b.test'), 'A');
  t.is(idx.find('b.test'), 'A');
  t.is(idx.find(undefined), 'A');
});

test("cipher lists: ciphersuites (TLS 1.3) and ciphers (<= 1.2) make Node's one string, defaults for the other", (t) => {
  t.is(cipherString({}), undefined);
  const s = cipherString({ ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' })!;
  t.regex(s, /^TLS_AES_256_GCM_SHA384:.*:ECDHE-ECDSA-AES128-GCM-SHA256$/);
  const u = cipherString({ ciphersuites: 'TLS_AES_128_GCM_SHA256' })!;
  t.regex(u, /^TLS_AES_128_GCM_SHA256:ECDHE-RSA-AES128-GCM-SHA256:/);
});

test('HTTP/2: no stream for timeout http-keep-alive (the first: http-request) closes the session with GOAWAY', (t) => {
  const timers = new ManualTimers();
  const timeout = loadListenersConfigString(
    yaml('      mode: http\n      timeout: { http_request: 3s, http_keep_alive: 1s }'),
  ).listeners[0]!.timeout;
  const cx = { timers, timeout, requestTimedOut: () => {} };
  let closes = 0;
  const session = { closed: false, close: () => closes++ } as unknown as http2.ServerHttp2Session;
  const conn = new H2Conn({ src: '', srcPort: 0, dst: '', dstPort: 0 }, {} as tls.TLSSocket, cx);
  conn.session = session;
  conn.awaitRequest(false);
  timers.advance(2999);
  t.is(closes, 0);
  // a stream begins: no wait while it runs
  conn.stopWait();
  conn.busy++;
  timers.advance(10_000);
  t.is(closes, 0);
  // its response is sent: the keep-alive wait
  conn.busy--;
  conn.awaitRequest(true);
  timers.advance(999);
  t.is(closes, 0);
  timers.advance(1);
  t.is(closes, 1);
  // a closed connection waits no more
  conn.awaitRequest(true);
  conn.closed();
  timers.advance(5000);
  t.is(closes, 1);
});
