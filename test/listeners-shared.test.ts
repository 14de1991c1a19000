/**
 * Balancing over the cluster's shared memory (src/listeners/shared.ts, picker.ts): pickers of different workers over
 * one region (a SharedArrayBuffer here, and a real /dev/shm mapping shared by processes below) see one rotation, one
 * set of connection counts, one maxconn and one queue count.
 */
import { fork } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { ManualClock } from '../src/common/clock.js';
import { FULL, NOSERVER, type Picked } from '../src/listeners/picker.js';
import { createRegion, L_QCUR, lw, newWords, Registry, S_CONNS, sw } from '../src/listeners/shared.js';
import { SharedPicker } from '../src/listeners/shared-picker.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));

interface Srv {
  name: string;
  weight?: number;
  maxconn?: number;
  backup?: boolean;
}

/** A registry with one listener published, and a picker factory for worker rows. */
function setup(balance: string, servers: Srv[], opts: { maxqueue?: number; queueTimeout?: number } = {}) {
  const words = newWords();
  const reg = new Registry(words);
  const layout = reg.assign(0, [
    { name: 'l', servers: servers.map((s, i) => ({ name: s.name, host: '10.0.0.1', port: 80 + i })) },
  ]).l!;
  const publish = (weights: number[] = servers.map((s) => s.weight ?? 1)) =>
    reg.publish(
      layout.slot,
      servers.map((s, i) => ({ slot: layout.servers[i]!, weight: weights[i]!, backup: !!s.backup })),
    );
  publish();
  const clock = new ManualClock(0);
  const picker = (worker: number) =>
    new SharedPicker(
      words,
      layout.slot,
      servers.map((s, i) => ({ name: s.name, maxconn: s.maxconn ?? 0, slot: layout.servers[i]! })),
      worker,
      { balance, maxqueue: opts.maxqueue ?? 0, queueTimeout: opts.queueTimeout ?? 1000, random: seeded(7), clock },
    );
  return { words, reg, layout, publish, picker, clock, w: reg.allocWorker() };
}

function seeded(seed: number): () => number {
  let x = seed;
  return () => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return x / 2 ** 32;
  };
}

const names = (p: SharedPicker, ids: number[]) => ids.map((i) => p.name(i));

test('roundrobin: two workers alternating share one rotation (30/30/30, every window of 3 holds all 3)', (t) => {
  const { picker } = setup('roundrobin', [{ name: 'a' }, { name: 'b' }, { name: 'c' }]);
  const w = [picker(0), picker(1)];
  const seq: number[] = [];
  for (let i = 0; i < 90; i++) {
    const p = w[i % 3 === 0 ? 0 : 1]!; // uneven share of requests per worker
    const s = p.pick({});
    seq.push(s);
    p.release(s);
  }
  const tally = [0, 1, 2].map((s) => seq.filter((x) => x === s).length);
  t.deepEqual(tally, [30, 30, 30]);
  for (let i = 0; i + 3 <= 90; i += 3) t.is(new Set(seq.slice(i, i + 3)).size, 3);
});

test('roundrobin weights 3:2:1 over workers: exact shares, smooth order; a weight change applies at once', (t) => {
  const { picker, publish } = setup('roundrobin', [
    { name: 'a', weight: 3 },
    { name: 'b', weight: 2 },
    { name: 'c', weight: 1 },
  ]);
  const w = [picker(0), picker(1), picker(2)];
  const seq: number[] = [];
  for (let i = 0; i < 60; i++) {
    const p = w[i % 3]!;
    const s = p.pick({});
    seq.push(s);
    p.release(s);
  }
  t.deepEqual(
    [0, 1, 2].map((s) => seq.filter((x) => x === s).length),
    [30, 20, 10],
  );
  t.deepEqual(names(w[0]!, seq.slice(0, 6)), ['a', 'b', 'a', 'c', 'b', 'a']);
  // c goes down (weight 0): the next picks avoid it in every worker
  publish([3, 2, 0]);
  const after = Array.from({ length: 10 }, (_, i) => {
    const s = w[i % 3]!.pick({});
    w[i % 3]!.release(s);
    return s;
  });
  t.false(after.includes(2));
  t.deepEqual(
    [0, 1].map((s) => after.filter((x) => x === s).length),
    [6, 4],
  );
});

test('leastconn sees the connections another worker holds', (t) => {
  const { picker } = setup('leastconn', [{ name: 'a' }, { name: 'b' }, { name: 'c' }]);
  const [w0, w1] = [picker(0), picker(1)];
  // worker 0 keeps 2 connections on a and 1 on b
  const held = [w0.pick({}), w0.pick({}), w0.pick({})];
  t.deepEqual(names(w0, held).sort(), ['a', 'b', 'c']);
  w0.release(held[2]!); // c free again
  t.is(w1.name(w1.pick({})), 'c');
  // now a, b, c each hold 1: ties rotate over the node (the tie cursor is shared too)
  const next = [w1.pick({}), w0.pick({}), w1.pick({})];
  t.deepEqual(names(w0, next).sort(), ['a', 'b', 'c']);
});

test('maxconn holds across workers; the waiter is served on release; timeout queue; maxqueue', (t) => {
  const { picker, words, layout, clock } = setup('roundrobin', [{ name: 'one', maxconn: 1 }], {
    maxqueue: 1,
    queueTimeout: 500,
  });
  const [w0, w1] = [picker(0), picker(1)];
  t.is(w0.pick({}), 0);
  t.is(w1.pick({}), FULL);
  const got: Picked[] = [];
  w1.acquire({}, undefined, (r) => got.push(r));
  t.is(w1.waiting, 1);
  t.is(Atomics.load(words, lw(layout.slot, L_QCUR)), 1);
  // maxqueue 1 is reached over the node: worker 0's next request is refused
  w0.acquire({}, undefined, (r) => got.push(r));
  t.deepEqual(got, ['queuefull']);
  // the release happens in worker 0; worker 1 finds the slot on its next serve (its timer)
  clock.set(10);
  w0.release(0);
  w1.serveQueue();
  t.deepEqual(got, ['queuefull', 0]);
  t.is(Atomics.load(words, lw(layout.slot, L_QCUR)), 0);
  // full again: a new waiter times out
  clock.set(20);
  w0.acquire({}, undefined, (r) => got.push(r));
  clock.set(519);
  w0.serveQueue();
  t.is(w0.waiting, 1);
  clock.set(520);
  w0.serveQueue();
  t.deepEqual(got, ['queuefull', 0, 'timeout']);
});

test('backups only when no active is usable; no usable server = NOSERVER; redispatch excludes tried', (t) => {
  const { picker, publish } = setup('roundrobin', [{ name: 'a' }, { name: 'b' }, { name: 'bk', backup: true }]);
  const p = picker(0);
  const got = new Set<string>();
  for (let i = 0; i < 4; i++) {
    const s = p.pick({});
    got.add(p.name(s));
    p.release(s);
  }
  t.deepEqual([...got].sort(), ['a', 'b']);
  for (let i = 0; i < 4; i++) t.is(p.pick({}, new Set([0])), 1);
  publish([0, 0, 1]);
  t.is(p.name(p.pick({})), 'bk');
  publish([0, 0, 0]);
  t.is(p.pick({}), NOSERVER);
});

test('hashing (source) keeps a client on its server over workers and waits for it when full', (t) => {
  const { picker } = setup('source', [
    { name: 'a', maxconn: 1 },
    { name: 'b', maxconn: 1 },
  ]);
  const [w0, w1] = [picker(0), picker(1)];
  const s = w0.pick({ src: '10.1.1.1' });
  t.is(s, 1);
  t.is(w1.pick({ src: '10.1.1.1' }), FULL);
  w0.release(s);
  t.is(w1.pick({ src: '10.1.1.1' }), s);
});

test('registry: a dead worker`s slots and waiters are given back; reload keeps a kept server`s slot', (t) => {
  const { picker, reg, words, layout } = setup('roundrobin', [
    { name: 'a', maxconn: 2 },
    { name: 'b', maxconn: 1 },
  ]);
  const dead = reg.allocWorker();
  const p = picker(dead);
  p.pick({});
  p.pick({});
  p.pick({});
  p.acquire({}, undefined, () => {});
  p.acquire({}, undefined, () => {});
  const conns = () => layout.servers.map((s) => Atomics.load(words, sw(s, S_CONNS)));
  t.deepEqual(conns(), [2, 1]);
  t.is(reg.reclaim(dead), 3);
  t.deepEqual(conns(), [0, 0]);
  t.is(Atomics.load(words, lw(layout.slot, L_QCUR)), 0);
  const next = reg.assign(1, [
    {
      name: 'l',
      servers: [
        { name: 'b', host: '10.0.0.1', port: 81 },
        { name: 'c', host: '10.0.0.9', port: 80 },
      ],
    },
  ]).l!;
  t.is(next.slot, layout.slot);
  t.is(next.servers[0], layout.servers[1]);
  t.false(layout.servers.includes(next.servers[1]!));
});

test('registry: a bound address keeps its accept slot for every worker and generation, apart from the listener slots', (t) => {
  const reg = new Registry(newWords());
  const binds = [
    { name: 'web', host: '127.0.0.1', port: 80 },
    { name: 'api', host: '127.0.0.1', port: 81 },
  ];
  const first = reg.workerInfo('/x', {}, binds);
  t.deepEqual(first.accept, { web: 0, api: 1 });
  // a reload renames web and moves api: the kept address keeps its slot, the new one gets the next
  const next = reg.workerInfo('/x', {}, [
    { name: 'www', host: '127.0.0.1', port: 80 },
    { name: 'api', host: '127.0.0.1', port: 82 },
  ]);
  t.deepEqual(next.accept, { www: 0, api: 2 });
  t.not(next.worker, first.worker);
  // the accept slots take none of the listeners' (MAX_LISTENERS each)
  t.is(reg.listenerSlot('web'), 0);
});

test('processes over a /dev/shm mapping: 2 workers × 30000 roundrobin picks = an exact split', async (t) => {
  const region = createRegion();
  const reg = new Registry(region.words);
  const layout = reg.assign(0, [
    {
      name: 'l',
      servers: ['a', 'b', 'c'].map((n, i) => ({ name: n, host: '127.0.0.1', port: 1000 + i })),
    },
  ]).l!;
  reg.publish(
    layout.slot,
    layout.servers.map((slot) => ({ slot, weight: 1, backup: false })),
  );
  const run = (balance: string, picks: number, hold = false) => {
    const worker = reg.allocWorker();
    const child = fork(path.join(HERE, 'listeners-shared-child.ts'), [], {
      execArgv: ['--import', 'tsx'],
      stdio: 'inherit',
    });
    const done = new Promise<number[]>((resolve, reject) => {
      child.on('message', (m: { tally?: number[]; ready?: boolean }) => {
        if (m.ready)
          child.send({ path: region.path, worker, lslot: layout.slot, slots: layout.servers, balance, picks, hold });
        else resolve(m.tally!);
      });
      child.once('exit', (code) => reject(new Error(`child exited ${code}`)));
    });
    return { child, worker, done };
  };
  const [a, b] = [run('roundrobin', 30_000), run('roundrobin', 30_000)];
  const tallies = await Promise.all([a.done, b.done]);
  const sum = [0, 1, 2].map((s) => tallies[0]![s]! + tallies[1]![s]!);
  t.deepEqual(sum, [20_000, 20_000, 20_000]);
  t.deepEqual(
    layout.servers.map((s) => reg.server(s).lbtot),
    [20_000, 20_000, 20_000],
  );
  t.deepEqual(
    layout.servers.map((s) => reg.server(s).conns),
    [0, 0, 0],
  );
  // leastconn in another process sees what a holder process keeps open, and its slots come back when it dies
  const holder = run('roundrobin', 4, true);
  await holder.done;
  const conns = layout.servers.map((s) => reg.server(s).conns);
  t.is(
    conns.reduce((x, y) => x + y, 0),
    4,
  );
  const lc = run('leastconn', 1, true);
  const lcTally = await lc.done;
  const least = Math.min(...conns);
  t.is(conns[lcTally.indexOf(1)], least);
  for (const c of [holder.child, lc.child]) {
    const gone = new Promise((r) => c.once('exit', r));
    c.kill();
    await gone;
  }
  reg.reclaim(holder.worker);
  reg.reclaim(lc.worker);
  t.deepEqual(
    layout.servers.map((s) => reg.server(s).conns),
    [0, 0, 0],
  );
});
