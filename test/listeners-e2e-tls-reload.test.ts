/**
 * A certificate swap on reload: the files are replaced, `reload` makes new workers with the new certificate while
 * the old ones finish what they hold: a slow HTTP/2 request and a slow HTTP/1.1 request, both started before the
 * reload, are answered in full; new connections get the new certificate. A certificate whose key does not match
 * refuses the reload (file:line) and the old one keeps serving.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import test from 'ava';
import { freePort, type HttpBackend, httpBackend, type Running, sleep, startListeners } from './listeners-helpers.js';
import { makePki, type Pki, sClient } from './listeners-tls-helpers.js';

let pki: Pki;
let run: Running;
let backend: HttpBackend;
let port: number;
let certFile: string;
let keyFile: string;

test.before(async () => {
  pki = await makePki([
    { name: 'v1', cn: 'first.a.test', san: 'DNS:a.test' },
    { name: 'v2', cn: 'second.a.test', san: 'DNS:a.test' },
  ]);
  backend = await httpBackend('b1');
  port = await freePort();
  certFile = `${pki.dir}/live.pem`;
  keyFile = `${pki.dir}/live.key`;
  fs.copyFileSync(pki.leaf.v1!.cert, certFile);
  fs.copyFileSync(pki.leaf.v1!.key, keyFile);
  run = await startListeners(`listeners:
  workers: 2
  stats: { enabled: false }
  listen:
    - name: web
      bind: 127.0.0.1:${port}
      mode: http
      tls: { certs: [ { cert: ${certFile}, key: ${keyFile} } ] }
      servers: [ { name: b1, address: ${backend.address} } ]
`);
});

test.after.always(async () => {
  await run?.stop();
  await backend?.close();
  pki?.cleanup();
});

/** curl in the background (the answer comes after the reload) */
function slowCurl(args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const c = spawn('curl', [
      '-sS',
      '--max-time',
      '20',
      '--cacert',
      pki.ca,
      '--resolve',
      `a.test:${port}:127.0.0.1`,
      '-w',
      '\n%{http_code} %{http_version}',
      ...args,
    ]);
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    c.stderr.on('data', (d) => (out += d));
    c.on('exit', (code) => resolve({ code: code ?? 1, out }));
  });
}

test.serial('new certificates on reload; requests in flight on the old workers finish', async (t) => {
  t.is((await sClient(port, ['-servername', 'a.test'])).cn, 'first.a.test');
  const before = await run.workerPids();
  const slow2 = slowCurl(['--http2', `https://a.test:${port}/slow?delay=1500`]);
  const slow1 = slowCurl(['--http1.1', `https://a.test:${port}/slow?delay=1500`]);
  // both requests are at the server (the connections are open on the old workers)
  for (let i = 0; i < 100 && backend.active < 2; i++) await sleep(20);
  t.is(backend.active, 2);
  fs.copyFileSync(pki.leaf.v2!.cert, certFile);
  fs.copyFileSync(pki.leaf.v2!.key, keyFile);
  t.is(await run.reload(), 'ok\n');
  const after = await run.workerPids();
  t.false(after.some((p) => before.includes(p)));
  t.is((await sClient(port, ['-servername', 'a.test'])).cn, 'second.a.test');
  const [r2, r1] = await Promise.all([slow2, slow1]);
  t.regex(r2.out, /b1\n200 2$/);
  t.regex(r1.out, /b1\n200 1\.1$/);
});

test.serial(
  'a key that does not match its certificate refuses the reload; the old certificate keeps serving',
  async (t) => {
    const was = (await sClient(port, ['-servername', 'a.test'])).cn;
    fs.copyFileSync(pki.leaf.v1!.cert, certFile); // v1's certificate with v2's key
    const r = await run.reload();
    t.regex(r, /^error\n/);
    t.regex(r, /listeners\.yaml:\d+:\d+: .*tls\.certs\[0\]\.cert: .*live\.pem/);
    t.is((await sClient(port, ['-servername', 'a.test'])).cn, was);
  },
);
