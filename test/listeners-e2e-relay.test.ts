/**
 * HTTP mode's relay (its own HTTP/1.1 client, src/listeners/worker/http-relay.ts + worker/h1/) through the real `tierlb listeners`: what reaches the
 * client of a server's answer (fields, status text, chunked and streamed bodies, HEAD), what reaches the server of
 * a client's request (bodies, Expect, hop-by-hop fields), server connections that close or reset, HTTP/1.0
 * clients, a client leaving early, and send-proxy's private server connections.
 */
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import test from 'ava';
import { freePort, type Running, startListeners, until } from './listeners-helpers.js';

let run: Running;
const P: Record<string, number> = {};
const servers: { close(): Promise<void> }[] = [];

// ---- a raw HTTP/1.x client: exact bytes out, each answer parsed from exact bytes in ----

interface RawReply {
  /** the status line and fields, as received */
  head: string;
  status: number;
  reason: string;
  /** [lower-case name, value] in order */
  fields: [string, string][];
  body: Buffer;
}

class RawClient {
  readonly s: net.Socket;
  buf = Buffer.alloc(0);
  closed = false;
  /** the listener closed its side (FIN) */
  ended = false;
  private wake: (() => void) | undefined;
  readonly ready: Promise<void>;

  constructor(port: number) {
    this.s = net.connect(port, '127.0.0.1');
    this.ready = new Promise((r) => this.s.once('connect', () => r()));
    this.s.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake?.();
    });
    this.s.on('end', () => (this.ended = true));
    this.s.on('close', () => {
      this.closed = true;
      this.wake?.();
    });
    this.s.on('error', () => {});
  }

  send(data: string | Buffer): void {
    this.s.write(data);
  }

  /** next data or the close, at most `ms` */
  private more(ms: number): Promise<void> {
    if (this.closed) return Promise.reject(new Error(`connection closed; unparsed: ${JSON.stringify(this.text())}`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no answer in ${ms} ms; got ${JSON.stringify(this.text())}`)),
        ms,
      );
      this.wake = () => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve();
      };
    });
  }

  text(): string {
    return this.buf.toString('latin1');
  }

  /** Wait until the bytes received so far satisfy `fn`. */
  async waitFor(fn: (got: string) => boolean, ms = 10_000): Promise<void> {
    while (!fn(this.text())) await this.more(ms);
  }

  /** Take the next answer off the connection (`head`: the answer to a HEAD request, no body). */
  async reply(opts: { head?: boolean; ms?: number } = {}): Promise<RawReply> {
    const ms = opts.ms ?? 10_000;
    let end: number;
    while ((end = this.buf.indexOf('\r\n\r\n')) < 0) await this.more(ms);
    const head = this.buf.subarray(0, end).toString('latin1');
    const [statusLine, ...lines] = head.split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3}) ?(.*)$/.exec(statusLine!);
    if (!m) throw new Error(`bad status line ${JSON.stringify(statusLine)}`);
    const status = Number(m[1]);
    const fields = lines.map((l): [string, string] => {
      const i = l.indexOf(':');
      return [l.slice(0, i).toLowerCase(), l.slice(i + 1).trim()];
    });
    const field = (n: string) => fields.find(([k]) => k === n)?.[1];
    /** where the body (then the rest of it) starts in buf */
    let pos = end + 4;
    const parts: Buffer[] = [];
    const cl = field('content-length');
    if (opts.head || status < 200 || status === 204 || status === 304) {
      // no body
    } else if (field('transfer-encoding')?.toLowerCase() === 'chunked') {
      for (;;) {
        let eol: number;
        while ((eol = this.buf.indexOf('\r\n', pos)) < 0) await this.more(ms);
        const size = Number.parseInt(this.buf.subarray(pos, eol).toString('latin1'), 16);
        if (size === 0) {
          // the last chunk, trailers (none expected) and the blank line
          let last: number;
          while ((last = this.buf.indexOf('\r\n\r\n', eol)) < 0) await this.more(ms);
          pos = last + 4;
          break;
        }
        while (this.buf.length < eol + 2 + size + 2) await this.more(ms);
        parts.push(this.buf.subarray(eol + 2, eol + 2 + size));
        pos = eol + 2 + size + 2;
      }
    } else if (cl !== undefined) {
      while (this.buf.length < pos + Number(cl)) await this.more(ms);
      parts.push(this.buf.subarray(pos, pos + Number(cl)));
      pos += Number(cl);
    } else {
      // delimited by the close
      while (!this.closed) await this.more(ms);
      parts.push(this.buf.subarray(pos));
      pos = this.buf.length;
    }
    const body = Buffer.concat(parts);
    this.buf = this.buf.subarray(pos);
    return { head, status, reason: m[2]!, fields, body };
  }

  /** resolves once the connection is closed, at most `ms` (false: still open) */
  async closes(ms = 5000): Promise<boolean> {
    return until(() => this.closed, ms, 10);
  }

  destroy(): void {
    this.s.destroy();
  }
}

function values(r: RawReply, name: string): string[] {
  return r.fields.filter(([k]) => k === name).map(([, v]) => v);
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** One GET on a fresh connection, `Connection: close`. */
async function get(port: number, path: string): Promise<RawReply> {
  const c = new RawClient(port);
  c.send(`GET ${path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n`);
  try {
    return await c.reply();
  } finally {
    c.destroy();
  }
}

/** a promise and its resolve */
function signal<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

async function listen(server: net.Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const sockets = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  servers.push({
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        for (const s of sockets) s.destroy();
      }),
  });
  return `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
}

async function serverRow(listener: string, server: string) {
  return (await run.statsJson()).find((x) => x.pxname === listener && x.svname === server)!;
}

// ---- the backends ----

/** what the app saw of the last request to each path */
const seen = new Map<string, { method: string; rawHeaders: string[]; headers: http.IncomingHttpHeaders }>();
/** the server connections that carried /conn-close */
const connCloseSockets = new Set<net.Socket>();
const download = randomBytes(3 * 1024 * 1024 + 17);
let streamEnded = false;
let thinking = signal<net.Socket>();
let resetGate = signal();

function app(req: http.IncomingMessage, res: http.ServerResponse): void {
  const url = req.url!;
  seen.set(url.replace(/\?.*/, ''), { method: req.method!, rawHeaders: req.rawHeaders, headers: req.headers });
  const chunks: Buffer[] = [];
  req.on('data', (d: Buffer) => chunks.push(d));
  const body = () => new Promise<Buffer>((r) => req.on('end', () => r(Buffer.concat(chunks))));
  switch (url.replace(/\?.*/, '')) {
    case '/cookies':
      res.setHeader('Set-Cookie', ['a=1; Path=/', 'b=2; Path=/']);
      res.end('c');
      return;
    case '/download': {
      // chunked (no content-length), written in pieces of 64 KiB
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      let off = 0;
      const next = () => {
        while (off < download.length) {
          const piece = download.subarray(off, off + 65536);
          off += piece.length;
          if (!res.write(piece)) {
            res.once('drain', next);
            return;
          }
        }
        res.end();
      };
      next();
      return;
    }
    case '/conn-close':
      connCloseSockets.add(req.socket);
      res.writeHead(200, { connection: 'close', 'keep-alive': 'timeout=7, max=99', 'content-length': '2' });
      res.end('cc');
      return;
    case '/conn-named':
      res.writeHead(200, { connection: 'keep-alive, X-Hop', 'x-hop': 'secret', 'x-end': 'kept', 'content-length': 2 });
      res.end('cn');
      return;
    case '/custom-status':
      res.writeHead(299, 'Custom Thing', { 'content-length': 1 });
      res.end('x');
      return;
    case '/stream':
      streamEnded = false;
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first');
      setTimeout(() => {
        streamEnded = true;
        res.write('second');
        res.end();
      }, 1000);
      return;
    case '/head':
      res.writeHead(200, { 'content-length': 12345, 'x-head': 'yes' });
      res.end(req.method === 'HEAD' ? undefined : Buffer.alloc(12345));
      return;
    case '/upload':
    case '/echo':
      void body().then((b) =>
        res.end(
          JSON.stringify({
            len: b.length,
            sha: sha(b),
            text: b.length < 100 ? b.toString() : '',
            te: req.headers['transfer-encoding'] ?? null,
            cl: req.headers['content-length'] ?? null,
          }),
        ),
      );
      return;
    case '/chunked-small':
      res.write('one-');
      res.end('two');
      return;
    case '/close-socket':
      // answers with keep-alive, then drops the connection
      res.on('finish', () => req.socket.destroy());
      res.end('dropped');
      return;
    case '/think':
      // never answers: the client gives up first
      thinking.resolve(req.socket);
      return;
    case '/reset':
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('partial');
      void resetGate.promise.then(() => req.socket.resetAndDestroy());
      return;
    case '/early':
      res.writeEarlyHints({ link: '</s.css>; rel=preload' });
      res.writeHead(200, { 'content-length': 11 });
      res.end('after hints');
      return;
    default:
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 5 });
      res.end('hello');
  }
}

/** flaky: answers the first request of each connection, drops the connection on the second (without answering) */
let flakyConns = 0;
function flaky(req: http.IncomingMessage, res: http.ServerResponse): void {
  const s = req.socket as net.Socket & { served?: number };
  s.served = (s.served ?? 0) + 1;
  if (s.served > 1) {
    s.destroy();
    return;
  }
  res.end(`fresh ${flakyConns}`);
}

/** send-proxy: each connection's PROXY line, in order; the answer names the connection and its PROXY line */
const proxyLines: string[] = [];

/** a mode http listener of the config on P[name], one server, `extra` settings */
function httpListener(name: string, server: string, address: string, extra?: string): string {
  const lines = [`    - name: ${name}`, `      bind: 127.0.0.1:${P[name]}`, '      mode: http'];
  if (extra) lines.push(`      ${extra}`);
  lines.push('      servers:', `        - { name: ${server}, address: ${address} }`);
  return lines.join('\n');
}

test.before(async () => {
  for (const l of ['web', 'rst', 'think', 'flaky', 'proxied']) P[l] = await freePort();
  const appServer = http.createServer(app);
  appServer.keepAliveTimeout = 30_000;
  const appAddr = await listen(appServer);

  const flakyServer = http.createServer(flaky);
  flakyServer.keepAliveTimeout = 30_000;
  flakyServer.on('connection', () => flakyConns++);
  const flakyAddr = await listen(flakyServer);

  // a TCP server reading the PROXY v1 line, then handing the connection to an HTTP server
  const behind = http.createServer((req, res) => {
    const s = req.socket as net.Socket & { conn?: number };
    res.end(`conn ${s.conn} ${proxyLines[s.conn!]}`);
  });
  behind.keepAliveTimeout = 30_000;
  const proxyServer = net.createServer((s) => {
    let buf = Buffer.alloc(0);
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const eol = buf.indexOf('\r\n');
      if (eol < 0) return;
      s.off('data', onData);
      s.pause();
      (s as net.Socket & { conn?: number }).conn = proxyLines.length;
      proxyLines.push(buf.subarray(0, eol).toString('latin1'));
      s.unshift(buf.subarray(eol + 2));
      behind.emit('connection', s);
      s.resume();
    };
    s.on('data', onData);
    s.on('error', () => {});
  });
  const proxyAddr = await listen(proxyServer);

  run = await startListeners(`listeners:
  workers: 2
  stats: { enabled: false }
  listen:
${httpListener('web', 'app', appAddr, 'retries: 3')}
${httpListener('rst', 'app', appAddr)}
${httpListener('think', 'app', appAddr)}
${httpListener('flaky', 'flaky', flakyAddr, 'retries: 3')}
${httpListener('proxied', 'behind', proxyAddr, 'send_proxy: v1')}
`);
});

test.after.always(async () => {
  await run?.stop();
  for (const s of servers) await s.close();
});

// ---- the server's answer ----

test.serial('two Set-Cookie lines from the server reach the client as two lines', async (t) => {
  const r = await get(P.web!, '/cookies');
  t.is(r.status, 200);
  t.deepEqual(values(r, 'set-cookie'), ['a=1; Path=/', 'b=2; Path=/']);
  t.is(r.body.toString(), 'c');
});

test.serial('a chunked body (no content-length) of 3 MiB arrives intact and chunked', async (t) => {
  const r = await get(P.web!, '/download');
  t.is(r.status, 200);
  t.deepEqual(values(r, 'transfer-encoding'), ['chunked']);
  t.deepEqual(values(r, 'content-length'), []);
  t.is(r.body.length, download.length);
  t.is(sha(r.body), sha(download));
});

test.serial(
  "the server's Connection and Keep-Alive fields do not reach the client; its connection stays open",
  async (t) => {
    const c = new RawClient(P.web!);
    c.send('GET /conn-close HTTP/1.1\r\nHost: t\r\n\r\n');
    const r = await c.reply();
    t.is(r.status, 200);
    t.is(r.body.toString(), 'cc');
    t.deepEqual(values(r, 'connection'), ['keep-alive'], r.head); // the listener's own, not the server's close
    t.deepEqual(values(r, 'keep-alive'), [], r.head);
    // the client connection was not closed for the server's `Connection: close`, and the next request on it works
    c.send('GET /conn-close HTTP/1.1\r\nHost: t\r\n\r\n');
    const again = await c.reply();
    t.is(again.status, 200);
    t.is(again.body.toString(), 'cc');
    t.false(c.closed);
    c.destroy();
  },
);

test.serial("the fields the server's Connection names do not reach the client (RFC 9110 7.6.1)", async (t) => {
  const r = await get(P.web!, '/conn-named');
  t.is(r.status, 200);
  t.is(r.body.toString(), 'cn');
  t.deepEqual(values(r, 'x-end'), ['kept']);
  t.deepEqual(values(r, 'x-hop'), [], r.head);
  t.deepEqual(values(r, 'connection'), ['close'], r.head);
});

test.serial('a custom status keeps its status text', async (t) => {
  const r = await get(P.web!, '/custom-status');
  t.is(r.status, 299);
  t.is(r.reason, 'Custom Thing');
  t.is(r.body.toString(), 'x');
});

test.serial("a 103 Early Hints before the answer: the client still gets the server's 200 and its body", async (t) => {
  const c = new RawClient(P.web!);
  c.send('GET /early HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n');
  let r = await c.reply();
  // (a relayed 103 is fine; the final answer must follow it)
  if (r.status === 103) r = await c.reply();
  t.is(r.status, 200, r.head);
  t.is(r.body.toString(), 'after hints');
  c.destroy();
});

test.serial('a streamed answer: the first chunk reaches the client before the server ends', async (t) => {
  const c = new RawClient(P.web!);
  c.send('GET /stream HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n');
  await c.waitFor((got) => got.includes('first'), 10_000);
  // the server writes its second chunk and ends 1 s after the first
  t.false(streamEnded, 'the first chunk came only with the end');
  t.notRegex(c.text(), /second/);
  const r = await c.reply();
  t.is(r.status, 200);
  t.is(r.body.toString(), 'firstsecond');
  t.true(streamEnded);
  c.destroy();
});

test.serial("HEAD: the server's Content-Length, no body, and the connection serves a GET next", async (t) => {
  const c = new RawClient(P.web!);
  c.send('HEAD /head HTTP/1.1\r\nHost: t\r\n\r\n');
  await c.waitFor((got) => got.includes('\r\n\r\n'));
  c.send('GET /hello HTTP/1.1\r\nHost: t\r\n\r\n');
  const h = await c.reply({ head: true });
  t.is(h.status, 200);
  t.deepEqual(values(h, 'content-length'), ['12345']);
  t.deepEqual(values(h, 'x-head'), ['yes']);
  t.is(seen.get('/head')?.method, 'HEAD');
  // nothing between the HEAD's fields and the next status line
  await c.waitFor((got) => got.endsWith('hello'));
  t.regex(c.text(), /^HTTP\/1\.1 200 OK\r\n/);
  const g = await c.reply();
  t.is(g.status, 200);
  t.is(g.body.toString(), 'hello');
  t.is(c.buf.length, 0);
  t.false(c.closed);
  c.destroy();
});

// ---- the client's request ----

test.serial('hop-by-hop request fields and the fields named in Connection do not reach the server', async (t) => {
  const c = new RawClient(P.web!);
  c.send(
    'GET /fields HTTP/1.1\r\nHost: t\r\nConnection: X-Drop, x-drop-too\r\nKeep-Alive: timeout=300\r\nTE: trailers\r\n' +
      'Proxy-Connection: keep-alive\r\nUpgrade: h2c\r\nX-Drop: 1\r\nX-Keep: 2\r\nX-Drop-Too: 3\r\nTrailer: X-Sum\r\n\r\n',
  );
  const r = await c.reply();
  t.is(r.status, 200);
  const s = seen.get('/fields')!;
  const got = [];
  for (let i = 0; i < s.rawHeaders.length; i += 2) got.push(s.rawHeaders[i]!.toLowerCase());
  // the relay's own `connection: keep-alive` is the only Connection field the server gets
  t.deepEqual(got.sort(), ['connection', 'host', 'x-keep']);
  t.is(s.headers.connection, 'keep-alive');
  t.is(s.headers['x-keep'], '2');
  t.is(s.headers.host, 't');
  c.destroy();
});

// ---- server connections that end ----

test.serial('a server closing its connection after each answer: the next GETs still get 200', async (t) => {
  const c = new RawClient(P.web!);
  connCloseSockets.clear();
  for (let i = 0; i < 5; i++) {
    c.send('GET /conn-close HTTP/1.1\r\nHost: t\r\n\r\n');
    const r = await c.reply();
    t.is(r.status, 200, `request ${i + 1}`);
    t.is(r.body.toString(), 'cc');
  }
  t.is(connCloseSockets.size, 5, 'one server connection per answer (`Connection: close` honoured)');
  for (let i = 0; i < 5; i++) {
    c.send('GET /close-socket HTTP/1.1\r\nHost: t\r\n\r\n');
    const r = await c.reply();
    t.is(r.status, 200, `request ${i + 1} after a dropped connection`);
    t.is(r.body.toString(), 'dropped');
  }
  t.false(c.closed);
  c.destroy();
});

test.serial('a kept-alive server connection dropped when the next request comes: retried on a fresh one', async (t) => {
  // one client connection: one worker, one pool
  const c = new RawClient(P.flaky!);
  for (let i = 1; i <= 4; i++) {
    c.send('GET / HTTP/1.1\r\nHost: t\r\n\r\n');
    const r = await c.reply();
    t.is(r.status, 200, `request ${i}`);
    t.is(r.body.toString(), `fresh ${i}`);
  }
  t.is(flakyConns, 4);
  const row = await serverRow('flaky', 'flaky');
  // requests 2 to 4 each met the dropped connection once
  t.is(row.wretr, 3);
  t.is(row.eresp, 3);
  t.is(row.econ, 0);
  c.destroy();
});

test.serial(
  'a POST that met a dropped kept-alive server connection is not sent again: 502 (RFC 9110 9.2.2)',
  async (t) => {
    const c = new RawClient(P.flaky!);
    // a fresh server connection answers the GET and stays in the pool (kept alive)
    c.send('GET / HTTP/1.1\r\nHost: t\r\n\r\n');
    t.is((await c.reply()).status, 200);
    const before = await serverRow('flaky', 'flaky');
    const conns = flakyConns;
    // the POST goes out on that connection, which the server drops: it may have been acted on
    c.send('POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n');
    const r = await c.reply();
    t.is(r.status, 502);
    t.is(flakyConns, conns, 'no new server connection for a second try');
    // (counted before the 502 was written; the stats are asked of the workers)
    const row = await serverRow('flaky', 'flaky');
    t.is(row.eresp, Number(before.eresp) + 1);
    t.is(row.wretr, before.wretr);
    t.is(row.econ, before.econ);
    c.destroy();
  },
);

test.serial(
  'a server resetting mid-answer: the client connection closes, eresp counts it, the next request works',
  async (t) => {
    const c = new RawClient(P.rst!);
    c.send('GET /reset HTTP/1.1\r\nHost: t\r\n\r\n');
    await c.waitFor((got) => got.includes('partial'));
    t.regex(c.text(), /^HTTP\/1\.1 200 OK\r\n/);
    resetGate.resolve();
    t.true(await c.closes(5000), 'the client connection is still open after the server reset');
    // the chunked answer is not ended as if it were complete
    t.false(c.text().endsWith('0\r\n\r\n'), c.text());
    t.true(await until(async () => (await serverRow('rst', 'app')).eresp === 1, 5000));
    t.is((await serverRow('rst', 'app')).eresp, 1);
    resetGate = signal();
    const r = await get(P.rst!, '/hello');
    t.is(r.status, 200);
    t.is(r.body.toString(), 'hello');
  },
);

// ---- clients ----

test.serial('HTTP/1.0 without keep-alive: the answer, then the listener closes the connection', async (t) => {
  const c = new RawClient(P.web!);
  c.send('GET /hello HTTP/1.0\r\nHost: t\r\n\r\n');
  const r = await c.reply();
  t.is(r.status, 200);
  t.is(r.body.toString(), 'hello');
  t.deepEqual(values(r, 'connection'), ['close']);
  t.true(await c.closes(5000), 'connection left open');
  t.true(c.ended, 'closed by the listener');
});

test.serial('HTTP/1.0 with Connection: keep-alive: the connection stays open for the next request', async (t) => {
  const c = new RawClient(P.web!);
  for (let i = 0; i < 2; i++) {
    c.send('GET /hello HTTP/1.0\r\nHost: t\r\nConnection: keep-alive\r\n\r\n');
    const r = await c.reply();
    t.is(r.status, 200);
    t.is(r.body.toString(), 'hello');
    t.deepEqual(values(r, 'connection'), ['keep-alive']);
    t.deepEqual(values(r, 'content-length'), ['5']);
  }
  t.false(c.closed);
  c.destroy();
});

test.serial(
  'HTTP/1.0 keep-alive, chunked server answer: whole body, delimited by a close the answer announces',
  async (t) => {
    const c = new RawClient(P.web!);
    c.send('GET /chunked-small HTTP/1.0\r\nHost: t\r\nConnection: keep-alive\r\n\r\n');
    const r = await c.reply();
    t.is(r.status, 200);
    t.is(r.body.toString(), 'one-two');
    t.true(c.closed);
    // no length and no chunking for HTTP/1.0: the close ends the body, so the answer must not promise keep-alive
    t.deepEqual(values(r, 'connection'), ['close'], r.head);
  },
);

test.serial(
  'HTTP/1.0 with Transfer-Encoding: chunked and keep-alive: answered, then closed (RFC 9112 6.1)',
  async (t) => {
    const c = new RawClient(P.web!);
    c.send(
      'POST /echo HTTP/1.0\r\nHost: t\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n' +
        '5\r\nhello\r\n0\r\n\r\n',
    );
    const r = await c.reply();
    t.is(r.status, 200);
    t.like(JSON.parse(r.body.toString()), { len: 5, text: 'hello' });
    t.deepEqual(values(r, 'connection'), ['close'], r.head);
    // a second request on the same connection must not be served
    c.send('GET /hello HTTP/1.0\r\nHost: t\r\nConnection: keep-alive\r\n\r\n');
    t.true(await c.closes(5000), 'connection left open after a faulty-framed HTTP/1.0 request');
    t.true(c.ended, 'closed by the listener');
    t.false(c.text().includes('HTTP/1.1 200'), 'the second request was answered');
  },
);

test.serial('an absolute-form target naming another site than Host: 400, nothing reaches the server', async (t) => {
  seen.delete('http://other.example/abs');
  const c = new RawClient(P.web!);
  c.send('GET http://other.example/abs HTTP/1.1\r\nHost: x\r\n\r\n');
  const r = await c.reply();
  t.is(r.status, 400);
  t.false(seen.has('http://other.example/abs'));
  t.true(await c.closes(5000));
  // the same authority (any case, the default port spelt out) is relayed
  const ok = new RawClient(P.web!);
  ok.send('GET http://T:80/hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n');
  const r2 = await ok.reply();
  t.is(r2.status, 200);
  t.is(r2.body.toString(), 'hello');
  ok.destroy();
});

test.serial('a client leaving while the server thinks: the server connection closes, scur back to 0', async (t) => {
  thinking = signal<net.Socket>();
  const c = new RawClient(P.think!);
  c.send('GET /think HTTP/1.1\r\nHost: t\r\n\r\n');
  const serverSide = await thinking.promise;
  const closed = new Promise<void>((r) => serverSide.once('close', () => r()));
  t.true(await until(async () => (await serverRow('think', 'app')).scur === 1, 5000));
  c.destroy();
  const inTime = await Promise.race([closed.then(() => true), new Promise((r) => setTimeout(r, 3000, false))]);
  t.true(inTime, 'the server connection is still open 3 s after the client left');
  t.true(await until(async () => (await serverRow('think', 'app')).scur === 0, 5000));
  t.is((await serverRow('think', 'app')).eresp, 0);
});

test.serial(
  "send-proxy: one private server connection per client connection, each opened by its client's PROXY line",
  async (t) => {
    const a = new RawClient(P.proxied!);
    const b = new RawClient(P.proxied!);
    await Promise.all([a.ready, b.ready]);
    const line = (c: RawClient) => `PROXY TCP4 127.0.0.1 127.0.0.1 ${c.s.localPort} ${P.proxied}`;
    const ask = async (c: RawClient) => {
      c.send('GET / HTTP/1.1\r\nHost: t\r\n\r\n');
      const r = await c.reply();
      t.is(r.status, 200);
      return r.body.toString();
    };
    const a1 = await ask(a);
    t.is(a1, `conn 0 ${line(a)}`);
    t.is(await ask(a), a1, 'the second request of the client connection went over the same server connection');
    const b1 = await ask(b);
    t.is(b1, `conn 1 ${line(b)}`);
    t.is(await ask(b), b1);
    t.is(await ask(a), a1);
    t.deepEqual(proxyLines, [line(a), line(b)]);
    a.destroy();
    b.destroy();
  },
);

// ---- request bodies (last: a worker failing on one must not take the other tests with it) ----

/** (after a worker died in the test before: its replacement is up) */
async function bothWorkers(): Promise<void> {
  await until(async () => (await run.workerPids()).length === 2, 10_000);
}

test.serial('Expect: 100-continue gets 100 Continue, then the answer; the server sees no Expect', async (t) => {
  await bothWorkers();
  const c = new RawClient(P.web!);
  c.send('POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n');
  const cont = await c.reply();
  t.is(cont.head, 'HTTP/1.1 100 Continue');
  c.send('hello');
  const r = await c.reply();
  t.is(r.status, 200);
  const got = JSON.parse(r.body.toString());
  t.is(got.text, 'hello');
  t.is(got.cl, '5');
  const h = seen.get('/echo')!.headers;
  t.is(h.expect, undefined);
  c.destroy();
});

test.serial('a chunked upload of ~1 MB (no content-length) arrives intact', async (t) => {
  await bothWorkers();
  const data = randomBytes(1024 * 1024 + 3);
  const answer = await new Promise<string>((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port: P.web, method: 'POST', path: '/upload', agent: false },
      (res) => {
        let b = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (b += d));
        res.on('end', () => resolve(b));
      },
    );
    req.on('error', reject);
    for (let off = 0; off < data.length; off += 100_000) req.write(data.subarray(off, off + 100_000));
    req.end();
  });
  const got = JSON.parse(answer);
  t.is(got.len, data.length);
  t.is(got.sha, sha(data));
});

/** One request on `c` (kept alive) and its answer; a transport failure is returned as the answer's text. */
async function exchange(c: RawClient, request: string): Promise<string> {
  c.send(request);
  try {
    const r = await c.reply({ ms: 5000 });
    return `${r.status} ${r.body}`;
  } catch (e) {
    return String(e);
  }
}

test.serial(
  'requests with a body leave the workers running: the next request on the connection is answered',
  async (t) => {
    await bothWorkers();
    const pids = await run.workerPids();
    // four client connections: both workers get some
    for (let i = 0; i < 4; i++) {
      const c = new RawClient(P.web!);
      const post =
        i % 2 === 0
          ? 'POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc'
          : 'POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n';
      t.regex(await exchange(c, post), /^200 \{"len":3,/, `connection ${i + 1}: POST`);
      t.is(
        await exchange(c, 'GET /hello HTTP/1.1\r\nHost: t\r\n\r\n'),
        '200 hello',
        `connection ${i + 1}: GET after the POST`,
      );
      c.destroy();
    }
    t.deepEqual(await run.workerPids(), pids, 'a worker died');
    t.notRegex(run.stderr(), /worker died|TypeError/);
  },
);
