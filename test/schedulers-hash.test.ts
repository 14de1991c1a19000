import test from 'ava';
import type { RealServer } from '../src/l4/dest.js';
import { type DestinationHashing, dhBucket } from '../src/l4/schedulers/dh.js';
import { type MaglevHashing, MH_TAB_SIZE } from '../src/l4/schedulers/mh.js';
import { type SourceHashing, shHash } from '../src/l4/schedulers/sh.js';
import { hsiphash, hsiphashU32, siphash24, sipKey } from '../src/l4/schedulers/siphash.js';
import { hash32 } from '../src/l4/schedulers/util.js';
import { SVC_F_SCHED1, SVC_F_SCHED2 } from '../src/l4/service.js';
import { fixture, letter, pkt } from './schedulers-fixture.js';

// ---- hash primitives ----

test('hash_32: golden-ratio multiply, top bits (values worked out by hand)', (t) => {
  // 0x0a000001 * 0x61c88647 mod 2^32 = 0x27c88647
  t.is(hash32(0x0a000001, 8), 0x27);
  // 0x0a000002 * 0x61c88647 mod 2^32 = 0x89910c8e
  t.is(hash32(0x0a000002, 8), 0x89);
  t.is(hash32(0x0a000002, 10), 0x89910c8e >>> 22);
  t.is(hash32(0, 8), 0);
});

test('siphash: lib/test_siphash.c vectors (SipHash-2-4 and the 64-bit hsiphash = SipHash-1-3)', (t) => {
  const key = sipKey(0x0706050403020100n, 0x0f0e0d0c0b0a0908n);
  const msg = (n: number) => Uint8Array.from({ length: n }, (_, i) => i);
  t.is(siphash24(key, msg(0)), 0x726fdb47dd0e0e31n);
  t.is(siphash24(key, msg(4)), 0xcf2794e0277187b7n);
  t.is(siphash24(key, msg(15)), 0xa129ca6149be45e5n);
  t.is(siphash24(key, msg(63)), 0x958a324ceb064572n);
  t.is(hsiphash(key, msg(0)), 0x050fc4dc);
  t.is(hsiphash(key, msg(7)), 0x9bb11140);
  t.is(hsiphash(key, msg(8)), 0x8d299a8e);
  t.is(hsiphash(key, msg(63)), 0xb7bbb3a8);
  // hsiphash_1u32(0x03020100) = the 4-byte vector
  t.is(hsiphashU32(key, 0x03020100), 0x88d38328);
  t.is(hsiphash(key, msg(4)), 0x88d38328);
});

// ---- dh ----

test('dh: one bucket per dest in list order, bucket = hash_32(daddr, 8)', (t) => {
  const f = fixture('dh');
  f.addAll({ A: 1, B: 5, C: 1 }); // list C B A: buckets C B A C B A ... (weights do not matter)
  const dh = f.svc.scheduler as DestinationHashing;
  t.deepEqual(dh.buckets.slice(0, 6).map(letter).join(''), 'CBACBA');
  t.is(dhBucket('10.0.0.1', 4, 4), 39);
  t.is(dhBucket('10.0.0.2', 4, 4), 137);
  t.is(letter(f.pick(pkt('1.1.1.1', 1, '10.0.0.1'))), 'C'); // 39 % 3 = 0
  t.is(letter(f.pick(pkt('2.2.2.2', 2, '10.0.0.2'))), 'A'); // 137 % 3 = 2
  // the source does not matter
  t.is(letter(f.pick(pkt('9.9.9.9', 9, '10.0.0.2'))), 'A');
});

test('dh: an unusable hashed server gives no destination', (t) => {
  const f = fixture('dh');
  f.addAll({ A: 1, B: 1, C: 1 });
  const p = pkt('1.1.1.1', 1, '10.0.0.2'); // -> A
  f.edit('A', 0);
  t.is(f.pick(p), null);
  f.edit('A', 1);
  f.dest('A').overloaded = true;
  t.is(f.pick(p), null);
  f.dest('A').overloaded = false;
  t.is(letter(f.pick(p)), 'A');
});

// ---- sh ----

test('sh: each dest takes `weight` consecutive buckets, cycling in list order; a weight-0 dest still takes one', (t) => {
  const f = fixture('sh');
  f.addAll({ A: 1, B: 2, C: 3 }); // list C(3) B(2) A(1): C C C B B A, period 6
  const sh = f.svc.scheduler as SourceHashing;
  t.is(sh.buckets.slice(0, 8).map(letter).join(''), 'CCCBBACC');
  t.is(letter(sh.buckets[255]), 'B'); // 256 = 42 * 6 + 4: the last period stops after C C C B
  f.edit('B', 0);
  t.is(sh.buckets.slice(0, 6).map(letter).join(''), 'CCCBAC');
});

test('sh: source address hash, stable, sport only with sh-port', (t) => {
  const f = fixture('sh');
  f.addAll({ A: 1, B: 2, C: 3 });
  // bucket 39 -> 39 % 6 = 3 -> B; bucket 137 -> 137 % 6 = 5 -> A
  t.is(letter(f.pick(pkt('10.0.0.1', 1))), 'B');
  t.is(letter(f.pick(pkt('10.0.0.1', 5000))), 'B');
  t.is(letter(f.pick(pkt('10.0.0.2', 1))), 'A');
  const p = fixture('sh', { flags: SVC_F_SCHED2 });
  p.addAll({ A: 1, B: 2, C: 3 });
  // key = sport + saddr: 10.0.0.1 with port 1 hashes like 10.0.0.2
  t.is(letter(p.pick(pkt('10.0.0.1', 1))), 'A');
  t.is(letter(p.pick(pkt('10.0.0.1', 0))), 'B');
  // not TCP/UDP/SCTP: port 0
  t.is(letter(p.pick({ ...pkt('10.0.0.1', 1), protocol: 1 })), 'B');
});

test('sh-fallback: an unavailable server is replaced by the first available of the kernel probe order', (t) => {
  for (const flags of [0, SVC_F_SCHED1]) {
    const f = fixture('sh', { flags });
    f.addAll({ A: 1, B: 2, C: 3 });
    f.edit('A', 0); // the table keeps its layout; A's bucket 137 is now unusable
    const got = f.pick(pkt('10.0.0.2', 1));
    if (!flags) t.is(got, null);
    // first probe: roffset = 137, bucket (137 + 137) & 255 = 18 -> 18 % 6 = 0 -> C
    else t.is(letter(got), 'C');
  }
  t.is(shHash(0x0a000002, 137), 18);
  const f = fixture('sh', { flags: SVC_F_SCHED1 });
  f.addAll({ A: 1, B: 2, C: 3 });
  for (const l of 'ABC') f.dest(l).overloaded = true;
  t.is(f.pick(pkt('10.0.0.2', 1)), null);
});

// ---- mh ----

function counts(table: (RealServer | null)[]): Record<string, number> {
  const c: Record<string, number> = {};
  for (const d of table) c[letter(d)] = (c[letter(d)] ?? 0) + 1;
  return c;
}

const sources = Array.from({ length: 6000 }, (_, i) => `10.${(i >> 8) & 255}.${i & 255}.${(i * 7) & 255}`);

test('mh: 4093 entries, claimed round-robin one per dest per round', (t) => {
  const f = fixture('mh');
  f.addAll({ A: 1, B: 1, C: 1 }); // list C B A; 4093 = 1364 * 3 + 1
  const mh = f.svc.scheduler as MaglevHashing;
  t.is(MH_TAB_SIZE, 4093);
  t.deepEqual(counts(mh.lookup), { C: 1365, B: 1364, A: 1364 });
});

test('mh: weights scale the turns (by gcd, then shifted to 6 bits)', (t) => {
  const f = fixture('mh');
  f.addAll({ A: 2, B: 4, C: 6 }); // gcd 2: turns C 3, B 2, A 1; 4093 = 682 * 6 + 1
  const mh = f.svc.scheduler as MaglevHashing;
  t.deepEqual(counts(mh.lookup), { C: 2047, B: 1364, A: 682 });
  const g = fixture('mh');
  g.addAll({ A: 1, B: 100 }); // 100 needs 7 bits: shift 1 -> turns B 50, A 0 -> 1; 4093 = 80 * 51 + 13
  t.deepEqual(counts((g.svc.scheduler as MaglevHashing).lookup), { B: 4013, A: 80 });
});

test('mh: lookups are stable and the same in every instance (the kernel keys are fixed)', (t) => {
  const build = () => {
    const f = fixture('mh');
    for (const l of 'ABCDE') f.add(l, 1);
    return f;
  };
  const f = build();
  const g = build();
  const first = sources.map((s) => letter(f.pick(pkt(s))));
  t.deepEqual(
    sources.map((s) => letter(f.pick(pkt(s, 1234)))),
    first,
  ); // no mh-port: the port does not matter
  t.deepEqual(
    sources.map((s) => letter(g.pick(pkt(s)))),
    first,
  );
  const c: Record<string, number> = {};
  for (const l of first) c[l] = (c[l] ?? 0) + 1;
  for (const l of 'ABCDE') t.true(c[l] > 900 && c[l] < 1500, `${l}: ${c[l]}`);
});

test('mh: removing one of N servers moves about 1/N of the keys', (t) => {
  const f = fixture('mh');
  for (const l of 'ABCDE') f.add(l, 1);
  const before = sources.map((s) => letter(f.pick(pkt(s))));
  f.del('C');
  const after = sources.map((s) => letter(f.pick(pkt(s))));
  let moved = 0;
  let movedOthers = 0;
  for (let i = 0; i < sources.length; i++) {
    t.not(after[i], 'C');
    if (before[i] !== after[i]) {
      moved++;
      if (before[i] !== 'C') movedOthers++;
    }
  }
  const frac = moved / sources.length;
  t.true(frac > 0.15 && frac < 0.3, `moved ${frac}`);
  // keys that were not on C mostly stay (maglev is near-minimal, not perfect)
  t.true(movedOthers / sources.length < 0.03, `others moved ${movedOthers}`);
});

test('mh: weight 0 quiesces a server without reshuffling the table (last_weight)', (t) => {
  const f = fixture('mh');
  for (const l of 'ABCDE') f.add(l, 1);
  const mh = f.svc.scheduler as MaglevHashing;
  const table = [...mh.lookup];
  const before = sources.map((s) => letter(f.pick(pkt(s))));
  f.edit('C', 0);
  t.deepEqual(mh.lookup, table);
  const after = sources.map((s) => letter(f.pick(pkt(s))));
  for (let i = 0; i < sources.length; i++) t.is(after[i], before[i] === 'C' ? '-' : before[i]);
  t.true(before.includes('C'));
  // back to weight 1: same table again
  f.edit('C', 1);
  t.deepEqual(mh.lookup, table);
  // a server added with weight 0 takes no entries at all
  f.add('F', 0);
  t.false(mh.lookup.some((d) => letter(d) === 'F'));
});

test('mh-fallback: keys of a quiesced server go to other servers, stably; the rest stay', (t) => {
  const f = fixture('mh', { flags: SVC_F_SCHED1 });
  for (const l of 'ABCDE') f.add(l, 1);
  const before = sources.map((s) => letter(f.pick(pkt(s))));
  f.edit('C', 0);
  const after = sources.map((s) => letter(f.pick(pkt(s))));
  const again = sources.map((s) => letter(f.pick(pkt(s))));
  t.deepEqual(again, after);
  t.true(before.includes('C'), 'some keys were on C before it was quiesced');
  for (let i = 0; i < sources.length; i++) {
    if (before[i] === 'C') t.regex(after[i], /^[ABDE]$/);
    else t.is(after[i], before[i]);
  }
  for (const l of 'ABDE') f.dest(l).overloaded = true;
  t.is(f.pick(pkt(sources[0])), null);
});

test('mh-port: the source port joins the key', (t) => {
  const f = fixture('mh', { flags: SVC_F_SCHED2 });
  for (const l of 'ABCDE') f.add(l, 1);
  const seen = new Set<string>();
  for (let port = 1000; port < 1100; port++) seen.add(letter(f.pick(pkt('10.1.2.3', port))));
  t.is(seen.size, 5);
  // the port is added to the address: 10.1.2.3 port 1 is 10.1.2.4 port 0
  const g = fixture('mh', { flags: SVC_F_SCHED2 });
  for (const l of 'ABCDE') g.add(l, 1);
  for (let i = 0; i < 50; i++) {
    const a = `10.1.${i}.3`;
    const b = `10.1.${i}.4`;
    t.is(g.pick(pkt(a, 1)), g.pick(pkt(b, 0)));
  }
});
