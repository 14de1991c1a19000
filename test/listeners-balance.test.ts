import test from 'ava';
import { hash32 } from '../src/listeners/balance/hash.js';
import { createBalancer, type LbServer } from '../src/listeners/balance/index.js';

function servers(spec: [string, number, number?, number?][]): LbServer[] {
  return spec.map(([name, weight, conns = 0, maxconn = 0], id) => ({ id, name, weight, conns, maxconn }));
}

function seq(expr: string, list: LbServer[], n: number, req = {}): string[] {
  const b = createBalancer(expr);
  return Array.from({ length: n }, () => b.pick(list, req)?.name ?? '-');
}

function seeded(seed = 1): () => number {
  let x = seed;
  return () => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return x / 2 ** 32;
  };
}

test('roundrobin rotates strictly over equal weights', (t) => {
  t.deepEqual(
    seq(
      'roundrobin',
      servers([
        ['a', 1],
        ['b', 1],
        ['c', 1],
      ]),
      7,
    ),
    ['a', 'b', 'c', 'a', 'b', 'c', 'a'],
  );
});

test('roundrobin honours weights, smoothly', (t) => {
  const out = seq(
    'roundrobin',
    servers([
      ['a', 5],
      ['b', 1],
      ['c', 1],
    ]),
    7,
  );
  t.deepEqual(out, ['a', 'a', 'b', 'a', 'c', 'a', 'a']);
  const many = seq(
    'roundrobin',
    servers([
      ['a', 3],
      ['b', 2],
      ['c', 1],
    ]),
    600,
  );
  t.is(many.filter((x) => x === 'a').length, 300);
  t.is(many.filter((x) => x === 'b').length, 200);
  t.is(many.filter((x) => x === 'c').length, 100);
});

test('roundrobin skips a full server', (t) => {
  t.deepEqual(
    seq(
      'roundrobin',
      servers([
        ['a', 1, 2, 2],
        ['b', 1],
        ['c', 1],
      ]),
      4,
    ),
    ['b', 'c', 'b', 'c'],
  );
  t.deepEqual(seq('roundrobin', servers([['a', 1, 2, 2]]), 1), ['-']);
});

test('static-rr walks the weighted map', (t) => {
  const out = seq(
    'static-rr',
    servers([
      ['a', 2],
      ['b', 1],
    ]),
    6,
  );
  t.deepEqual(out, ['a', 'b', 'a', 'a', 'b', 'a']);
});

test('leastconn picks the fewest connections per weight, ties rotate', (t) => {
  t.is(
    createBalancer('leastconn').pick(
      servers([
        ['a', 1, 5],
        ['b', 1, 2],
        ['c', 1, 3],
      ]),
      {},
    )?.name,
    'b',
  );
  // b has 4 conns at weight 4 (ratio 1), a 2 at weight 1 (ratio 2)
  t.is(
    createBalancer('leastconn').pick(
      servers([
        ['a', 1, 2],
        ['b', 4, 4],
      ]),
      {},
    )?.name,
    'b',
  );
  t.deepEqual(
    seq(
      'leastconn',
      servers([
        ['a', 1],
        ['b', 1],
        ['c', 1],
      ]),
      4,
    ),
    ['a', 'b', 'c', 'a'],
  );
  t.is(
    createBalancer('leastconn').pick(
      servers([
        ['a', 1, 1, 1],
        ['b', 1, 9],
      ]),
      {},
    )?.name,
    'b',
  );
});

test('first fills servers in id order up to maxconn', (t) => {
  const b = createBalancer('first');
  t.is(
    b.pick(
      servers([
        ['a', 1, 0, 2],
        ['b', 1, 0, 2],
      ]),
      {},
    )?.name,
    'a',
  );
  t.is(
    b.pick(
      servers([
        ['a', 1, 2, 2],
        ['b', 1, 0, 2],
      ]),
      {},
    )?.name,
    'b',
  );
  t.is(
    b.pick(
      servers([
        ['a', 1, 2, 2],
        ['b', 1, 2, 2],
      ]),
      {},
    ),
    null,
  );
  t.is(
    b.pick(
      servers([
        ['a', 1, 100],
        ['b', 1],
      ]),
      {},
    )?.name,
    'a',
  );
});

test('random(2) prefers the less loaded of two draws; random(1) is weighted random', (t) => {
  const list = servers([
    ['a', 1, 10],
    ['b', 1, 0],
  ]);
  const b2 = createBalancer('random(2)', { random: seeded(7) });
  const picks = Array.from({ length: 1000 }, () => b2.pick(list, {})!.name);
  // a wins only when both draws are a: about 1/4
  const a = picks.filter((x) => x === 'a').length;
  // (seeded: exactly 221 of 1000)
  t.is(a, 221);
  const b1 = createBalancer('random(1)', { random: seeded(3) });
  const w = servers([
    ['a', 3],
    ['b', 1],
  ]);
  const p1 = Array.from({ length: 4000 }, () => b1.pick(w, {})!.name).filter((x) => x === 'a').length;
  // weight 3 of 4: about 3000 of 4000 (seeded: exactly 2984)
  t.is(p1, 2984);
  t.is(createBalancer('random').name, 'random(2)');
});

test('source sticks a client to one server and spreads clients', (t) => {
  const list = servers([
    ['a', 1],
    ['b', 1],
    ['c', 1],
  ]);
  const b = createBalancer('source');
  const first = b.pick(list, { src: '10.0.0.7' })!.name;
  for (let i = 0; i < 20; i++) t.is(b.pick(list, { src: '10.0.0.7' })!.name, first);
  const seen = new Set(Array.from({ length: 60 }, (_, i) => b.pick(list, { src: `10.0.${i}.1` })!.name));
  t.is(seen.size, 3);
  // a full server is still returned (the request waits for it)
  const full = servers([
    ['a', 1, 1, 1],
    ['b', 1, 1, 1],
    ['c', 1, 1, 1],
  ]);
  t.not(b.pick(full, { src: '10.0.0.7' }), null);
});

test('uri hashes the path without the query; hdr hashes a header, falls back to roundrobin', (t) => {
  const list = servers([
    ['a', 1],
    ['b', 1],
    ['c', 1],
  ]);
  const u = createBalancer('uri');
  const x = u.pick(list, { uri: '/img/1.png?v=1' })!.name;
  t.is(u.pick(list, { uri: '/img/1.png?v=2' })!.name, x);
  t.is(new Set(Array.from({ length: 30 }, (_, i) => u.pick(list, { uri: `/p/${i}` })!.name)).size, 3);
  const h = createBalancer('hdr(Host)');
  const y = h.pick(list, { headers: { host: 'Example.com:8080' } })!.name;
  t.is(h.pick(list, { headers: { host: 'example.com' } })!.name, y);
  t.deepEqual(
    Array.from({ length: 3 }, () => h.pick(list, { headers: {} })!.name),
    ['a', 'b', 'c'],
  );
});

test('hash32 is stable', (t) => {
  t.is(hash32(''), hash32(''));
  t.not(hash32('10.0.0.1'), hash32('10.0.0.2'));
  t.is(typeof hash32('x'), 'number');
});
