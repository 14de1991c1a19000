/**
 * A listener's maxconn (HAProxy's frontend maxconn) through the real `tierlb listeners`: beyond it a connection is
 * held unread (its request waits, as in the kernel's backlog) and is served once an admitted connection closes.
 */
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
let web: HttpBackend;

test.before(async () => {
  port = await freePort();
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
