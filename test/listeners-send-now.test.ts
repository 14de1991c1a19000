/**
 * Writes sent at once (src/listeners/worker/send-now.ts) on real loopback sockets: every byte arrives once and in
 * order whether the kernel takes a chunk whole, in part or not at all; what it does not take goes through Node; bytes
 * are counted; TLS sockets and errors stay Node's. Then through `tierlb listeners`: a download to a client that
 * sends nothing is not cut by `timeout client` while bytes flow, and its bytes are in the stats; a slow upload is
 * not cut by `timeout server` while its body flows.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import test from 'ava';
import { sentBytes, sentNowBytes, writeHeadNow, writeNow } from '../src/listeners/worker/send-now.js';
import { oneListener, until } from './listeners-helpers.js';
import { makePki } from './listeners-tls-helpers.js';

/** a connected loopback pair: `a` (ours) and `b` (the peer, paused until resumed), with what `b` read */
async function pair(): Promise<{ a: net.Socket; b: net.Socket; got: () => Buffer; close: () => void }> {
  const server = net.createServer({ pauseOnConnect: true });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as net.AddressInfo).port;
  const peer = new Promise<net.Socket>((r) => server.once('connection', r));
  const a = net.connect(port, '127.0.0.1');
  await new Promise((r) => a.once('connect', r));
  const b = await peer;
  server.close();
  const chunks: Buffer[] = [];
  b.on('data', (d: Buffer) => chunks.push(d));
  return {
    a,
    b,
    got: () => Buffer.concat(chunks),
    close: () => {
      a.destroy();
      b.destroy();
    },
  };
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

test('a chunk the kernel takes whole is sent at once, counted, and arrives', async (t) => {
  const p = await pair();
  t.teardown(p.close);
  const chunk = Buffer.from('hello over loopback');
  t.true(writeNow(p.a, chunk));
  t.is(p.a.writableLength, 0, 'Node holds nothing: the chunk may be reused');
  t.is(sentNowBytes(p.a), chunk.length);
  t.is(sentBytes(p.a), chunk.length);
  p.b.resume();
  t.true(await until(() => p.got().length === chunk.length));
  t.is(p.got().toString(), 'hello over loopback');
});

test('more than the send buffer: the kernel takes part, Node writes the rest, later writes queue behind it', async (t) => {
  const p = await pair();
  t.teardown(p.close);
  const big = randomBytes(16 * 1024 * 1024);
  const small = [Buffer.from('after-1'), Buffer.from('after-2')];
  const ok = writeNow(p.a, big);
  t.false(ok, 'the rest waits in Node: the caller should wait for drain');
  const now = sentNowBytes(p.a);
  t.true(now > 0 && now < big.length, `sent at once: ${now} of ${big.length}`);
  t.true(p.a.writableLength > 0);
  // Node holds bytes: these must not overtake them
  for (const s of small) writeNow(p.a, s);
  writeHeadNow(p.a, 'HEAD\r\n', Buffer.from('body'));
  t.is(sentNowBytes(p.a), now, 'nothing sent at once while Node holds bytes');
  p.b.resume();
  const want = Buffer.concat([big, ...small, Buffer.from('HEAD\r\nbody')]);
  t.true(await until(() => p.got().length >= want.length, 10_000));
  t.is(p.got().length, want.length);
  t.is(sha(p.got()), sha(want), 'every byte once, in order');
  t.true(await until(() => p.a.writableLength === 0));
  t.is(sentBytes(p.a), want.length, "Node's bytes and those sent at once");
});

test('heads are put together in one reused buffer: consecutive heads and bodies arrive intact', async (t) => {
  const p = await pair();
  t.teardown(p.close);
  p.b.resume();
  let want = '';
  for (let i = 0; i < 50; i++) {
    const head = `HTTP/1.1 200 OK\r\nx-n: ${i}${'h'.repeat(i * 7)}\r\n\r\n`;
    const body = Buffer.from(`body ${i} ${'b'.repeat(i * 13)}`);
    writeHeadNow(p.a, head, i % 2 ? body : undefined);
    want += head + (i % 2 ? body.toString() : '');
  }
  // larger than the reused buffer: put together by Node's write
  const bigBody = Buffer.alloc(40_000, 0x61);
  writeHeadNow(p.a, 'BIG\r\n', bigBody);
  want += `BIG\r\n${bigBody.toString()}`;
  t.true(await until(() => p.got().length >= want.length));
  t.is(p.got().toString('latin1'), want);
});

test('a TLS socket is written by Node (its bytes are records, not the plain ones)', async (t) => {
  const pki = await makePki([{ name: 'srv', cn: 'localhost' }]);
  t.teardown(() => pki.cleanup());
  const leaf = pki.leaf.srv!;
  const server = tls.createServer({ key: readFileSync(leaf.key), cert: readFileSync(leaf.cert) });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => server.close());
  let got = '';
  server.on('secureConnection', (s) => s.on('data', (d) => (got += d)));
  const port = (server.address() as net.AddressInfo).port;
  const c = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false });
  t.teardown(() => c.destroy());
  await new Promise((r) => c.once('secureConnect', r));
  writeNow(c, Buffer.from('over tls'));
  writeHeadNow(c, 'HEAD\r\n', Buffer.from('!'));
  t.true(await until(() => got === 'over tlsHEAD\r\n!'), got);
  t.is(sentNowBytes(c), 0);
});

test('a peer that reset the connection: no throw, Node reports the error on the socket', async (t) => {
  const p = await pair();
  p.b.resetAndDestroy();
  const errors: string[] = [];
  p.a.on('error', (e: NodeJS.ErrnoException) => errors.push(e.code ?? e.message));
  t.teardown(p.close);
  // the RST takes a moment to come back; keep writing until the socket learns of it
  await until(() => {
    if (!p.a.destroyed) writeNow(p.a, Buffer.from('x'.repeat(1000)));
    return p.a.destroyed;
  }, 5000);
  t.true(p.a.destroyed);
  t.true(
    errors.some((c) => c === 'EPIPE' || c === 'ECONNRESET'),
    `errors: ${errors.join(',')}`,
  );
});

test('mode tcp: a download to a client that sends nothing is not cut by timeout client; its bytes are counted', async (t) => {
  // the server sends a chunk every 100 ms for 1.5 s; timeout client 400 ms: the writes to the client (sent at once,
  // which Node's timer does not see) are its activity
  const CHUNKS = 15;
  const CHUNK = 10_000;
  const backend = net.createServer((s) => {
    s.on('error', () => {});
    let n = 0;
    const tick = setInterval(() => {
      s.write(Buffer.alloc(CHUNK, 0x62));
      if (++n === CHUNKS) {
        clearInterval(tick);
        s.end();
      }
    }, 100);
    s.on('close', () => clearInterval(tick));
  });
  const { port, run } = await oneListener(
    backend,
    'down',
    'tcp',
    'timeout: { connect: 2s, client: 400ms, server: 5s }',
  );
  t.teardown(async () => {
    await run.stop();
    backend.close();
  });
  const got = await new Promise<number>((resolve) => {
    const c = net.connect(port, '127.0.0.1');
    let n = 0;
    c.on('data', (d) => (n += d.length));
    c.on('error', () => {});
    c.on('close', () => resolve(n));
  });
  t.is(got, CHUNKS * CHUNK, 'the whole download, not cut at timeout client');
  const fe = async () => (await run.statsJson()).find((r) => r.pxname === 'down' && r.svname === 'FRONTEND');
  t.true(await until(async () => Number((await fe())?.bout) >= CHUNKS * CHUNK), `bout ${(await fe())?.bout}`);
});

test('mode http: a slow upload longer than timeout server is not cut while its bytes flow to the server', async (t) => {
  // the body comes in 12 chunks, 100 ms apart; the server answers after the whole body; timeout server 400 ms: the
  // body bytes sent to the server at once are the server connection's activity
  const backend = http.createServer((req, res) => {
    let n = 0;
    req.on('data', (d: Buffer) => (n += d.length));
    req.on('end', () => res.end(`got ${n}`));
  });
  const { port, run } = await oneListener(backend, 'up', 'http', 'timeout: { connect: 2s, client: 5s, server: 400ms }');
  t.teardown(async () => {
    await run.stop();
    backend.close();
  });
  const answer = await new Promise<string>((resolve, reject) => {
    const req = http.request(
      { port, host: '127.0.0.1', method: 'POST', path: '/up', headers: { 'content-length': 12000 } },
      (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve(`${res.statusCode} ${body}`));
      },
    );
    req.on('error', reject);
    let n = 0;
    const tick = setInterval(() => {
      req.write(Buffer.alloc(1000, 0x75));
      if (++n === 12) {
        clearInterval(tick);
        req.end();
      }
    }, 100);
  });
  t.is(answer, '200 got 12000');
});
