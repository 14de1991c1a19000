/**
 * TLS from a haproxy.cfg: the same file (`bind ... ssl crt A crt B alpn h2,http/1.1`, and a bind without alpn) run by
 * a real haproxy 2.6 and by `tierlb listeners --haproxy`, side by side on loopback, asked by curl with --resolve
 * (SNI) and --http2 / --http1.1: the certificate each name gets (the first one without a match), the HTTP version
 * ALPN settles on, the status and the server that answered must be the same.
 *
 * It needs the listeners' `tls:` (TLS termination); on a tree without it the test is skipped with that reason.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type tls from 'node:tls';
import test from 'ava';
import { listenersSchema } from '../src/listeners/config-schema.js';
import { BOTH, runBoth, type SideBySide, uniquePort, type Who } from './listeners-haproxy-cfg-helpers.js';

const haveHaproxy = spawnSync('haproxy', ['-v']).status === 0;
const haveTls = 'tls' in listenersSchema.properties.listen.items.properties;

const CFG = `global
    nbthread 1
    stats socket "\${CTL}"

defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s

listen stats
    bind "127.0.0.1:\${STATS}"
    stats enable

listen web
    bind "127.0.0.1:\${TLS}" ssl crt "\${CERTS}/a.pem" crt "\${CERTS}/b.pem" alpn h2,http/1.1
    server w1 "127.0.0.1:\${WEB1}"

listen plain11
    bind "127.0.0.1:\${TLS11}" ssl crt "\${CERTS}/b.pem"
    server w2 "127.0.0.1:\${WEB2}"

# re-encryption: plain HTTP in, TLS to the server (verified against a CA, with SNI; or not verified)
listen reenc
    bind "127.0.0.1:\${REENC}"
    server t1 "127.0.0.1:\${HTTPS1}" ssl verify required ca-file "\${CERTS}/a.pem" sni str(a.example.com)

listen reenc_none
    bind "127.0.0.1:\${REENC_NONE}"
    server t2 "127.0.0.1:\${HTTPS1}" ssl verify none
`;

let both: SideBySide | undefined;
const servers: (http.Server | https.Server)[] = [];
const ports: Record<Who, Record<string, number>> = { haproxy: {}, tierlb: {} };
let dir = '';

/** A self-signed certificate for `name`, key inside the PEM (HAProxy's crt file). */
function makeCert(file: string, name: string): void {
  const key = `${file}.key.tmp`;
  const crt = `${file}.crt.tmp`;
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      key,
      '-out',
      crt,
      '-days',
      '2',
      '-subj',
      `/CN=${name}`,
      '-addext',
      `subjectAltName=DNS:${name}`,
    ],
    { stdio: 'ignore' },
  );
  fs.writeFileSync(file, fs.readFileSync(crt, 'utf8') + fs.readFileSync(key, 'utf8'));
  fs.rmSync(key);
  fs.rmSync(crt);
}

test.before(async () => {
  if (!haveTls) return;
  if (!haveHaproxy) throw new Error('haproxy is not installed (apt-get install haproxy); the interop test needs it');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tierlb-hacfg-tls-'));
  makeCert(path.join(dir, 'a.pem'), 'a.example.com');
  makeCert(path.join(dir, 'b.pem'), 'b.example.com');
  const cfg = path.join(dir, 'haproxy.cfg');
  fs.writeFileSync(cfg, CFG);
  const backends: Record<string, string> = {};
  for (const name of ['WEB1', 'WEB2']) {
    const s = http.createServer((req, res) => {
      req.resume();
      res.writeHead(200, { 'x-server': name.toLowerCase() }).end(name.toLowerCase());
    });
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
    servers.push(s);
    backends[name] = String((s.address() as net.AddressInfo).port);
  }
  // a TLS server (a.example.com's certificate) that says which name the client asked for
  const pem = fs.readFileSync(path.join(dir, 'a.pem'), 'utf8');
  const tlsServer = https.createServer({ cert: pem, key: pem }, (req, res) => {
    req.resume();
    res.end(`tls ${(req.socket as tls.TLSSocket).servername || 'no-sni'}`);
  });
  await new Promise<void>((r) => tlsServer.listen(0, '127.0.0.1', () => r()));
  servers.push(tlsServer);
  backends.HTTPS1 = String((tlsServer.address() as net.AddressInfo).port);
  for (const who of BOTH)
    for (const k of ['TLS', 'TLS11', 'STATS', 'REENC', 'REENC_NONE']) ports[who][k] = await uniquePort();
  both = await runBoth(
    cfg,
    (who) => ({
      ...backends,
      TLS: String(ports[who].TLS),
      TLS11: String(ports[who].TLS11),
      STATS: String(ports[who].STATS),
      REENC: String(ports[who].REENC),
      REENC_NONE: String(ports[who].REENC_NONE),
      CERTS: dir,
      CTL: path.join(dir, `${who}.sock`),
    }),
    (who) => [ports[who].TLS, ports[who].TLS11, ports[who].REENC],
  );
});

test.after.always(async () => {
  await both?.stop();
  for (const s of servers) s.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/**
 * curl over TLS to `name` (SNI through --resolve): certificate subject, HTTP version, status, body. Asynchronous:
 * the backends answer from this process.
 */
async function curl(port: number, name: string, version: '--http2' | '--http1.1'): Promise<string> {
  const r = await new Promise<{ stdout: string; stderr: string; status: number | null }>((resolve) => {
    const p = spawn('curl', [
      '-sk',
      '-v',
      version,
      '--max-time',
      '10',
      '--resolve',
      `${name}:${port}:127.0.0.1`,
      '-w',
      '\n%{http_version} %{http_code}',
      `https://${name}:${port}/`,
    ]);
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('close', (status) => resolve({ stdout, stderr, status }));
  });
  const subject = /subject: (.*)/.exec(r.stderr)?.[1]?.trim() ?? `none (exit ${r.status})`;
  return `${subject} | ${r.stdout.trim().replace(/\n/g, ' | ')}`;
}

const CASES: [string, string, '--http2' | '--http1.1'][] = [
  ['TLS', 'a.example.com', '--http2'],
  ['TLS', 'b.example.com', '--http2'],
  ['TLS', 'c.example.com', '--http2'],
  ['TLS', 'b.example.com', '--http1.1'],
  ['TLS11', 'b.example.com', '--http2'],
  ['TLS11', 'a.example.com', '--http1.1'],
];

(haveTls ? test : test.skip)(
  'haproxy 2.6 and tierlb --haproxy terminate TLS alike: certificate by SNI, ALPN, answer',
  async (t) => {
    const rows: string[] = [];
    let differ = 0;
    for (const [port, name, version] of CASES) {
      const ha = await curl(ports.haproxy[port], name, version);
      const us = await curl(ports.tierlb[port], name, version);
      if (ha !== us) differ++;
      rows.push(
        `${ha === us ? 'same' : 'DIFF'} ${port} ${name} ${version}: haproxy ${ha}${ha === us ? '' : ` / tierlb ${us}`}`,
      );
    }
    t.log(rows.join('\n'));
    t.is(differ, 0);
    // and not trivially: both certificates, both HTTP versions and both servers appear
    const all = rows.join('\n');
    for (const s of ['CN=a.example.com', 'CN=b.example.com', '| web1 | 2 200', '| web2 | 1.1 200', '| web1 | 1.1 200'])
      t.true(all.includes(s), s);
  },
);

async function get(port: number): Promise<string> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve(`${res.statusCode} ${res.statusCode === 200 ? body : ''}`));
    });
    req.setTimeout(10_000, () => req.destroy(new Error('client timeout')));
    req.on('error', (e) => resolve(`error ${e.message}`));
  });
}

(haveTls ? test : test.skip)(
  're-encryption to the server: ssl verify required ca-file sni, and verify none, alike',
  async (t) => {
    for (const k of ['REENC', 'REENC_NONE']) {
      const ha = await get(ports.haproxy[k]);
      const us = await get(ports.tierlb[k]);
      t.log(`${k}: haproxy ${ha} / tierlb ${us}`);
      t.is(us, ha);
    }
    t.is(await get(ports.tierlb.REENC), '200 tls a.example.com');
  },
);
