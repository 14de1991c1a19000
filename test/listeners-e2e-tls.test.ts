/**
 * TLS listeners end to end with real clients (curl, openssl s_client) and a real haproxy in front: the certificate
 * SNI picks, TLS 1.3, ALPN h2 and http/1.1, HTTP/2 relayed to HTTP/1.1 servers, session resumption across workers,
 * client certificates, re-encryption to a TLS server (and its checks), mode tcp with tls, and haproxy's
 * send-proxy-v2 on an accept_proxy TLS listener. Certificates are made with openssl for the run.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
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
import { curl, makePki, type Pki, sClient, waitPort } from './listeners-tls-helpers.js';

let pki: Pki;
let run: Running;
let echo: http.Server;
let secureEcho: https.Server;
let tcpB: TcpBackend;
let wsB: HttpBackend;
let haproxy: ChildProcess | undefined;
let haLog = '';
const P: Record<string, number> = {};

/** a server that answers with what it got (and, over TLS, the server name the client sent) */
function echoHandler(req: http.IncomingMessage, res: http.ServerResponse): void {
  if (req.url === '/health') {
    res.end('ok');
    return;
  }
  let body = '';
  req.on('data', (d) => (body += d));
  req.on('end', () => {
    const sni = (req.socket as { servername?: string }).servername;
    res.setHeader('set-cookie', ['a=1', 'b=2']);
    res.end(JSON.stringify({ url: req.url, method: req.method, headers: req.headers, body, sni }));
  });
}

async function listen(s: net.Server): Promise<number> {
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  return (s.address() as net.AddressInfo).port;
}

test.before(async () => {
  if (spawnSync('haproxy', ['-v']).status !== 0) throw new Error('haproxy is not installed (apt-get install haproxy)');
  pki = await makePki([
    { name: 'a', cn: 'a.test', san: 'DNS:a.test' },
    { name: 'wild', cn: 'wild.b.test', san: 'DNS:*.b.test' },
    { name: 'backend', cn: 'backend.test', san: 'DNS:backend.test' },
    { name: 'client', cn: 'client one', client: true },
    { name: 'stranger', cn: 'stranger', client: true, ca: 'other-ca' },
  ]);
  const L = pki.leaf;
  echo = http.createServer(echoHandler);
  P.echo = await listen(echo);
  secureEcho = https.createServer(
    { cert: fs.readFileSync(L.backend!.cert), key: fs.readFileSync(L.backend!.key) },
    echoHandler,
  );
  secureEcho.on('upgrade', (_req, socket: net.Socket) => {
    socket.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\r\n');
    socket.on('data', (d) => socket.write(`tls-backend:${d}`));
    socket.on('error', () => {});
  });
  P.secure = await listen(secureEcho);
  tcpB = await tcpBackend('t1', '127.0.0.1', { greet: true });
  wsB = await httpBackend('ws1');
  for (const k of ['wss', 'web', 'mtls', 'mtlsOpt', 'only13', 'reenc', 'tcptls', 'proxied', 'ha'])
    P[k] = await freePort();
  const a = `{ cert: ${L.a!.cert}, key: ${L.a!.key} }`;
  run = await startListeners(`listeners:
  workers: 2
  stats: { enabled: false }
  listen:
    - name: web
      bind: 127.0.0.1:${P.web}
      mode: http
      forwardfor: true
      tls:
        certs: [ ${a}, { cert: ${L.wild!.cert}, key: ${L.wild!.key} } ]
      servers: [ { name: echo, address: 127.0.0.1:${P.echo} } ]
    - name: mtls
      bind: 127.0.0.1:${P.mtls}
      mode: http
      tls: { certs: [ ${a} ], client_ca: ${pki.ca}, verify: required }
      servers: [ { name: echo, address: 127.0.0.1:${P.echo} } ]
    - name: mtls_opt
      bind: 127.0.0.1:${P.mtlsOpt}
      mode: http
      tls: { certs: [ ${a} ], client_ca: ${pki.ca}, verify: optional }
      servers: [ { name: echo, address: 127.0.0.1:${P.echo} } ]
    - name: only13
      bind: 127.0.0.1:${P.only13}
      mode: http
      tls: { certs: [ ${a} ], min_version: TLSv1.3, alpn: [http/1.1] }
      servers: [ { name: echo, address: 127.0.0.1:${P.echo} } ]
    - name: reenc
      bind: 127.0.0.1:${P.reenc}
      mode: http
      # fall 1000: TLS checks timing out on a busy machine do not take the server down before the request
      check: { type: http, uri: /health, inter: 200ms, rise: 1, fall: 1000 }
      ssl: { verify: required, ca: ${pki.ca}, sni: backend.test }
      servers: [ { name: tlsb, address: 127.0.0.1:${P.secure} } ]
    - name: tcptls
      bind: 127.0.0.1:${P.tcptls}
      mode: tcp
      timeout: { client: 500ms }
      tls: { certs: [ ${a} ] }
      servers: [ { name: t1, address: ${tcpB.address} } ]
    - name: wss
      bind: 127.0.0.1:${P.wss}
      mode: http
      forwardfor: true
      tls: { certs: [ ${a} ] }
      servers: [ { name: ws1, address: ${wsB.address} } ]
    - name: proxied
      bind: 127.0.0.1:${P.proxied}
      mode: http
      accept_proxy: true
      forwardfor: true
      tls: { certs: [ ${a} ] }
      servers: [ { name: echo, address: 127.0.0.1:${P.echo} } ]
`);
  // haproxy in front, TCP mode (the TLS goes through it to tierlb), PROXY v2 with the client's address
  const cfg = path.join(pki.dir, 'haproxy.cfg');
  fs.writeFileSync(
    cfg,
    `defaults
  mode tcp
  timeout connect 2s
  timeout client 10s
  timeout server 10s
listen to_tierlb
  bind 127.0.0.1:${P.ha}
  server tierlb 127.0.0.1:${P.proxied} send-proxy-v2
`,
  );
  haproxy = spawn('haproxy', ['-f', cfg, '-db'], { stdio: ['ignore', 'pipe', 'pipe'] });
  haproxy.stdout!.on('data', (d) => (haLog += d));
  haproxy.stderr!.on('data', (d) => (haLog += d));
  await waitPort(P.ha!);
});

test.after.always(async () => {
  haproxy?.kill('SIGKILL');
  await run?.stop();
  echo?.close();
  secureEcho?.close();
  await tcpB?.close();
  await wsB?.close();
  pki?.cleanup();
});

const trust = () => ['-CAfile', pki.ca, '-verify_return_error'];

test('SNI picks the certificate: exact name, wildcard, and the first one without a name or for an unknown one', async (t) => {
  const exact = await sClient(P.web!, ['-servername', 'a.test', ...trust()]);
  t.true(exact.ok, exact.out);
  t.is(exact.cn, 'a.test');
  const wild = await sClient(P.web!, ['-servername', 'x.b.test', '-verify_hostname', 'x.b.test', ...trust()]);
  t.true(wild.ok, wild.out);
  t.is(wild.cn, 'wild.b.test');
  // a wildcard covers one label only
  t.is((await sClient(P.web!, ['-servername', 'y.x.b.test'])).cn, 'a.test');
  t.is((await sClient(P.web!, ['-noservername'])).cn, 'a.test');
  t.is((await sClient(P.web!, ['-servername', 'nobody.example'])).cn, 'a.test');
});

test('TLS 1.3 and ALPN: h2 or http/1.1 as the client offers; min_version TLSv1.3 refuses TLS 1.2', async (t) => {
  const h2 = await sClient(P.web!, ['-servername', 'a.test', '-tls1_3', '-alpn', 'h2,http/1.1']);
  t.true(h2.ok, h2.out);
  t.is(h2.protocol, 'TLSv1.3');
  t.is(h2.alpn, 'h2');
  const h1 = await sClient(P.web!, ['-servername', 'a.test', '-alpn', 'http/1.1']);
  t.is(h1.alpn, 'http/1.1');
  const tls12 = await sClient(P.web!, ['-servername', 'a.test', '-tls1_2']);
  t.true(tls12.ok, tls12.out);
  t.is(tls12.protocol, 'TLSv1.2');
  t.false((await sClient(P.only13!, ['-servername', 'a.test', '-tls1_2'])).ok);
  const only13 = await sClient(P.only13!, ['-servername', 'a.test', '-alpn', 'h2,http/1.1']);
  t.true(only13.ok, only13.out);
  t.is(only13.protocol, 'TLSv1.3');
  // alpn [http/1.1]: h2 is not offered back
  t.is(only13.alpn, 'http/1.1');
});

test('HTTP/2 and HTTP/1.1 over TLS reach the HTTP/1.1 server with Host, X-Forwarded-For and X-Forwarded-Proto https', async (t) => {
  const ca = ['--cacert', pki.ca];
  const r2 = await curl('a.test', P.web!, '/h2?x=1', [
    '--http2',
    ...ca,
    '-H',
    'Cookie: a=1',
    '-H',
    'Cookie: b=2',
    '--data-binary',
    'hello body',
    '-D',
    '-',
  ]);
  t.is(r2.code, 0, r2.stderr);
  t.is(r2.version, '2');
  t.is(r2.status, 200);
  const headEnd = r2.body.indexOf('\r\n\r\n');
  const respHead = r2.body.slice(0, headEnd).toLowerCase();
  const got2 = JSON.parse(r2.body.slice(headEnd + 4));
  t.is(got2.method, 'POST');
  t.is(got2.url, '/h2?x=1');
  t.is(got2.body, 'hello body');
  t.is(got2.headers.host, `a.test:${P.web}`);
  t.is(got2.headers['x-forwarded-proto'], 'https');
  t.is(got2.headers['x-forwarded-for'], '127.0.0.1');
  t.is(got2.headers.cookie, 'a=1; b=2');
  t.false(Object.keys(got2.headers).some((k) => k.startsWith(':')));
  // the server's connection-specific fields stay on its connection; both of its cookies come through
  t.notRegex(respHead, /^(connection|keep-alive|transfer-encoding):/m);
  t.regex(respHead, /^set-cookie: a=1$/m);
  t.regex(respHead, /^set-cookie: b=2$/m);

  const r1 = await curl('x.b.test', P.web!, '/h1', ['--http1.1', ...ca]);
  t.is(r1.code, 0, r1.stderr);
  t.is(r1.version, '1.1');
  const got1 = JSON.parse(r1.body);
  t.is(got1.headers.host, `x.b.test:${P.web}`);
  t.is(got1.headers['x-forwarded-proto'], 'https');

  const rows = await run.statsJson();
  const fe = rows.find((r) => r.pxname === 'web' && r.svname === 'FRONTEND');
  t.true(Number(fe?.hrsp_2xx) >= 2, JSON.stringify(fe));
});

test('sessions resume with tickets on every worker (the ticket keys are shared)', async (t) => {
  const sess = path.join(pki.dir, 'session.pem');
  // (a TLS 1.3 ticket comes after the handshake: s_client stays for one HTTP/1.0 request)
  const get = 'GET / HTTP/1.0\r\n\r\n';
  const first = await sClient(P.web!, ['-servername', 'a.test', '-sess_out', sess], get);
  t.true(first.ok, first.out);
  t.false(first.reused);
  // 2 workers take connections in turn: 4 resumptions land on both
  for (let i = 0; i < 4; i++) {
    const again = await sClient(P.web!, ['-servername', 'a.test', '-sess_in', sess], get);
    t.true(again.reused, again.out);
  }
});

test('client certificates: required refuses none and a foreign one; optional accepts none, refuses a foreign one', async (t) => {
  const L = pki.leaf;
  const ca = ['--cacert', pki.ca];
  const good = ['--cert', L.client!.cert, '--key', L.client!.key];
  const foreign = ['--cert', L.stranger!.cert, '--key', L.stranger!.key];
  const ok = await curl('a.test', P.mtls!, '/', [...ca, ...good]);
  t.is(ok.status, 200, ok.stderr);
  t.not((await curl('a.test', P.mtls!, '/', ca)).status, 200);
  t.not((await curl('a.test', P.mtls!, '/', [...ca, ...foreign])).status, 200);
  const sc = await sClient(
    P.mtls!,
    ['-servername', 'a.test', '-cert', L.client!.cert, '-key', L.client!.key],
    'GET / HTTP/1.0\r\n\r\n',
  );
  t.regex(sc.out, /HTTP\/1\.[01] 200/);
  const none = await sClient(P.mtls!, ['-servername', 'a.test'], 'GET / HTTP/1.0\r\n\r\n');
  t.notRegex(none.out, /HTTP\/1\.[01] 200/);

  t.is((await curl('a.test', P.mtlsOpt!, '/', ca)).status, 200);
  t.is((await curl('a.test', P.mtlsOpt!, '/', [...ca, ...good])).status, 200);
  t.not((await curl('a.test', P.mtlsOpt!, '/', [...ca, ...foreign])).status, 200);
});

test('ssl to the server: verified against its CA with the SNI given, and checked over TLS', async (t) => {
  const r = await request(`http://127.0.0.1:${P.reenc}/re?enc=1`);
  t.is(r.status, 200);
  const got = JSON.parse(r.body);
  t.is(got.sni, 'backend.test');
  t.is(got.url, '/re?enc=1');
  t.true(
    await until(async () => {
      const row = (await run.statsJson()).find((x) => x.pxname === 'reenc' && x.svname === 'tlsb');
      return row?.status === 'UP' && row?.check_status === 'L7OK';
    }),
  );
});

test('mode tcp with tls: the client speaks TLS, the server gets the plain bytes', async (t) => {
  const r = await sClient(P.tcptls!, ['-servername', 'a.test', ...trust()], 'ping\n');
  t.true(r.ok, r.out);
  t.regex(r.out, /hello from t1/);
});

test('haproxy in front sends PROXY v2 to an accept_proxy TLS listener: the client address reaches the server', async (t) => {
  const via = await run_curl_via_haproxy();
  t.is(via.code, 0, `${via.stderr}\n${haLog}`);
  t.is(via.version, '2');
  const got = JSON.parse(via.body);
  t.is(got.headers['x-forwarded-for'], '127.0.0.5');
  t.is(got.headers['x-forwarded-proto'], 'https');
});

/** curl from 127.0.0.5 through haproxy (it tells tierlb that address in its PROXY header) */
function run_curl_via_haproxy() {
  return curl('a.test', P.ha!, '/via', ['--http2', '--cacert', pki.ca, '--interface', '127.0.0.5']);
}

test('a WebSocket upgrade over TLS (HTTP/1.1) is relayed both ways, X-Forwarded-Proto https', async (t) => {
  let upgradeHeaders: http.IncomingHttpHeaders | undefined;
  wsB.server.prependListener('upgrade', (req: http.IncomingMessage) => (upgradeHeaders = req.headers));
  const sock = tls.connect({ host: '127.0.0.1', port: P.wss!, servername: 'a.test', ca: fs.readFileSync(pki.ca) });
  let got = '';
  sock.on('data', (d) => (got += d));
  await new Promise<void>((r) => sock.once('secureConnect', () => r()));
  sock.write(
    'GET /chat HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
  );
  t.true(await until(() => got.includes('\r\n\r\n')), got);
  t.regex(got, /^HTTP\/1\.1 101 /);
  sock.write('ping');
  t.true(await until(() => got.includes('ws1:ping')), got);
  t.is(upgradeHeaders?.['x-forwarded-proto'], 'https');
  sock.destroy();
});

test('a WebSocket upgrade to a server with ssl goes over TLS, verified with the CA and SNI given', async (t) => {
  const sock = net.connect(P.reenc!, '127.0.0.1');
  let got = '';
  sock.on('data', (d) => (got += d));
  sock.write('GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
  t.true(await until(() => got.includes('\r\n\r\n')), got);
  t.regex(got, /^HTTP\/1\.1 101 /);
  sock.write('ping');
  t.true(await until(() => got.includes('tls-backend:ping')), got);
  sock.destroy();
});
