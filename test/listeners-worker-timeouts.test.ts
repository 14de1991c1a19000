/**
 * The listener worker's timeouts on ManualTimers (nothing sleeps): timeout http-request and http-keep-alive (the
 * client connection's request wait, 0 = no wait), timeout client and server (the TCP relay's two inactivity timers),
 * timeout connect (the TCP relay's connect, retried; in HTTP mode the relay's, answered 502/504 by the exchange), and
 * timeout queue (a worker's local queue, answered 503). test/listeners-e2e-timeouts.test.ts checks the same through
 * the real worker (node:http keeps timeout client on the socket there).
 */
import { EventEmitter } from 'node:events';
import type http from 'node:http';
import type net from 'node:net';
import { Duplex } from 'node:stream';
import test from 'ava';
import { ManualTimers, type Timer } from '../src/common/timers.js';
import { type ListenerSpec, type ListenersConfig, loadListenersConfigString } from '../src/listeners/config.js';
import { newWords, Registry } from '../src/listeners/shared.js';
import { ClientConn, LINGER_MS, type WaitSocket } from '../src/listeners/worker/client-conn.js';
import { type ExchangeHost, HttpExchange } from '../src/listeners/worker/http-exchange.js';
import type { Attempt, ServerPools } from '../src/listeners/worker/http-relay.js';
import { ListenerCounters } from '../src/listeners/worker/runtime.js';
import { type PickReply, QUEUE_POLL_MS, ServerPicks } from '../src/listeners/worker/server-picks.js';
import { relayTcp, type TcpHost } from '../src/listeners/worker/tcp-relay.js';

function config(mode: 'http' | 'tcp', timeout: string, servers = '{ name: a, address: 10.0.0.1:80 }'): ListenersConfig {
  return loadListenersConfigString(`listeners:
  workers: 1
  listen:
    - name: l
      bind: 127.0.0.1:8080
      mode: ${mode}
      timeout: { ${timeout} }
      servers:
        - ${servers}
`);
}
const spec = (mode: 'http' | 'tcp', timeout: string, servers?: string): ListenerSpec =>
  config(mode, timeout, servers).listeners[0]!;

/** ticks of the event loop (stream plumbing, promise chains): no time passes on the manual clock */
const settle = async () => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};

// ---- timeout http-request / http-keep-alive: the client connection's request wait ----

class FakeClient implements WaitSocket {
  bytesRead = 0;
  destroyed = false;
  sent = '';
  destroyedAt = -1;
  constructor(private readonly timers: ManualTimers) {}
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.destroyedAt = this.timers.clock.now();
  }
  end(data: string): void {
    this.sent += data;
  }
}

function waitSetup(timeout: string) {
  const timers = new ManualTimers();
  const sock = new FakeClient(timers);
  let timedOut = 0;
  const conn = new ClientConn({ src: '10.1.1.1', srcPort: 1, dst: '', dstPort: 0 }, sock, {
    timers,
    timeout: spec('http', timeout).timeout,
    requestTimedOut: () => timedOut++,
  });
  return { timers, sock, conn, timedOut: () => timedOut };
}

test('timeout http-request: nothing received = a silent close at the timeout', (t) => {
  const { timers, sock, conn, timedOut } = waitSetup('http_request: 2s');
  conn.awaitRequest(false);
  timers.advance(1999);
  t.false(sock.destroyed);
  timers.advance(1);
  t.is(sock.destroyedAt, 2000);
  t.is(sock.sent, '');
  t.is(timedOut(), 0);
});

test('timeout http-request: part of a request = 408, then the connection is closed', (t) => {
  const { timers, sock, conn, timedOut } = waitSetup('http_request: 2s');
  conn.awaitRequest(false);
  timers.advance(500);
  sock.bytesRead += 10; // 'GET / HTTP'
  timers.advance(1500);
  t.regex(sock.sent, /^HTTP\/1\.1 408 Request Time-out\r\n/);
  t.is(timedOut(), 1);
  t.false(sock.destroyed, 'the 408 is given time to leave');
  timers.advance(LINGER_MS);
  t.is(sock.destroyedAt, 2000 + LINGER_MS);
});

test('timeout http-request: a request whose headers came in time is not cut while it is served', (t) => {
  const { timers, sock, conn } = waitSetup('http_request: 2s');
  conn.awaitRequest(false);
  sock.bytesRead += 30;
  // node:http has the headers: the exchange takes over
  conn.stopWait();
  conn.busy++;
  timers.advance(10_000);
  t.false(sock.destroyed);
  t.is(sock.sent, '');
});

test('timeout http-keep-alive: an idle connection after a response is closed silently at the keep-alive timeout', (t) => {
  const { timers, sock, conn } = waitSetup('http_request: 6s, http_keep_alive: 1500ms');
  conn.awaitRequest(true);
  timers.advance(1499);
  t.false(sock.destroyed);
  timers.advance(1);
  t.is(sock.destroyedAt, 1500);
  t.is(sock.sent, '');
});

test('timeout http-keep-alive: a request begun in the keep-alive wait gets timeout http-request from its end', (t) => {
  const { timers, sock, conn, timedOut } = waitSetup('http_request: 6s, http_keep_alive: 1500ms');
  conn.awaitRequest(true);
  timers.advance(1000);
  sock.bytesRead += 5;
  timers.advance(500); // keep-alive wait over: part of a request is in
  t.false(sock.destroyed);
  timers.advance(5999);
  t.is(sock.sent, '');
  timers.advance(1);
  t.regex(sock.sent, /^HTTP\/1\.1 408 /);
  t.is(timedOut(), 1);
});

test('timeout http-keep-alive 0: the wait after a response is timeout http-request', (t) => {
  const { timers, sock, conn } = waitSetup('http_request: 2s, http_keep_alive: 0');
  conn.awaitRequest(true);
  timers.advance(1999);
  t.false(sock.destroyed);
  timers.advance(1);
  t.is(sock.destroyedAt, 2000);
});

test('timeout http-request and http-keep-alive 0: no wait at all (timeout client alone applies)', (t) => {
  const { timers, sock, conn } = waitSetup('client: 1s, http_request: 0, http_keep_alive: 0');
  conn.awaitRequest(false);
  t.is(timers.size, 0);
  timers.advance(60_000);
  conn.awaitRequest(true);
  sock.bytesRead += 3;
  timers.advance(60_000);
  t.false(sock.destroyed);
  t.is(sock.sent, '');
});

test('keep-alive hot path: one timer per connection, re-armed; closing the connection stops it', (t) => {
  const { timers, sock, conn } = waitSetup('http_request: 2s, http_keep_alive: 1500ms');
  conn.awaitRequest(false);
  for (let i = 0; i < 100; i++) {
    sock.bytesRead += 40;
    conn.stopWait();
    conn.busy++;
    timers.advance(10);
    conn.busy--;
    conn.awaitRequest(true);
    t.is(timers.size, 1);
  }
  conn.closed();
  t.is(timers.size, 0);
  timers.advance(10_000);
  t.false(sock.destroyed);
});

// ---- timeout connect / client / server: the TCP relay ----

/** A socket whose inactivity timeout (setTimeout, as net.Socket's) runs on the manual timers. */
class FakeSocket extends Duplex {
  bytesRead = 0;
  bytesWritten = 0;
  written = '';
  private idleMs = 0;
  private idle: Timer | undefined;
  constructor(private readonly timers: ManualTimers) {
    super({ allowHalfOpen: true });
  }
  setTimeout(ms: number, cb?: () => void): this {
    this.idleMs = ms;
    if (cb) this.once('timeout', cb);
    this.idle ??= this.timers.timer(() => this.emit('timeout'));
    this.touch();
    return this;
  }
  private touch(): void {
    if (this.idleMs > 0 && !this.destroyed) this.idle?.arm(this.idleMs);
  }
  override _read(): void {}
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    this.bytesWritten += chunk.length;
    this.written += chunk.toString();
    this.touch();
    cb();
  }
  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
    this.idle?.stop();
    cb(err);
  }
  /** the peer sends */
  feed(data: string): void {
    this.bytesRead += data.length;
    this.touch();
    this.push(data);
  }
}

function tcpSetup(timeout: string, retries = 1) {
  const timers = new ManualTimers();
  const s = spec('tcp', timeout);
  s.retries = retries;
  const servers: FakeSocket[] = [];
  const released: string[] = [];
  let picked = 0;
  const reply: PickReply = {
    t: 'picked',
    id: 0,
    server: { name: 'a', host: '10.0.0.1', port: 80, sendProxy: false },
  };
  const host: TcpHost = {
    spec: s,
    counters: new ListenerCounters(),
    timers,
    pick: async () => {
      picked++;
      return reply;
    },
    release: (n) => released.push(n),
    connect: () => {
      const f = new FakeSocket(timers);
      servers.push(f);
      return f as unknown as net.Socket;
    },
  };
  const client = new FakeSocket(timers);
  client.on('error', () => {});
  const info = { src: '10.1.1.1', srcPort: 1, dst: '10.0.0.100', dstPort: 80 };
  return {
    timers,
    host,
    client,
    servers,
    released,
    picks: () => picked,
    run: () => relayTcp(host, client as unknown as net.Socket, info, {}, undefined),
  };
}

test('timeout connect: a server that does not answer is given up at the timeout, tried again, then the client is closed', async (t) => {
  const { timers, host, client, servers, released, picks, run } = tcpSetup('connect: 2s', 1);
  const done = run();
  await settle();
  t.is(servers.length, 1);
  timers.advance(1999);
  await settle();
  t.false(servers[0]!.destroyed);
  timers.advance(1);
  await settle();
  t.true(servers[0]!.destroyed);
  t.is(servers.length, 2, 'retries 1: a second connect');
  timers.advance(2000);
  await done;
  await settle();
  t.true(client.destroyed);
  t.like(host.counters.server('a'), { econ: 2, wretr: 1, stot: 0 });
  // option redispatch (the default): the retry picks again; every slot taken is given back
  t.is(picks(), 2);
  t.deepEqual(released, ['a', 'a']);
});

test('timeout server: a silent server is cut, and the client with it', async (t) => {
  const { timers, host, client, servers, released, run } = tcpSetup('connect: 2s, client: 10s, server: 3s');
  const done = run();
  await settle();
  servers[0]!.emit('connect');
  await done;
  client.feed('hello');
  await settle();
  t.is(servers[0]!.written, 'hello');
  timers.advance(2999);
  await settle();
  t.false(servers[0]!.destroyed);
  timers.advance(1);
  await settle();
  t.true(servers[0]!.destroyed);
  t.true(client.destroyed);
  t.is(host.counters.server('a').stot, 1);
  t.deepEqual(released, ['a']);
});

test('timeout client: a silent client is cut, and its server connection with it', async (t) => {
  const { timers, client, servers, released, run } = tcpSetup('connect: 2s, client: 1s, server: 10s');
  const done = run();
  await settle();
  servers[0]!.emit('connect');
  await done;
  // the server keeps talking; the client sends nothing: both directions count as the client side's activity
  // (a socket's inactivity), so the client is cut 1 s after the last byte either way
  servers[0]!.feed('banner');
  await settle();
  t.is(client.written, 'banner');
  timers.advance(999);
  await settle();
  t.false(client.destroyed);
  timers.advance(1);
  await settle();
  t.true(client.destroyed);
  t.true(servers[0]!.destroyed);
  t.deepEqual(released, ['a']);
});

// ---- timeout queue: a worker's local queue (shared-memory picks) ----

function queueSetup(timeout: string) {
  const timers = new ManualTimers();
  const cfg = config('http', timeout, '{ name: a, address: 10.0.0.1:80, maxconn: 1 }');
  const words = newWords();
  const reg = new Registry(words);
  const layout = reg.assign(0, cfg.listeners);
  const l = layout.l!;
  reg.publish(
    l.slot,
    l.servers.map((slot) => ({ slot, weight: 1, backup: false })),
  );
  const picks = new ServerPicks(
    cfg,
    timers,
    () => {
      throw new Error('a local pick asks the primary nothing');
    },
    { path: '', worker: reg.allocWorker(), listeners: layout },
    words,
  );
  return { timers, picks, cfg };
}

test('timeout queue: a request waiting for a full server gets no server at the timeout', (t) => {
  const { timers, picks } = queueSetup('queue: 500ms');
  const got: PickReply[] = [];
  picks.pickThen('l', {}, [], (r) => got.push(r));
  t.is(got[0]?.server?.name, 'a');
  picks.pickThen('l', {}, [], (r) => got.push(r));
  t.is(got.length, 1, 'waits: a is at maxconn 1');
  timers.advance(500 - QUEUE_POLL_MS);
  t.is(got.length, 1);
  timers.advance(QUEUE_POLL_MS);
  t.is(got.length, 2);
  t.is(got[1]!.err, 'timeout');
  t.is(timers.size, 0, 'no queue left: the poll stops');
});

test('timeout queue: a slot freed before the timeout goes to the waiter', (t) => {
  const { timers, picks } = queueSetup('queue: 500ms');
  const got: PickReply[] = [];
  picks.pickThen('l', {}, [], (r) => got.push(r));
  picks.pickThen('l', {}, [], (r) => got.push(r));
  timers.advance(300);
  picks.release('l', 'a');
  t.is(got[1]?.server?.name, 'a');
  timers.advance(1000);
  t.is(got.length, 2);
});

// ---- the HTTP exchange: what a timeout of the server side or the queue becomes ----

class FakeRes extends EventEmitter {
  headersSent = false;
  destroyed = false;
  writableFinished = false;
  statusCode = 200;
  body = '';
  setHeader(): void {}
  writeHead(code: number): this {
    this.statusCode = code;
    this.headersSent = true;
    return this;
  }
  end(body?: string): void {
    this.body = body ?? '';
    this.writableFinished = true;
    this.emit('close');
  }
  destroy(): void {
    this.destroyed = true;
    this.emit('close');
  }
}

function exchangeSetup(timeout: string, pickWith: (done: (r: PickReply) => void) => void) {
  const s = spec('http', timeout);
  const attempts: Attempt[] = [];
  const released: string[] = [];
  const pools = { pool: () => ({ dispatch: (_o: unknown, h: Attempt) => attempts.push(h) }) } as unknown as ServerPools;
  const host: ExchangeHost = {
    spec: s,
    counters: new ListenerCounters(),
    pools,
    isDraining: () => false,
    pickThen: (_req, _ex, done) => pickWith(done),
    release: (n) => released.push(n),
  };
  const timers = new ManualTimers();
  const sock = new FakeClient(timers);
  const conn = new ClientConn({ src: '10.1.1.1', srcPort: 1, dst: '', dstPort: 0 }, sock, {
    timers,
    timeout: s.timeout,
    requestTimedOut: () => {},
  });
  const req = {
    method: 'GET',
    url: '/',
    headers: { host: 'x' },
    rawHeaders: ['Host', 'x'],
    socket: sock,
    httpVersionMajor: 1,
    httpVersionMinor: 1,
  } as unknown as http.IncomingMessage;
  const res = new FakeRes();
  (res as unknown as { req: unknown }).req = req;
  const start = () => HttpExchange.start(host, req, res as unknown as http.ServerResponse, conn, {});
  return { host, attempts, released, res, conn, start };
}

const target = { name: 'a', host: '10.0.0.1', port: 80, sendProxy: false as const };
const err = (code: string) => Object.assign(new Error(code), { code });

test("timeout connect (the relay's) is retried, then answered 502; timeout server on the answer is 504", async (t) => {
  const { host, attempts, released, res, start } = exchangeSetup('connect: 1s', (done) =>
    done({ t: 'picked', id: 0, server: target }),
  );
  start();
  t.is(attempts.length, 1);
  attempts[0]!.onError(err('ESERVER_CONNECT_TIMEOUT'));
  await settle();
  t.is(attempts.length, 2, 'tried again');
  // the second attempt connects, then the server stays silent past timeout server
  attempts[1]!.onConnect(() => {});
  attempts[1]!.onError(err('ESERVER_HEADERS_TIMEOUT'));
  t.is(res.statusCode, 504);
  t.regex(res.body, /504 Gateway Time-out/);
  t.like(host.counters.server('a'), { econ: 1, eresp: 1, wretr: 1, stot: 1 });
  t.deepEqual(released, ['a', 'a']);
  t.is(host.counters.stats.hrsp['5xx'], 1);
});

test('timeout queue at the exchange: no server = 503, nothing to release', (t) => {
  const { attempts, released, res, start } = exchangeSetup('queue: 1s', (done) =>
    done({ t: 'picked', id: 0, err: 'timeout' }),
  );
  start();
  t.is(attempts.length, 0);
  t.is(res.statusCode, 503);
  t.deepEqual(released, []);
});
