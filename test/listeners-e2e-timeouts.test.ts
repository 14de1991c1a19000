/** HTTP mode through the real `tierlb listeners`: `timeout client` and `timeout http-keep-alive` on keep-alive
 * connections (Node's http server resets a socket's timeout after each response and at each request). */
import net from 'node:net';
import test from 'ava';
import {
  freePort,
  type HttpBackend,
  httpBackend,
  type Running,
  sleep,
  startListeners,
  until,
} from './listeners-helpers.js';

const CLIENT = 1000;
const KEEP_ALIVE = 1500;
let run: Running;
let port: number;
/** a listener with timeout http-request and http-keep-alive 0: no wait of their own, timeout client applies */
let noWaitPort: number;
let good: HttpBackend;

test.before(async () => {
  port = await freePort();
  noWaitPort = await freePort();
  good = await httpBackend('good');
  // server and http_request well above client: neither a 504 nor a 408 of theirs can pass for the client timeout
  run = await startListeners(`listeners:
  workers: 1
  stats: { enabled: false }
  listen:
    - name: ka
      bind: 127.0.0.1:${port}
      mode: http
      timeout: { client: ${CLIENT}ms, server: 10s, http_request: 6s, http_keep_alive: ${KEEP_ALIVE}ms }
      servers:
        - { name: good, address: ${good.address} }
    - name: nowait
      bind: 127.0.0.1:${noWaitPort}
      mode: http
      timeout: { client: ${CLIENT}ms, server: 10s, http_request: 0, http_keep_alive: 0 }
      servers:
        - { name: good, address: ${good.address} }
`);
});

test.after.always(async () => {
  await run?.stop();
  await good?.close();
});

/** A raw client connection: what it received, and when it closed (ms since epoch, 0 while open). */
function open(to = port) {
  const s = net.connect(to, '127.0.0.1');
  const c = { s, got: '', closedAt: 0 };
  s.on('data', (d) => (c.got += d));
  s.on('error', () => {});
  s.on('close', () => (c.closedAt = Date.now()));
  return c;
}

let last = '';

/** One complete GET on the connection, answered 200 by the backend (whole, chunked or not; the connection stays open). */
async function firstRequest(c: ReturnType<typeof open>): Promise<boolean> {
  c.s.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  const ok = await until(() => /^HTTP\/1\.1 200 [\s\S]*(\r\n\r\ngood|\r\n0\r\n\r\n)$/.test(c.got), 5000, 10);
  last = c.got;
  c.got = '';
  return ok && !c.closedAt;
}

/** The connection is closed (or answered 408, then closed) within about `timeout client` after `t0`. */
async function closedByClientTimeout(t: import('ava').ExecutionContext, c: ReturnType<typeof open>, t0: number) {
  const closed = await until(() => c.closedAt > 0, CLIENT + 3000, 20);
  t.true(closed, `connection still open ${Date.now() - t0} ms after the client stalled (timeout client ${CLIENT} ms)`);
  if (closed) {
    const took = c.closedAt - t0;
    t.true(took >= CLIENT - 200, `closed too early: ${took} ms`);
    t.true(took <= CLIENT + 1500, `closed too late: ${took} ms`);
  }
  if (c.got) t.regex(c.got, /^HTTP\/1\.1 408 /);
  c.s.destroy();
}

/** After `answered` complete requests, the client sends `stalled` (a request it never finishes) and goes quiet. */
async function stallAfter(t: import('ava').ExecutionContext, answered: number, stalled: string) {
  const c = open();
  for (let i = 0; i < answered; i++) t.true(await firstRequest(c), `request ${i + 1}`);
  if (answered) await sleep(200);
  c.s.write(stalled);
  await closedByClientTimeout(t, c, Date.now());
}

const POST = 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n';

test('timeout client: the first request stalling mid-body is cut', (t) => stallAfter(t, 0, `${POST}0123456789`));

test('timeout client: the second request on a keep-alive connection stalling mid-body is cut', (t) =>
  stallAfter(t, 1, `${POST}0123456789`));

test('timeout client: the second request sending its headers and then nothing is cut', (t) => stallAfter(t, 1, POST));

test('timeout client: a third request after two answered ones is cut too', (t) => stallAfter(t, 2, `${POST}0123`));

test('timeout http-keep-alive: an idle keep-alive connection is closed', async (t) => {
  const c = open();
  t.true(await firstRequest(c));
  const t0 = Date.now();
  const closed = await until(() => c.closedAt > 0, KEEP_ALIVE + 4000, 20);
  t.true(closed, 'idle keep-alive connection still open');
  const took = c.closedAt - t0;
  // at timeout http-keep-alive itself (Node's own idle timeout would be 1 s later: HTTP_SERVER_KEEP_ALIVE_TIMEOUT_BUFFER)
  t.true(took >= KEEP_ALIVE - 200 && took <= KEEP_ALIVE + 600, `closed after ${took} ms`);
  t.is(c.got, '', 'closed silently');
  c.s.destroy();
});

test("the server's Keep-Alive hint does not reach the client", async (t) => {
  const c = open();
  t.true(await firstRequest(c));
  // the backend says timeout=30; the listener closes idle connections after http_keep_alive (as HAProxy, no hint)
  t.regex(last, /^HTTP\/1\.1 200 /);
  t.notRegex(last, /\r\nkeep-alive:/i);
  c.s.destroy();
});

test('a keep-alive connection with requests coming before each timeout stays open', async (t) => {
  const c = open();
  for (let i = 0; i < 3; i++) {
    t.true(await firstRequest(c), `request ${i + 1}`);
    await sleep(CLIENT / 2);
  }
  t.is(c.closedAt, 0);
  c.s.destroy();
});

test('timeout http-request 0 is no wait: headers sent a byte every 300 ms (under timeout client) are answered', async (t) => {
  const c = open(noWaitPort);
  const req = 'GET / HTTP/1.1\r\nHost: x\r\n\r\n';
  for (const ch of req.slice(0, 8)) {
    c.s.write(ch);
    await sleep(300);
  }
  t.is(c.closedAt, 0, 'closed while the request was coming');
  c.s.write(req.slice(8));
  t.true(await until(() => /^HTTP\/1\.1 200 /.test(c.got), 5000, 10), `got ${JSON.stringify(c.got)}`);
  c.s.destroy();
});

test('timeout http-keep-alive 0: an idle keep-alive connection is closed by timeout client', async (t) => {
  const c = open(noWaitPort);
  c.s.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  t.true(await until(() => /^HTTP\/1\.1 200 /.test(c.got), 5000, 10));
  const t0 = Date.now();
  t.true(await until(() => c.closedAt > 0, CLIENT + 3000, 20), 'idle connection still open');
  const took = c.closedAt - t0;
  t.true(took >= CLIENT - 200 && took <= CLIENT + 600, `closed after ${took} ms`);
  c.s.destroy();
});
