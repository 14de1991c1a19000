/**
 * Accepting in a row (tune.maxaccept): a burst of connections that arrived while the worker was busy is taken in the
 * same turn of the event loop, not one per turn as libuv alone does; each is a working paused socket.
 */
import net from 'node:net';
import test from 'ava';
import { acceptBatch, acceptMore, plainSocket } from '../src/listeners/worker/accept-batch.js';

/** a listening server whose connection handler optionally takes more in a row; resolves with what the first turn saw */
async function burst(max: number, clients: number) {
  const got: net.Socket[] = [];
  let inFirstTurn = -1;
  const server = net.createServer({ pauseOnConnect: true }, (s) => {
    got.push(s);
    if (inFirstTurn < 0)
      setImmediate(() => {
        inFirstTurn = got.length;
      });
    acceptMore(server, max, plainSocket(false), (x) => got.push(x));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  // connect every client while this thread is blocked: the kernel completes the handshakes, they wait in the queue
  const socks = Array.from({ length: clients }, () => net.connect(port, '127.0.0.1').on('error', () => {}));
  await new Promise((r) => setTimeout(r, 50));
  const until = Date.now() + 200;
  while (Date.now() < until) {} // busy: no accept while the handshakes complete
  await new Promise((r) => setTimeout(r, 100));
  return { server, got, socks, inFirstTurn, port };
}

test('a burst waiting in the accept queue is taken in one turn, up to maxaccept', async (t) => {
  const { server, got, socks, inFirstTurn } = await burst(63, 40);
  t.teardown(() => {
    for (const s of [...got, ...socks]) s.destroy();
    server.close();
  });
  t.is(inFirstTurn, 40);
  t.is(got.length, 40);
});

test('with maxaccept 1, libuv alone: one connection per turn', async (t) => {
  const { server, got, socks, inFirstTurn } = await burst(0, 10);
  t.teardown(() => {
    for (const s of [...got, ...socks]) s.destroy();
    server.close();
  });
  t.true(inFirstTurn < 10, `first turn took ${inFirstTurn}`);
  t.is(got.length, 10);
});

test('a connection taken in a row is a paused socket with its peer, that reads and writes once resumed', async (t) => {
  const { server, got, socks, port } = await burst(63, 3);
  t.teardown(() => {
    for (const s of [...got, ...socks]) s.destroy();
    server.close();
  });
  const last = got[2]!;
  t.true(last.isPaused());
  t.is(last.remoteAddress, '127.0.0.1');
  t.is(last.localPort, port);
  const client = socks.find((c) => c.localPort === last.remotePort)!;
  const echoed = new Promise<string>((r) => client.once('data', (d) => r(String(d))));
  last.on('data', (d) => last.write(`echo ${d}`));
  last.resume();
  client.write('hi');
  t.is(await echoed, 'echo hi');
});

test('acceptBatch: maxaccept divided by twice the processes sharing the socket (HAProxy), at least 1', (t) => {
  t.is(acceptBatch(64, 1), 64);
  t.is(acceptBatch(64, 2), 16);
  t.is(acceptBatch(64, 4), 8);
  t.is(acceptBatch(4, 4), 1);
  t.is(acceptBatch(1, 2), 1);
});
