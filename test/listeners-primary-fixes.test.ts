/**
 * Two faults of the listeners' primary: a message to a worker that was just killed made the primary crash with an
 * unhandled EPIPE (Primary.stop → drainWorker → sendTo → Worker.send: the failure comes as an 'error' event, which
 * try/catch does not see); and with `workers: 1`, connections were refused while a dead worker was replaced. Also:
 * a bind by host name is resolved as net.Server.listen() does, also when the workers share the primary's sockets.
 */
import { fork, spawnSync } from 'node:child_process';
import { lookup } from 'node:dns/promises';
import net from 'node:net';
import test from 'ava';
import { sendToWorker } from '../src/listeners/worker-channel.js';
import { freePort, httpBackend, type Running, request, startListeners, until } from './listeners-helpers.js';

test('a message to a worker killed a moment ago (still looking connected) is lost quietly, without an EPIPE crash', async (t) => {
  const child = fork('-e', ['process.on("message", () => {}); setInterval(() => {}, 1000)']);
  child.on('message', () => {});
  await new Promise((r) => child.once('spawn', r));
  child.kill('SIGKILL');
  // the process is gone, but this process has not yet seen its channel close: a write now fails with EPIPE
  spawnSync('sleep', ['0.3']);
  t.true(child.connected);
  const worker = {
    isConnected: () => child.connected,
    send: (m: unknown, cb: (e: Error | null) => void) => child.send(m as object, cb),
  };
  t.true(sendToWorker(worker, { t: 'drain', deadline: 1000 }), 'handed to the channel');
  // an unhandled 'error' event would fail this test (ava reports the uncaught exception)
  await new Promise((r) => child.once('exit', r));
  await new Promise((r) => setTimeout(r, 100));
  t.false(sendToWorker(worker, { t: 'drain', deadline: 1000 }), 'a disconnected worker is not written to');
});

type Accept = 'shared' | 'handoff';
const ACCEPTS: Accept[] = ['shared', 'handoff'];

/** `tierlb listeners` with one worker and one listener `web` on `bind` to `server`, accepting the `accept` way:
 * shared, the worker listens on the primary's socket (the kernel's accept queue holds a connection no worker takes);
 * handoff, the primary accepts and holds it (../src/listeners/acceptor.ts) */
function startOne(accept: Accept, bind: string, server: string): Promise<Running> {
  return startListeners(
    `listeners:
  workers: 1
  stats: { enabled: false }
  listen:
    - name: web
      bind: ${bind}
      mode: http
      servers:
        - { name: a, address: ${server} }
`,
    [],
    { TIERLB_LISTENERS_HANDOFF: accept === 'handoff' ? '1' : '0' },
  );
}

for (const mode of ACCEPTS)
  test(`workers: 1 — a connection arriving while the dead worker is replaced waits for the new one (${mode} accept)`, async (t) => {
    const a = await httpBackend('a');
    t.teardown(() => a.close());
    const port = await freePort();
    const l = await startOne(mode, `127.0.0.1:${port}`, a.address);
    t.teardown(() => l.stop());
    t.true(l.stderr().includes(`"accept":"${mode}"`), l.stderr());
    const url = `http://127.0.0.1:${port}/`;
    t.is((await request(url)).body, 'a');
    for (let round = 0; round < 2; round++) {
      const [pid] = await l.workerPids();
      process.kill(pid!, 'SIGKILL');
      // the primary has seen it die: no worker is there now, its replacement is starting
      t.true(await until(async () => (await l.workerPids()).length === 0, 5000, 5));
      const replies = await Promise.allSettled(Array.from({ length: 5 }, () => request(url, { timeout: 10_000 })));
      t.deepEqual(
        replies.map((r) => (r.status === 'fulfilled' ? r.value.body : String(r.reason))),
        ['a', 'a', 'a', 'a', 'a'],
      );
      const [next] = await l.workerPids();
      t.truthy(next);
      t.not(next, pid);
    }
  });

for (const mode of ACCEPTS)
  test(`a bind by host name (localhost) listens on its first address (${mode} accept)`, async (t) => {
    const a = await httpBackend('a');
    t.teardown(() => a.close());
    const port = await freePort();
    const l = await startOne(mode, `localhost:${port}`, a.address);
    t.teardown(() => l.stop());
    t.true(l.stderr().includes(`"accept":"${mode}"`), l.stderr());
    const { address, family } = await lookup('localhost');
    const host = family === 6 ? `[${address}]` : address;
    t.is((await request(`http://${host}:${port}/`)).body, 'a');
  });

for (const mode of ACCEPTS)
  test(`an address another process listens on refuses the start with EADDRINUSE (${mode} accept)`, async (t) => {
    // (node listens with SO_REUSEADDR, as tierlb does: the bind alone may not fail, the listen does)
    const other = net.createServer();
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
    t.teardown(() => other.close());
    const port = (other.address() as net.AddressInfo).port;
    const err = await t.throwsAsync(startOne(mode, `127.0.0.1:${port}`, '127.0.0.1:9'));
    t.regex(err?.message ?? '', new RegExp(`cannot listen on EADDRINUSE: address already in use 127.0.0.1:${port}`));
  });
