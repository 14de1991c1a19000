/**
 * The listener's own HTTP/1.x server side (src/listeners/worker/h1/client-session.ts, request-head.ts): the strict
 * request-head reader on its own, then through a real `tierlb listeners`: pipelined requests answered in order, a
 * request body streamed whole, an answer given before the body (the rest of the body dropped, the connection carries
 * on), and Expect: 100-continue.
 */
import http from 'node:http';
import net from 'node:net';
import test from 'ava';
import { chunkSize } from '../src/listeners/worker/h1/chunked.js';
import { parseRequestHead, RequestHead } from '../src/listeners/worker/h1/request-head.js';
import { oneListener, type Running } from './listeners-helpers.js';

// ---- the head reader ----

function parse(head: string): RequestHead | string {
  const buf = Buffer.from(head, 'latin1');
  const end = buf.indexOf('\r\n\r\n');
  const h = new RequestHead();
  return parseRequestHead(buf, 0, end, h) ?? h;
}

test('a request head: method, target, version, fields as they came, framing and connection', (t) => {
  const h = parse('POST /a?b=1 HTTP/1.1\r\nHost: t\r\nX-A:  v  \r\nContent-Length: 5\r\nConnection: close\r\n\r\n');
  if (typeof h === 'string') return t.fail(h);
  t.is(h.method, 'POST');
  t.is(h.url, '/a?b=1');
  t.deepEqual([h.major, h.minor], [1, 1]);
  t.deepEqual(h.fields, ['Host', 't', 'X-A', 'v', 'Content-Length', '5', 'Connection', 'close']);
  t.is(h.length, 5);
  t.false(h.chunked);
  t.true(h.close);
  const ka = parse('GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n');
  t.false(typeof ka === 'string' || ka.close, 'HTTP/1.0 asking for keep-alive');
  const ten = parse('GET / HTTP/1.0\r\nHost: t\r\n\r\n');
  t.true(typeof ten !== 'string' && ten.close, 'HTTP/1.0 without keep-alive closes');
  const up = parse('GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
  t.true(typeof up !== 'string' && up.upgrade);
});

for (const [what, head] of [
  [
    'Content-Length and Transfer-Encoding',
    'POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n',
  ],
  ['two Content-Length', 'POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n'],
  ['a signed Content-Length', 'POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n'],
  ['a listed Content-Length', 'POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n'],
  ['Transfer-Encoding other than chunked', 'POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n'],
  ['obs-fold', 'GET / HTTP/1.1\r\nX-A: a\r\n b\r\n\r\n'],
  ['whitespace before a colon', 'GET / HTTP/1.1\r\nX-A : a\r\n\r\n'],
  ['NUL in a value', 'GET / HTTP/1.1\r\nX-A: a\0b\r\n\r\n'],
  ['a bare LF', 'GET / HTTP/1.1\r\nX-A: a\nX-B: b\r\n\r\n'],
  ['a lower-case method', 'get / HTTP/1.1\r\n\r\n'],
  ['two spaces in the request line', 'GET  / HTTP/1.1\r\n\r\n'],
  ['no version', 'GET /\r\n\r\n'],
] as const)
  test(`a request head with ${what} is refused`, (t) => {
    t.is(typeof parse(head), 'string');
  });

test('chunk sizes: hex with extensions; signs, spaces, 0x and overflow refused', (t) => {
  const size = (s: string) => chunkSize(Buffer.from(s), 0, s.length);
  t.is(size('1a'), 26);
  t.is(size('5;ext=1'), 5);
  t.is(size('5 ;ext'), 5);
  for (const bad of ['', ' 5', '-1', '+5', '0x5', 'g', '1'.repeat(14), '5 x']) t.is(size(bad), -1, bad);
});

// ---- through a listener ----

let run: Running;
let port: number;
let backend: http.Server;
/** what the backend got: method, target and body of each request */
const got: string[] = [];

test.before(async () => {
  backend = http.createServer((req, res) => {
    if (req.url?.startsWith('/early')) {
      // answers before reading the body
      res.writeHead(200, { 'content-length': '5' }).end('early');
      return;
    }
    const parts: Buffer[] = [];
    req.on('data', (d: Buffer) => parts.push(d));
    req.on('end', () => {
      const body = Buffer.concat(parts);
      got.push(`${req.method} ${req.url} ${body.length}`);
      res.writeHead(200, { 'content-type': 'text/plain' }).end(`${req.url} ${body.length}`);
    });
  });
  ({ port, run } = await oneListener(backend, 'web', 'http'));
});

test.after.always(async () => {
  await run?.stop();
  await new Promise<void>((r) => backend?.close(() => r()));
});

/** a raw client: everything it read, and a wait for a condition on it */
function client() {
  const s = net.connect(port, '127.0.0.1');
  const c = { s, text: '', closed: false };
  s.on('data', (d: Buffer) => (c.text += d.toString('latin1')));
  s.on('close', () => (c.closed = true));
  s.on('error', () => {});
  const wait = async (ok: () => boolean, ms = 5000) => {
    const end = Date.now() + ms;
    while (!ok() && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    return ok();
  };
  return { c, wait };
}

/** the bodies of the answers in `text`, in order (each answer framed by Content-Length or chunked) */
function bodies(text: string): string[] {
  const out: string[] = [];
  let rest = text;
  for (;;) {
    const e = rest.indexOf('\r\n\r\n');
    if (e < 0) return out;
    const head = rest.slice(0, e);
    rest = rest.slice(e + 4);
    const cl = /\r\ncontent-length: (\d+)/i.exec(head);
    if (cl) {
      out.push(rest.slice(0, Number(cl[1])));
      rest = rest.slice(Number(cl[1]));
      continue;
    }
    let body = '';
    for (;;) {
      const le = rest.indexOf('\r\n');
      if (le < 0) return out;
      const n = Number.parseInt(rest.slice(0, le), 16);
      rest = rest.slice(le + 2);
      if (n === 0) {
        rest = rest.slice(2);
        break;
      }
      body += rest.slice(0, n);
      rest = rest.slice(n + 2);
    }
    out.push(body);
  }
}

test.serial('pipelined requests in one packet are each answered once, in order', async (t) => {
  const { c, wait } = client();
  c.s.write(
    'GET /p1 HTTP/1.1\r\nHost: t\r\n\r\n' +
      'POST /p2 HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc' +
      'POST /p3 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nxy\r\n0\r\n\r\n' +
      'GET /p4 HTTP/1.1\r\nHost: t\r\n\r\n',
  );
  t.true(await wait(() => bodies(c.text).length === 4), c.text);
  t.deepEqual(bodies(c.text), ['/p1 0', '/p2 3', '/p3 2', '/p4 0']);
  t.false(c.closed);
  c.s.destroy();
});

test.serial('a 1 MiB chunked request body sent in pieces reaches the server whole', async (t) => {
  const { c, wait } = client();
  c.s.write('POST /big HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n');
  const piece = Buffer.alloc(64 * 1024, 'a');
  for (let i = 0; i < 16; i++) {
    c.s.write(`${piece.length.toString(16)}\r\n`);
    c.s.write(piece);
    c.s.write('\r\n');
    if (i % 4 === 0) await new Promise((r) => setTimeout(r, 5));
  }
  c.s.write('0\r\n\r\n');
  t.true(await wait(() => bodies(c.text).length === 1), c.text.slice(0, 300));
  t.deepEqual(bodies(c.text), [`/big ${1024 * 1024}`]);
  c.s.destroy();
});

test.serial('an answer before the request body: the rest of the body is dropped, the connection goes on', async (t) => {
  const { c, wait } = client();
  c.s.write('POST /early HTTP/1.1\r\nHost: t\r\nContent-Length: 200000\r\n\r\n');
  t.true(await wait(() => bodies(c.text).length === 1), c.text);
  // the rest of the body, then the next request on the same connection
  c.s.write(Buffer.alloc(200000, 'z'));
  c.s.write('GET /after HTTP/1.1\r\nHost: t\r\n\r\n');
  t.true(await wait(() => bodies(c.text).length === 2), c.text.slice(0, 300));
  t.deepEqual(bodies(c.text), ['early', '/after 0']);
  t.false(
    got.some((g) => g.includes('zzz')),
    'no part of the dropped body taken for a request',
  );
  c.s.destroy();
});

test.serial('Expect: 100-continue: 100 Continue first, then the body is relayed', async (t) => {
  const { c, wait } = client();
  c.s.write('POST /cont HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n');
  t.true(await wait(() => c.text.startsWith('HTTP/1.1 100 Continue\r\n\r\n')), c.text);
  c.s.write('hello');
  t.true(await wait(() => c.text.includes('/cont 5')), c.text);
  t.regex(c.text.slice(25), /^HTTP\/1\.1 200 OK\r\n/);
  c.s.destroy();
});
