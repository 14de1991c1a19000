/**
 * Interop with a real Debian haproxy (2.6): it accepts our send-proxy-v2 on an `accept-proxy` bind and sees the
 * client's address; and our accept_proxy bind understands haproxy's send-proxy-v2.
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
  sleep,
  startListeners,
  until,
} from './listeners-helpers.js';

const haveHaproxy = spawnSync('haproxy', ['-v']).status === 0;
let haproxy: ChildProcess;
let haLog = '';
let run: Running;
let dir: string;
let backend: HttpBackend;
const P: Record<string, number> = {};

test.before(async () => {
  // CI installs haproxy: without it this interop test fails rather than passing as skipped
  if (!haveHaproxy) throw new Error('haproxy is not installed (apt-get install haproxy); the interop tests need it');
  for (const k of ['haAccept', 'haFront', 'tcpOut', 'httpOut', 'ourAccept']) P[k] = await freePort();
  backend = await httpBackend('behind');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tierlb-haproxy-'));
  const cfg = path.join(dir, 'haproxy.cfg');
  fs.writeFileSync(
    cfg,
    `global
  log stdout format raw local0
defaults
  mode http
  log global
  option httplog
  timeout connect 2s
  timeout client 5s
  timeout server 5s
# accepts PROXY (v1 or v2) from tierlb and answers with the client address it learnt
frontend from_tierlb
  bind 127.0.0.1:${P.haAccept} accept-proxy
  log-format "from_tierlb src=%ci:%cp"
  http-request return status 200 content-type text/plain lf-string "%[src]"
# sends PROXY v2 to tierlb
frontend to_tierlb
  bind 127.0.0.1:${P.haFront}
  default_backend tierlb
backend tierlb
  server l7 127.0.0.1:${P.ourAccept} send-proxy-v2
`,
  );
  haproxy = spawn('haproxy', ['-f', cfg, '-db'], { stdio: ['ignore', 'pipe', 'pipe'] });
  haproxy.stdout!.on('data', (d) => (haLog += d));
  haproxy.stderr!.on('data', (d) => (haLog += d));
  run = await startListeners(`listeners:
  workers: 2
  stats: { enabled: false }
  listen:
    - name: tcp_v2
      bind: 127.0.0.1:${P.tcpOut}
      mode: tcp
      send_proxy: v2
      servers:
        - { name: haproxy, address: 127.0.0.1:${P.haAccept} }
    - name: http_v2
      bind: 127.0.0.1:${P.httpOut}
      mode: http
      send_proxy: v2
      servers:
        - { name: haproxy, address: 127.0.0.1:${P.haAccept} }
    - name: accept
      bind: 127.0.0.1:${P.ourAccept}
      mode: http
      accept_proxy: true
      forwardfor: true
      servers:
        - { name: behind, address: ${backend.address} }
`);
  // haproxy is up once its accept-proxy bind takes a connection (a refused connect is not "up")
  const accepting = () =>
    new Promise<boolean>((resolve) => {
      const s = net.connect(P.haAccept, '127.0.0.1');
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
  await backend?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

test.serial('haproxy accept-proxy sees the client address from our send-proxy-v2 (tcp mode)', async (t) => {
  const r = await request(`http://127.0.0.1:${P.tcpOut}/`, { localAddress: '127.0.0.7' });
  t.is(r.status, 200);
  t.is(r.body, '127.0.0.7');
  await sleep(200);
  t.regex(haLog, /from_tierlb src=127\.0\.0\.7:\d+/);
});

test.serial('haproxy accept-proxy sees the client address from our send-proxy-v2 (http mode)', async (t) => {
  const r = await request(`http://127.0.0.1:${P.httpOut}/`, { localAddress: '127.0.0.9' });
  t.is(r.status, 200);
  t.is(r.body, '127.0.0.9');
});

test.serial('our accept_proxy bind reads haproxy send-proxy-v2', async (t) => {
  const r = await request(`http://127.0.0.1:${P.haFront}/`, { localAddress: '127.0.0.11' });
  t.is(r.status, 200);
  t.is(r.body, 'behind');
  t.is(backend.lastHeaders?.['x-forwarded-for'], '127.0.0.11');
});
