/**
 * Balancing as a client sees it, through the real `tierlb listeners` (primary + 2 workers) on loopback: every
 * worker picks through the primary's pool, so the rotation and the connection counts are the node's, not a worker's.
 */
import test from 'ava';
import {
  freePort,
  type HttpBackend,
  httpBackend,
  type Running,
  request,
  startListeners,
  tally,
} from './listeners-helpers.js';

let run: Running;
const ports: Record<string, number> = {};
const backends: Record<string, HttpBackend[]> = {};

test.before(async () => {
  for (const l of ['rr', 'weighted', 'lc', 'src']) {
    ports[l] = await freePort();
    backends[l] = await Promise.all(['a', 'b', 'c'].map((n) => httpBackend(`${l}-${n}`)));
  }
  const srv = (l: string, weights = [1, 1, 1]) =>
    backends[l]!.map((b, i) => `        - { name: ${b.name}, address: ${b.address}, weight: ${weights[i]} }`).join(
      '\n',
    );
  run = await startListeners(`listeners:
  workers: 2
  stats: { enabled: false }
  listen:
    - name: rr
      bind: 127.0.0.1:${ports.rr}
      mode: http
      servers:
${srv('rr')}
    - name: weighted
      bind: 127.0.0.1:${ports.weighted}
      mode: http
      balance: roundrobin
      servers:
${srv('weighted', [3, 2, 1])}
    - name: lc
      bind: 127.0.0.1:${ports.lc}
      mode: http
      balance: leastconn
      servers:
${srv('lc')}
    - name: src
      bind: 127.0.0.1:${ports.src}
      mode: http
      balance: source
      servers:
${srv('src')}
`);
});

test.after.always(async () => {
  await run?.stop();
  for (const list of Object.values(backends)) for (const b of list) await b.close();
});

test.serial('two workers serve', async (t) => {
  t.is((await run.workerPids()).length, 2);
});

test.serial('roundrobin: 90 requests over 3 backends = 30/30/30 across workers, in rotation', async (t) => {
  const bodies: string[] = [];
  for (let i = 0; i < 90; i++) bodies.push((await request(`http://127.0.0.1:${ports.rr}/`)).body);
  t.deepEqual(tally(bodies), { 'rr-a': 30, 'rr-b': 30, 'rr-c': 30 });
  // the rotation itself: every window of 3 consecutive answers holds the 3 servers
  for (let i = 0; i + 3 <= bodies.length; i += 3) t.is(new Set(bodies.slice(i, i + 3)).size, 3);
  // concurrent clients too (connections spread over both workers)
  const par = await Promise.all(Array.from({ length: 30 }, () => request(`http://127.0.0.1:${ports.rr}/`)));
  t.deepEqual(tally(par.map((r) => r.body)), { 'rr-a': 10, 'rr-b': 10, 'rr-c': 10 });
});

test.serial('weights 3:2:1 are honoured exactly', async (t) => {
  const bodies: string[] = [];
  for (let i = 0; i < 60; i++) bodies.push((await request(`http://127.0.0.1:${ports.weighted}/`)).body);
  t.deepEqual(tally(bodies), { 'weighted-a': 30, 'weighted-b': 20, 'weighted-c': 10 });
});

test.serial('leastconn steers away from a slow backend (connections counted over both workers)', async (t) => {
  const [a, b, c] = backends.lc!;
  a!.delay = 1500;
  const url = `http://127.0.0.1:${ports.lc}/`;
  // 4 clients, 40 requests: the slow backend keeps its connection open, the fast ones free theirs at once
  let left = 40;
  const bodies: string[] = [];
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (left-- > 0) bodies.push((await request(url)).body);
    }),
  );
  t.is(bodies.length, 40);
  t.true(a!.hits <= 6, `slow backend got ${a!.hits}`);
  t.true(b!.hits >= 15 && c!.hits >= 15, `fast backends got ${b!.hits}, ${c!.hits}`);
});

test.serial('source: a client sticks to one server; clients spread', async (t) => {
  const url = `http://127.0.0.1:${ports.src}/`;
  const one = await Promise.all(Array.from({ length: 12 }, () => request(url, { localAddress: '127.0.0.2' })));
  t.is(new Set(one.map((r) => r.body)).size, 1);
  const seen = new Set<string>();
  for (let i = 2; i < 40; i++) seen.add((await request(url, { localAddress: `127.0.0.${i}` })).body);
  t.true(seen.size >= 2, `clients spread over ${[...seen]}`);
});
