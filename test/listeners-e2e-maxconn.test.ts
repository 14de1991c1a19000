/**
 * A listener's maxconn (HAProxy's frontend maxconn) through the real `tierlb listeners`: beyond it a connection is
 * held unread (its request waits, as in the kernel's backlog) and is served once an admitted connection closes. The
 * listening socket's accept queue (listen(2) backlog) is the listener's `backlog`, else its maxconn, else the kernel's
 * cap, as `ss -ltn` shows it.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
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

let run: Running;
let port: number;
let port2: number;
let port3: number;
let web: HttpBackend;

test.before(async () => {
  port = await freePort();
  port2 = await freePort();
  port3 = await freePort();
  web = await httpBackend('web');
  run = await startListeners(`listeners:
  workers: 1
  stats: { enabled: false }
  listen:
    - name: capped
      bind: 127.0.0.1:${port}
      mode: http
      maxconn: 2
      timeout: { http_keep_alive: 30s }
      servers:
        - { name: web, address: ${web.address} }
    - name: queued
      bind: 127.0.0.1:${port2}
      mode: http
      backlog: 1234
      servers:
        - { name: web, address: ${web.address} }
    - name: plain
      bind: 127.0.0.1:${port3}
      mode: tcp
      servers:
        - { name: web, address: ${web.address} }
`);
});

test.after.always(async () => {
  await run?.stop();
  await web?.close();
});

/** a keep-alive connection that sends one GET; `answered` resolves with the answer's status line */
function client(): { sock: net.Socket; answered: Promise<string>; got: () => string } {
  const sock = net.connect(port, '127.0.0.1');
  let got = '';
  const answered = new Promise<string>((resolve, reject) => {
    sock.on('data', (d) => {
      got += d;
      if (got.includes('\r\n\r\n')) resolve(got.split('\r\n')[0]!);
    });
    sock.on('error', reject);
  });
  sock.on('connect', () => sock.write('GET / HTTP/1.1\r\nHost: t\r\n\r\n'));
  return { sock, answered, got: () => got };
}

test('beyond maxconn a connection waits unread; it is served when an admitted one closes', async (t) => {
  const a = client();
  const b = client();
  t.is(await a.answered, 'HTTP/1.1 200 OK');
  t.is(await b.answered, 'HTTP/1.1 200 OK');
  const hits = web.hits;
  const c = client();
  // a and b stay open (keep-alive): c's request is not read
  await sleep(400);
  t.is(c.got(), '', 'no answer while two connections are open');
  t.is(web.hits, hits, 'the request did not reach the server');
  a.sock.destroy();
  t.is(await c.answered, 'HTTP/1.1 200 OK');
  t.true(await until(() => web.hits === hits + 1));
  b.sock.destroy();
  c.sock.destroy();
});

/** the accept queue's size of the socket listening on 127.0.0.1:port (ss: Send-Q of a LISTEN socket) */
function acceptQueue(p: number): number {
  const out = execFileSync('ss', ['-ltnH', `sport = :${p}`], { encoding: 'utf8' }).trim();
  const cols = out.split(/\s+/);
  return Number(cols[2]);
}

test("the listen backlog: `backlog` as written, else maxconn (as HAProxy), else the kernel cap (not node's 511)", (t) => {
  const somaxconn = Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8'));
  t.is(acceptQueue(port2), Math.min(1234, somaxconn));
  t.is(acceptQueue(port), 2);
  t.is(acceptQueue(port3), Math.min(65535, somaxconn));
});
