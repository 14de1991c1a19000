/**
 * Connections spread over the workers by load (src/listeners/worker/accept-share.ts): the rule over the shared
 * memory's words, and two real workers on one listening socket, one of them stopped and started again.
 */
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import test from 'ava';
import { H_ROWS, hb, newWords } from '../src/listeners/shared.js';
import { AcceptShare, STALE_MS, slack } from '../src/listeners/worker/accept-share.js';
import { oneListener, sleep, until } from './listeners-helpers.js';

test('the share: at most the least loaded live accepting worker plus the slack; idle, draining and stale workers do not count', (t) => {
  const words = newWords();
  let now = 1_000_000;
  const clock = () => now;
  Atomics.store(words, H_ROWS, 3);
  const beat = (w: number) => Atomics.store(words, hb(w), now % 0x80000000);
  const a = new AcceptShare(words, 0, 5, clock);
  const b = new AcceptShare(words, 1, 5, clock);
  const other = new AcceptShare(words, 2, 6, clock); // another address: never counted
  for (const w of [0, 1, 2]) beat(w);
  // alone (b does not accept yet): no limit
  a.setAccepting(true);
  t.is(a.room(16), 16);
  b.setAccepting(true);
  other.setAccepting(true);
  for (let i = 0; i < 40; i++) other.opened();
  // b has 0: a may hold 0 + 2
  t.is(a.room(16), 2);
  a.opened();
  t.false(a.over());
  a.opened();
  t.true(a.over(), 'a holds 2 while b holds 0');
  t.is(b.room(16), 4, 'b may take up to a + 2');
  // the slack grows with the load: 2 + 1/8
  t.is(slack(0), 2);
  t.is(slack(16), 4);
  t.is(slack(80), 12);
  for (let i = 0; i < 16; i++) b.opened();
  t.is(a.room(100), 16 + 4 - 2);
  for (let i = 0; i < 18; i++) a.opened();
  t.true(a.over(), 'a holds 20 while b holds 16');
  b.closed();
  t.true(a.over());
  // a draining b does not count
  b.setAccepting(false);
  t.false(a.over());
  t.is(a.room(7), 7);
  // nor a stale one
  b.setAccepting(true);
  t.true(a.over());
  now += STALE_MS + 1;
  beat(0);
  t.false(a.over(), "b's heartbeat is too old");
  beat(1);
  t.true(a.over());
  // a heartbeat from before the clock word wrapped is still recent
  now = 0x80000000 + 10;
  Atomics.store(words, hb(1), 0x7ffffffa);
  t.true(a.over());
});

/** the established connections on `port` per process id */
function perProcess(port: number): Map<number, number> {
  const out = execFileSync('ss', ['-tnpH', 'state', 'established', `( sport = :${port} )`], { encoding: 'utf8' });
  const m = new Map<number, number>();
  for (const line of out.split('\n')) {
    const pid = /pid=(\d+)/.exec(line)?.[1];
    if (pid) m.set(Number(pid), (m.get(Number(pid)) ?? 0) + 1);
  }
  return m;
}

async function open(port: number, n: number, into: net.Socket[]): Promise<void> {
  await Promise.all(
    Array.from({ length: n }, () => {
      const s = net.connect(port, '127.0.0.1');
      s.on('error', () => {});
      into.push(s);
      return new Promise((r) => s.once('connect', r));
    }),
  );
}

test('two workers: a stopped one is not waited for; started again, it takes the new connections until even', async (t) => {
  // (the connections are only counted: a backend that accepts is enough)
  const backend = net.createServer((s) => s.on('error', () => {}));
  const { port, run: l } = await oneListener(backend, 'web', 'http', '', 2);
  const socks: net.Socket[] = [];
  const [pa, pb] = await l.workerPids();
  t.teardown(async () => {
    for (const p of [pa, pb])
      try {
        process.kill(p!, 'SIGCONT');
      } catch {}
    for (const s of socks) s.destroy();
    await l.stop();
    backend.close();
  });
  // b stopped (its heartbeat goes stale): a alone takes 20 connections, never waiting for b
  process.kill(pb!, 'SIGSTOP');
  await sleep(STALE_MS + 300);
  await open(port, 20, socks);
  t.true(await until(() => perProcess(port).get(pa!) === 20), `a has all 20: ${[...perProcess(port)]}`);
  // b again: a is over its share (20 against 0), so b takes the next ones until they are within the slack
  process.kill(pb!, 'SIGCONT');
  await sleep(300);
  // one at a time, each accepted before the next: without the share, each would go to whichever idle worker woke
  // first (b taking 16 of 20 that way: under 1%)
  const accepted = () => (perProcess(port).get(pa!) ?? 0) + (perProcess(port).get(pb!) ?? 0);
  for (let i = 1; i <= 20; i++) {
    await open(port, 1, socks);
    t.true(await until(() => accepted() === 20 + i), `connection ${i} accepted`);
  }
  const split = perProcess(port);
  t.true(
    (split.get(pb!) ?? 0) >= 16,
    `b took at least 16 of the 20 new ones: a ${split.get(pa!)}, b ${split.get(pb!)}`,
  );
});
