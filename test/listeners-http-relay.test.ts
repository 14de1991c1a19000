/**
 * The request fields HTTP mode sends to a server (src/listeners/http-relay.ts): hop-by-hop fields dropped, the
 * rest kept in order, case and number, and option forwardfor's X-Forwarded-*. Requests are parsed by a real
 * node:http server on 127.0.0.1 from raw bytes, as the listener's own server parses them.
 */
import http from 'node:http';
import net from 'node:net';
import test from 'ava';
import { isHopByHop, serverRequestHeaders } from '../src/listeners/worker/http-relay.js';

let server: http.Server;
let port: number;
/** client port → who waits for the request that connection carries */
const waiting = new Map<number, (req: http.IncomingMessage) => void>();

test.before(async () => {
  server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => res.end());
    waiting.get(req.socket.remotePort!)?.(req);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  port = (server.address() as net.AddressInfo).port;
});

test.after.always(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});

/** The request node:http makes of `head` (CRLF added to each line, the blank line after) and `body`. */
function parse(head: string[], body = ''): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    s.on('error', reject);
    s.on('connect', () => {
      waiting.set(s.localPort!, (req) => {
        waiting.delete(s.localPort!);
        resolve(req);
        req.on('end', () => s.destroy());
      });
      s.write(`${head.join('\r\n')}\r\n\r\n${body}`);
    });
    s.on('close', () => reject(new Error(`connection closed before the request was parsed: ${head[0]}`)));
  });
}

/** flat [name, value, ...] as [name, value] pairs */
function pairs(flat: string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i < flat.length; i += 2) out.push([flat[i]!, flat[i + 1]!]);
  return out;
}

/** the client's request (raw lines) and the fields the server gets, with option forwardfor's client address or not */
const cases: { title: string; head: string[]; body?: string; forwardedFor?: string; want: [string, string][] }[] = [
  {
    title: 'hop-by-hop request fields and the fields named in Connection are dropped; order, case, duplicates kept',
    head: [
      'POST /p HTTP/1.1',
      'Host: example.test',
      'Connection: close, X-Secret',
      'X-Secret: s',
      'Keep-Alive: timeout=5',
      'Proxy-Connection: keep-alive',
      'Transfer-Encoding: chunked',
      'TE: trailers',
      'Trailer: X-Sum',
      'Upgrade: h2c',
      'Expect: 100-continue',
      'Cookie: a=1',
      'X-Custom: one',
      'cookie: b=2',
      'X-Custom: two',
      'accept: */*',
    ],
    body: '0\r\n\r\n',
    want: [
      ['Host', 'example.test'],
      ['Cookie', 'a=1'],
      ['X-Custom', 'one'],
      ['cookie', 'b=2'],
      ['X-Custom', 'two'],
      ['accept', '*/*'],
    ],
  },
  {
    title: 'fields named in any Connection line are dropped, whatever their case and spacing',
    head: [
      'GET / HTTP/1.1',
      'Host: h',
      'x-a: 1',
      'Connection: keep-alive, X-A ,,',
      'X-B: 2',
      'X-C: 3',
      'connection:  x-b',
      'X-b: 4',
    ],
    want: [
      ['Host', 'h'],
      ['X-C', '3'],
    ],
  },
  {
    title: 'without forwardfor the client X-Forwarded-* fields pass as they are',
    head: ['GET / HTTP/1.1', 'X-Forwarded-For: a', 'Host: h', 'X-Forwarded-Proto: https', 'X-Forwarded-Host: other'],
    want: [
      ['X-Forwarded-For', 'a'],
      ['Host', 'h'],
      ['X-Forwarded-Proto', 'https'],
      ['X-Forwarded-Host', 'other'],
    ],
  },
  {
    title: 'forwardfor appends the client to X-Forwarded-For and replaces the client X-Forwarded-Proto/-Host',
    head: [
      'GET /f HTTP/1.1',
      'Host: example.test:8080',
      'X-Forwarded-For: a',
      'X-Forwarded-Proto: https',
      'x-forwarded-host: evil.test',
      'Accept: */*',
    ],
    forwardedFor: '127.0.0.1',
    want: [
      ['Host', 'example.test:8080'],
      ['Accept', '*/*'],
      ['x-forwarded-for', 'a, 127.0.0.1'],
      ['x-forwarded-proto', 'http'],
      ['x-forwarded-host', 'example.test:8080'],
    ],
  },
  {
    title: 'forwardfor: two X-Forwarded-For lines become one list ending with the client',
    head: ['GET / HTTP/1.1', 'X-Forwarded-For: a', 'Host: h', 'X-Forwarded-For: b, c'],
    forwardedFor: '192.0.2.7',
    want: [
      ['Host', 'h'],
      ['x-forwarded-for', 'a, b, c, 192.0.2.7'],
      ['x-forwarded-proto', 'http'],
      ['x-forwarded-host', 'h'],
    ],
  },
  {
    title: 'forwardfor without a client X-Forwarded-For or Host (HTTP/1.0): the client alone, no X-Forwarded-Host',
    head: ['GET / HTTP/1.0', 'User-Agent: old', 'Connection: Keep-Alive'],
    forwardedFor: '10.1.2.3',
    want: [
      ['User-Agent', 'old'],
      ['x-forwarded-for', '10.1.2.3'],
      ['x-forwarded-proto', 'http'],
    ],
  },
];

for (const c of cases) {
  test(c.title, async (t) => {
    const req = await parse(c.head, c.body);
    t.deepEqual(pairs(serverRequestHeaders(req, c.forwardedFor)), c.want);
  });
}

test('isHopByHop: the hop-by-hop names in any case, and nothing else', (t) => {
  const hop = [
    'Connection',
    'connection',
    'CONNECTION',
    'Keep-Alive',
    'keep-alive',
    'KEEP-ALIVE',
    'Proxy-Connection',
    'proxy-connection',
    'Transfer-Encoding',
    'transfer-encoding',
    'TRANSFER-ENCODING',
    'TE',
    'te',
    'Te',
    'Trailer',
    'TRAILER',
    'Upgrade',
    'upgrade',
    'Expect',
    'EXPECT',
  ];
  for (const n of hop) t.true(isHopByHop(n), n);
  const endToEnd = [
    '',
    't',
    'tes',
    'Host',
    'Cookie',
    'Set-Cookie', // 10 letters, as connection and keep-alive
    'Connectio',
    'Connections',
    'Keep-Alivee',
    'Trailers',
    'Upgrade-Insecure-Requests',
    'X-Upgrade',
    'Expects',
    'Content-Length',
    'Content-Encoding',
    'Proxy-Authorization',
    'Proxy-Connectio',
    'Transfer-Encodin',
    'Transfer-Encoding2',
    'X-Connection-Xxxx', // 17 letters, as transfer-encoding
    'X-Forwarded-For',
  ];
  for (const n of endToEnd) t.false(isHopByHop(n), n);
});
