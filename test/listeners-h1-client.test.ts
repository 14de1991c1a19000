/**
 * The HTTP relay's own client (src/listeners/worker/h1): the strict reader of server answers (every way of framing
 * an answer twice is refused, so that the relay answers 502 and closes the server connection), bodies by their
 * framing whatever the reads' boundaries, and the keep-alive pool against real sockets on 127.0.0.1 (one connection
 * reused, a refused answer closes it, the head leaves in one write, TLS to a server with `ssl: {verify: required, ca}`).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import test from 'ava';
import type { Timeouts } from '../src/listeners/config.js';
import { BadResponse, ResponseParser } from '../src/listeners/worker/h1/response-parser.js';
import { type RelayHandler, ServerPool } from '../src/listeners/worker/h1/server-pool.js';

interface Got {
  heads: { status: number; reason: string; fields: string[]; keepAlive: boolean }[];
  body: string;
  complete: number;
}

function reader(head = false) {
  const got: Got = { heads: [], body: '', complete: 0 };
  const p = new ResponseParser({
    head: (status, reason, fields, keepAlive) => got.heads.push({ status, reason, fields, keepAlive }),
    data: (c) => {
      got.body += c.toString('latin1');
    },
    complete: () => got.complete++,
  });
  p.expect(head);
  return { p, got };
}

/** feed `text` to a fresh reader in pieces of `step` bytes (every boundary is tried by the callers) */
function feed(text: string, step = text.length, head = false) {
  const { p, got } = reader(head);
  const b = Buffer.from(text, 'latin1');
  for (let i = 0; i < b.length; i += step) p.feed(b.subarray(i, i + step));
  return { p, got };
}

test('Content-Length and chunked bodies are read whole at any read boundary', (t) => {
  const cl = 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello';
  const ch =
    'HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n';
  for (const step of [1, 2, 3, 7, 1000]) {
    const a = feed(cl, step);
    t.is(a.got.body, 'hello');
    t.is(a.got.complete, 1);
    t.deepEqual(a.got.heads[0], {
      status: 200,
      reason: 'OK',
      fields: ['Content-Length', '5', 'X-A', 'b'],
      keepAlive: true,
    });
    const b = feed(ch, step);
    t.is(b.got.body, 'hello0123456789', `step ${step}`);
    t.is(b.got.complete, 1);
    t.is(b.got.heads[0]!.status, 201);
  }
});

test('no body: HEAD, 204, 304; interim 1xx heads come before the final one; HTTP/1.0 and Connection: close end the connection', (t) => {
  const h = feed('HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n', 1000, true);
  t.is(h.got.complete, 1);
  t.is(h.got.body, '');
  t.is(feed('HTTP/1.1 204 No Content\r\n\r\n').got.complete, 1);
  const i = feed('HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx');
  t.deepEqual(
    i.got.heads.map((x) => x.status),
    [103, 200],
  );
  t.is(i.got.body, 'x');
  t.false(feed('HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx').p.keepAlive);
  t.true(feed('HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx').p.keepAlive);
  t.false(feed('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx').p.keepAlive);
});

test('a body without framing runs until the connection closes', (t) => {
  const { p, got } = feed('HTTP/1.1 200 OK\r\n\r\nabc');
  t.true(p.untilClose);
  t.is(got.complete, 0);
  p.feed(Buffer.from('def'));
  t.true(p.closed());
  t.is(got.body, 'abcdef');
  t.is(got.complete, 1);
  t.false(p.keepAlive);
});

const BAD: [string, string][] = [
  ['CL + TE', 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n'],
  ['TE + CL', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n'],
  ['two different Content-Lengths', 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n'],
  ['a signed Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\n'],
  ['a Content-Length list', 'HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\n'],
  ['a hex Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: 0x3\r\n\r\n'],
  ['a TE other than chunked', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n'],
  ['two TE fields', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n'],
  ['a bad chunk size', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'],
  ['a negative chunk size', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n'],
  ['a huge chunk size', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n'],
  ['chunk data longer than its size', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n'],
  ['a chunk size ended by a bare LF', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\nab\r\n'],
  ['a chunk not ended by CRLF', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\naXb\r\n0\r\n\r\n'],
  [
    'a trailer with a space before its colon',
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T : 1\r\n\r\n',
  ],
  ['a trailer with a NUL', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: a\0b\r\n\r\n'],
  ['a chunk-size line over 8 KiB', `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;${'e'.repeat(9000)}\r\n`],
  ['obs-fold', 'HTTP/1.1 200 OK\r\nX-A: 1\r\n  folded\r\nContent-Length: 0\r\n\r\n'],
  ['a bare LF in the head', 'HTTP/1.1 200 OK\r\nX-A: 1\nContent-Length: 0\r\n\r\n'],
  ['a NUL in a value', 'HTTP/1.1 200 OK\r\nX-A: a\0b\r\nContent-Length: 0\r\n\r\n'],
  ['a CR in a value', 'HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 0\r\n\r\n'],
  ['a space before the colon', 'HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n'],
  ['a field name that is not a token', 'HTTP/1.1 200 OK\r\nX(A): 1\r\nContent-Length: 0\r\n\r\n'],
  ['not a status line', 'HTTP/2 200 OK\r\nContent-Length: 0\r\n\r\n'],
  ['a status out of range', 'HTTP/1.1 600 No\r\nContent-Length: 0\r\n\r\n'],
  ['bytes after a whole answer', 'HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxy'],
  ['101 to a request that asked for none', 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n'],
];

for (const [what, text] of BAD)
  test(`refused: ${what}`, (t) => {
    for (const step of [1, 5, text.length]) {
      const e = t.throws(() => feed(text, step), { instanceOf: BadResponse }, `step ${step}`);
      t.is((e as BadResponse).code, 'ESERVER_BAD_RESPONSE');
    }
  });

test('a head over 64 KiB is refused', (t) => {
  t.throws(() => feed(`HTTP/1.1 200 OK\r\nX-A: ${'a'.repeat(70_000)}\r\n\r\n`, 4096), { instanceOf: BadResponse });
});

// ---- the pool, against raw servers on 127.0.0.1 ----

const timeouts: Timeouts = {
  connect: 2000,
  client: 5000,
  server: 5000,
  httpRequest: 5000,
  httpKeepAlive: 5000,
  queue: 5000,
  tunnel: 5000,
  check: 2000,
};

interface Attempted {
  status: number;
  body: string;
  error?: string;
}

function handler(done: (a: Attempted) => void): RelayHandler {
  const a: Attempted = { status: 0, body: '' };
  return {
    onConnect: () => {},
    onBodySent: () => {},
    onHeaders: (status) => {
      if (status >= 200) a.status = status;
      return true;
    },
    onData: (c) => {
      a.body += c.toString();
      return true;
    },
    onComplete: () => done(a),
    onError: (e) => done({ ...a, error: (e as NodeJS.ErrnoException).code }),
  };
}

function request(pool: ServerPool, path = '/'): Promise<Attempted> {
  return new Promise((resolve) =>
    pool.dispatch({ method: 'GET', path, headers: ['Host', 't'], body: null }, handler(resolve)),
  );
}

/** a raw server answering each request head with `answer(path)`; counts connections and the reads of each head */
async function rawServer(answer: (path: string) => string, wrap?: (s: net.Server) => net.Server) {
  const stats = { connections: 0, heads: [] as string[], closed: 0 };
  const onConn = (s: net.Socket) => {
    stats.connections++;
    s.on('close', () => stats.closed++);
    s.on('data', (d) => {
      const text = d.toString('latin1');
      stats.heads.push(text);
      const path = /^GET (\S+)/.exec(text)?.[1] ?? '/';
      s.write(answer(path));
    });
  };
  const server = wrap ? wrap(net.createServer()) : net.createServer();
  server.on(server instanceof tls.Server ? 'secureConnection' : 'connection', onConn);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { server, port: (server.address() as net.AddressInfo).port, stats };
}

test('the pool reuses one keep-alive connection; the head leaves in one write with connection: keep-alive', async (t) => {
  const { server, port, stats } = await rawServer(() => 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
  const pool = new ServerPool({ host: '127.0.0.1', port }, timeouts);
  for (let i = 0; i < 3; i++) t.deepEqual(await request(pool), { status: 200, body: 'ok' });
  t.is(stats.connections, 1);
  t.is(stats.heads.length, 3, 'one read per head');
  t.is(stats.heads[0], 'GET / HTTP/1.1\r\nHost: t\r\nconnection: keep-alive\r\n\r\n');
  await pool.destroy();
  server.close();
});

test('a badly framed answer fails the attempt with ESERVER_BAD_RESPONSE and closes its connection', async (t) => {
  const { server, port, stats } = await rawServer((path) =>
    path === '/bad'
      ? 'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n'
      : 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok',
  );
  const pool = new ServerPool({ host: '127.0.0.1', port }, timeouts);
  t.is((await request(pool)).status, 200);
  t.is((await request(pool, '/bad')).error, 'ESERVER_BAD_RESPONSE');
  t.deepEqual(await request(pool), { status: 200, body: 'ok' });
  t.is(stats.connections, 2, 'the refused answer took its connection with it');
  await pool.destroy();
  server.close();
});

test('a server closing before the whole answer: ESERVER_CLOSED; a target with a space is refused before sending', async (t) => {
  const { server, port } = await rawServer(() => 'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc');
  server.on('connection', (s) => s.on('data', () => setImmediate(() => s.destroy())));
  const pool = new ServerPool({ host: '127.0.0.1', port }, timeouts);
  t.like(await request(pool), { status: 200, body: 'abc', error: 'ESERVER_CLOSED' });
  t.throws(
    () =>
      pool.dispatch(
        { method: 'GET', path: '/a b', headers: [], body: null },
        handler(() => {}),
      ),
    {
      message: /cannot be relayed/,
    },
  );
  await pool.destroy();
  server.close();
});

test('ssl verify required with a ca: TLS to the server, the name checked against sni', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tierlb-h1-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=backend.test',
      '-addext',
      'subjectAltName=DNS:backend.test',
      '-keyout',
      join(dir, 'key.pem'),
      '-out',
      join(dir, 'cert.pem'),
    ],
    { stdio: 'ignore' },
  );
  const key = readFileSync(join(dir, 'key.pem'));
  const cert = readFileSync(join(dir, 'cert.pem'));
  const { server, port } = await rawServer(
    () => 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntls',
    () => tls.createServer({ key, cert }),
  );
  const ca = join(dir, 'cert.pem');
  // (the CA as the config loader hands it to the workers: the file's PEM read with the config)
  const caPem = cert.toString();
  const good = new ServerPool(
    { host: '127.0.0.1', port, ssl: { verify: 'required', ca, caPem, sni: 'backend.test' } },
    timeouts,
  );
  t.deepEqual(await request(good), { status: 200, body: 'tls' });
  const wrongName = new ServerPool(
    { host: '127.0.0.1', port, ssl: { verify: 'required', ca, caPem, sni: 'other.test' } },
    timeouts,
  );
  t.is((await request(wrongName)).error, 'ERR_TLS_CERT_ALTNAME_INVALID');
  const noCa = new ServerPool({ host: '127.0.0.1', port, ssl: { verify: 'required', sni: 'backend.test' } }, timeouts);
  t.truthy((await request(noCa)).error, 'a self-signed certificate is refused without its ca');
  const none = new ServerPool({ host: '127.0.0.1', port, ssl: { verify: 'none' } }, timeouts);
  t.deepEqual(await request(none), { status: 200, body: 'tls' });
  for (const p of [good, wrongName, noCa, none]) await p.destroy();
  server.close();
});
