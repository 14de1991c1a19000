/**
 * Interop with a real Debian haproxy (2.6): it accepts our send-proxy-v2 on an `accept-proxy` bind and sees the
 * client's address; and our accept_proxy bind understands haproxy's send-proxy-v2.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
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
  if (!haveHaproxy) return;
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
  await until(async () => {
    try {
      await request(`http://127.0.0.1:${P.haAccept}/`, { timeout: 500 });
      return false;
    } catch {
      return true; // up (it refuses plain HTTP on an accept-proxy bind)
    }
  }, 5000);
});

test.after.always(async () => {
  await run?.stop();
  haproxy?.kill('SIGTERM');
  await backend?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const maybe = haveHaproxy ? test.serial : test.serial.skip;

maybe('haproxy accept-proxy sees the client address from our send-proxy-v2 (tcp mode)', async (t) => {
  const r = await request(`http://127.0.0.1:${P.tcpOut}/`, { localAddress: '127.0.0.7' });
  t.is(r.status, 200);
  t.is(r.body, '127.0.0.7');
  await sleep(200);
  t.regex(haLog, /from_tierlb src=127\.0\.0\.7:\d+/);
});

maybe('haproxy accept-proxy sees the client address from our send-proxy-v2 (http mode)', async (t) => {
  const r = await request(`http://127.0.0.1:${P.httpOut}/`, { localAddress: '127.0.0.9' });
  t.is(r.status, 200);
  t.is(r.body, '127.0.0.9');
});

maybe('our accept_proxy bind reads haproxy send-proxy-v2', async (t) => {
  const r = await request(`http://127.0.0.1:${P.haFront}/`, { localAddress: '127.0.0.11' });
  t.is(r.status, 200);
  t.is(r.body, 'behind');
  t.is(backend.lastHeaders?.['x-forwarded-for'], '127.0.0.11');
});
