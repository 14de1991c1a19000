/** HTTP mode through the real `tierlb listeners`: error statuses, timeouts, queue, retries, WebSocket, headers. */
import net from 'node:net';
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

let run: Running;
const P: Record<string, number> = {};
let good: HttpBackend;
let other: HttpBackend;
let deadPort: number;

test.before(async () => {
  for (const l of ['h', 'dead', 'none', 'queue', 'redis']) P[l] = await freePort();
  good = await httpBackend('good');
  other = await httpBackend('other');
  deadPort = await freePort();
  run = await startListeners(`listeners:
  workers: 2
  stats: { enabled: false }
  defaults:
    timeout: { connect: 1s, server: 1s, http_request: 1500ms, queue: 600ms }
  listen:
    - name: h
      bind: 127.0.0.1:${P.h}
      mode: http
      forwardfor: true
      servers:
        - { name: good, address: ${good.address} }
    - name: dead
      bind: 127.0.0.1:${P.dead}
      mode: http
      retries: 2
      servers:
        - { name: d1, address: 127.0.0.1:${deadPort} }
    - name: none
      bind: 127.0.0.1:${P.none}
      mode: http
      servers:
        - { name: off, address: ${good.address}, disabled: true }
    - name: queue
      bind: 127.0.0.1:${P.queue}
      mode: http
      servers:
        - { name: one, address: ${other.address}, maxconn: 1 }
    - name: redis
      bind: 127.0.0.1:${P.redis}
      mode: http
      retries: 3
      redispatch: true
      servers:
        - { name: gone, address: 127.0.0.1:${deadPort} }
        - { name: up, address: ${good.address} }
`);
});

test.after.always(async () => {
  await run?.stop();
  await good?.close();
  await other?.close();
});

test.serial('forwardfor adds X-Forwarded-For/-Proto/-Host', async (t) => {
  const r = await request(`http://127.0.0.1:${P.h}/x`, { headers: { 'x-forwarded-for': '203.0.113.9' } });
  t.is(r.status, 200);
  t.is(r.body, 'good');
  t.is(good.lastHeaders?.['x-forwarded-for'], '203.0.113.9, 127.0.0.1');
  t.is(good.lastHeaders?.['x-forwarded-proto'], 'http');
  t.is(good.lastHeaders?.['x-forwarded-host'], `127.0.0.1:${P.h}`);
});

test.serial('502 when the server cannot be reached after the retries', async (t) => {
  const r = await request(`http://127.0.0.1:${P.dead}/`);
  t.is(r.status, 502);
  const rows = await run.statsJson();
  const d1 = rows.find((x) => x.pxname === 'dead' && x.svname === 'd1')!;
  t.is(d1.econ, 3); // the first try and 2 retries
  t.is(d1.wretr, 2);
});

test.serial('503 when no server is up', async (t) => {
  const r = await request(`http://127.0.0.1:${P.none}/`);
  t.is(r.status, 503);
  t.regex(r.body, /No server is available/);
});

test.serial('504 when the server does not answer within timeout server', async (t) => {
  const r = await request(`http://127.0.0.1:${P.h}/?delay=3000`);
  t.is(r.status, 504);
});

test.serial(
  'maxconn queue: a waiter is served when the slot frees, and gets 503 when timeout queue expires',
  async (t) => {
    const [a, b] = await Promise.all([
      request(`http://127.0.0.1:${P.queue}/?delay=200`),
      request(`http://127.0.0.1:${P.queue}/?delay=200`),
    ]);
    t.deepEqual([a.status, b.status], [200, 200]);
    t.is(other.active, 0);
    const slow = request(`http://127.0.0.1:${P.queue}/?delay=950`);
    await sleep(150);
    const queued = await request(`http://127.0.0.1:${P.queue}/`);
    t.is(queued.status, 503);
    t.is((await slow).status, 200);
    const be = (await run.statsJson()).find((x) => x.pxname === 'queue' && x.svname === 'BACKEND')!;
    t.true(Number(be.qmax) >= 1);
  },
);

test.serial('retries redispatch to another server: no failure with one server dead', async (t) => {
  for (let i = 0; i < 10; i++) {
    const r = await request(`http://127.0.0.1:${P.redis}/`);
    t.is(r.status, 200);
  }
  const rows = await run.statsJson();
  const up = rows.find((x) => x.pxname === 'redis' && x.svname === 'up')!;
  const gone = rows.find((x) => x.pxname === 'redis' && x.svname === 'gone')!;
  t.true(Number(gone.econ) >= 1);
  t.true(Number(up.wredis) >= 1);
});

test.serial('408 for a client sending its headers one byte a second', async (t) => {
  const s = net.connect(P.h, '127.0.0.1');
  let got = '';
  s.on('data', (d) => (got += d));
  const closed = new Promise<void>((r) => s.on('close', () => r()));
  s.on('error', () => {});
  const req = 'GET / HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa\r\n\r\n';
  for (const ch of req) {
    if (s.destroyed || got) break;
    s.write(ch);
    await sleep(1000);
  }
  await Promise.race([closed, sleep(5000)]);
  t.regex(got, /^HTTP\/1\.1 408 /);
  s.destroy();
});

test.serial('WebSocket upgrade is relayed both ways', async (t) => {
  const s = net.connect(P.h, '127.0.0.1');
  s.on('error', () => {});
  let got = '';
  s.on('data', (d) => (got += d));
  s.write(
    'GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
  );
  t.true(await until(() => got.includes('\r\n\r\n'), 5000));
  t.regex(got, /^HTTP\/1\.1 101 /);
  t.regex(got, /x-server: good/);
  got = '';
  s.write('ping');
  t.true(await until(() => got.includes('good:ping'), 5000));
  s.destroy();
});

test.serial('a client abort frees the server slot and the server connection; the worker lives on', async (t) => {
  const pids = await run.workerPids();
  for (let i = 0; i < 4; i++) {
    const s = net.connect(P.h, '127.0.0.1');
    s.on('error', () => {});
    s.write('GET /?delay=800 HTTP/1.1\r\nHost: x\r\n\r\n');
    await sleep(150);
    s.destroy();
  }
  const slotFree = await until(async () => {
    const row = (await run.statsJson()).find((x) => x.pxname === 'h' && x.svname === 'good')!;
    return row.scur === 0;
  }, 5000);
  t.true(slotFree);
  const conns = await until(
    () => new Promise<boolean>((r) => good.server.getConnections((_e, n) => r(n === 0 || n <= 1))),
    5000,
  );
  t.true(conns, 'server-side connections closed');
  t.deepEqual(await run.workerPids(), pids);
  t.is((await request(`http://127.0.0.1:${P.h}/`)).status, 200);
});
