import test from 'ava';
import type { LocalityLeastConnection } from '../src/l4/schedulers/lblc.js';
import type { LocalityLeastConnectionReplicated } from '../src/l4/schedulers/lblcr.js';
import { fixture, letter, pkt } from './schedulers-fixture.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const to = (daddr: string) => pkt('172.16.0.9', 40000, daddr);

// ---- lblc ----

test('lblc: a destination address sticks to its server while that server is not overloaded', (t) => {
  const f = fixture('lblc');
  f.addAll({ A: 2, B: 2 }); // list B A
  t.is(letter(f.pick(to('10.9.0.1'))), 'B'); // wlc: tie, first
  f.load('B', 2); // active == weight: not "overloaded"
  t.is(letter(f.pick(to('10.9.0.1'))), 'B');
  t.is(letter(f.pick(to('10.9.0.2'))), 'A'); // a new address goes by wlc
  const lblc = f.svc.scheduler as LocalityLeastConnection;
  t.is(lblc.table.size, 2);
});

test('lblc: replaced when active > weight and some server has less than half its weight', (t) => {
  const f = fixture('lblc');
  f.addAll({ A: 4, B: 2 }); // list B A
  const p = to('10.9.0.1');
  t.is(letter(f.pick(p)), 'B');
  f.load('B', 3); // 3 > 2
  f.load('A', 2); // 2 * 2 < 4 is false: nobody is under half its weight
  t.is(letter(f.pick(p)), 'B');
  f.load('A', 1); // 1 * 2 < 4: A is under half
  t.is(letter(f.pick(p)), 'A');
  // the entry now points at A
  f.load('B', 0);
  t.is(letter(f.pick(p)), 'A');
});

test('lblc: the cached server is left for wlc when it is quiesced or deleted, not for IP_VS_DEST_F_OVERLOAD', (t) => {
  const f = fixture('lblc');
  f.addAll({ A: 1, B: 1 });
  const p = to('10.9.0.1');
  t.is(letter(f.pick(p)), 'B');
  f.dest('B').overloaded = true; // the kernel's lblc does not look at the flag for a cached server
  t.is(letter(f.pick(p)), 'B');
  f.dest('B').overloaded = false;
  f.edit('B', 0);
  t.is(letter(f.pick(p)), 'A');
  f.edit('B', 1);
  t.is(letter(f.pick(p)), 'A');
  f.del('A');
  t.is(letter(f.pick(p)), 'B');
});

test('lblc: entries expire 24 h after their last use, at the half-hourly full check', (t) => {
  const f = fixture('lblc');
  f.addAll({ A: 1, B: 1 });
  const lblc = f.svc.scheduler as LocalityLeastConnection;
  f.pick(to('10.9.0.1')); // used at t = 0
  f.clock.set(1 * HOUR);
  f.pick(to('10.9.0.2')); // used at t = 1 h
  f.clock.set(24 * HOUR - 1);
  lblc.tick(f.clock.now());
  t.is(lblc.table.size, 2); // the last full check ran at 23.5 h
  f.clock.set(24 * HOUR);
  lblc.tick(f.clock.now());
  t.is(lblc.table.size, 1);
  t.is(lblc.table.get('10.9.0.2')?.lastuse, 1 * HOUR);
  t.is(lblc.table.get('10.9.0.1'), undefined);
  lblc.tick(25 * HOUR);
  t.is(lblc.table.size, 0);
});

test('lblc: a use refreshes the entry; ticking in small steps gives the same result', (t) => {
  const f = fixture('lblc');
  f.add('A', 1);
  const lblc = f.svc.scheduler as LocalityLeastConnection;
  f.pick(to('10.9.0.1'));
  for (let m = 1; m <= 20 * 60; m++) {
    f.clock.set(m * MIN);
    lblc.tick(f.clock.now());
  }
  f.pick(to('10.9.0.1')); // used at 20 h
  for (let m = 20 * 60 + 1; m <= 44 * 60 - 1; m++) lblc.tick(m * MIN);
  t.is(lblc.table.size, 1); // 43 h 59 m: not yet 24 h since 20 h
  lblc.tick(44 * 60 * MIN);
  t.is(lblc.table.size, 0);
});

test('lblc: over 16384 entries, stale (6 min) entries are collected between full checks', (t) => {
  const f = fixture('lblc');
  f.add('A', 1);
  const lblc = f.svc.scheduler as LocalityLeastConnection;
  const n = 16384 + 300;
  for (let i = 0; i < n; i++) f.pick(to(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`));
  t.is(lblc.table.size, n);
  lblc.tick(6 * MIN); // runs 1..6: entries are not 6 min old before the 6th run, which collects
  const after = lblc.table.size;
  // goal (300 * 4/3 = 400) reached, bucket by bucket: at least 400 gone, far from all
  t.true(after <= n - 400, `${after}`);
  t.true(after > n - 1000, `${after}`);
  lblc.tick(7 * MIN); // under the maximum now: nothing more goes before the full check
  t.is(lblc.table.size, after);
});

// ---- lblcr ----

test('lblcr: the set grows when its least loaded member is overloaded, and serves from the set', (t) => {
  const f = fixture('lblcr');
  f.addAll({ A: 4, B: 2 }); // list B A
  const lblcr = f.svc.scheduler as LocalityLeastConnectionReplicated;
  const p = to('10.9.0.1');
  t.is(letter(f.pick(p)), 'B');
  f.load('B', 3); // 3 > 2 and A (1 * 2 < 4) is under half its weight
  f.load('A', 1);
  t.is(letter(f.pick(p)), 'A');
  const set = lblcr.table.get('10.9.0.1')?.set;
  t.deepEqual(set?.members.map(letter), ['A', 'B']);
  // now the set's least loaded member serves: A 256/4 vs B 512/2 (B at 2)
  f.load('B', 2);
  t.is(letter(f.pick(p)), 'A');
  f.load('A', 4); // 1024/4 = 256 vs B 512/2 = 256: tie, first member (A)
  t.is(letter(f.pick(p)), 'A');
  f.load('A', 5); // 1280/4 > 256
  t.is(letter(f.pick(p)), 'B');
  t.is(set?.members.length, 2);
});

test('lblcr: a set unchanged for 24 h drops its most loaded member', (t) => {
  const f = fixture('lblcr');
  f.addAll({ A: 4, B: 2 });
  const lblcr = f.svc.scheduler as LocalityLeastConnectionReplicated;
  const p = to('10.9.0.1');
  f.pick(p); // B
  f.load('B', 3);
  f.load('A', 1);
  f.pick(p); // A joins at t = 0
  const set = lblcr.table.get('10.9.0.1')?.set;
  t.is(set?.members.length, 2);
  f.load('B', 1);
  f.load('A', 1);
  // used every hour so the entry itself stays
  for (let h = 1; h <= 24; h++) {
    f.clock.set(h * HOUR);
    lblcr.tick(f.clock.now());
    f.pick(p);
  }
  t.is(set?.members.length, 2); // at exactly 24 h: not yet (strictly after)
  f.clock.set(24 * HOUR + 1);
  t.is(letter(f.pick(p)), 'A'); // chosen before the shrink: A 256/4 < B 256/2
  // the most loaded (B: 256/2 > A: 256/4) went
  t.deepEqual(set?.members.map(letter), ['A']);
  t.is(set?.lastmod, 24 * HOUR + 1);
  t.is(lblcr.table.size, 1);
  // a single member is never dropped
  f.clock.set(60 * HOUR);
  t.is(letter(f.pick(p)), 'A');
  t.is(set?.members.length, 1);
});

test('lblcr: members that are deleted or quiesced are not used; the entry expires like lblc', (t) => {
  const f = fixture('lblcr');
  f.addAll({ A: 1, B: 1 });
  const lblcr = f.svc.scheduler as LocalityLeastConnectionReplicated;
  const p = to('10.9.0.1');
  t.is(letter(f.pick(p)), 'B');
  f.edit('B', 0);
  t.is(letter(f.pick(p)), 'A');
  t.deepEqual(lblcr.table.get('10.9.0.1')?.set.members.map(letter), ['A', 'B']);
  f.edit('B', 1);
  f.load('A', 1);
  t.is(letter(f.pick(p)), 'B'); // B is back in the set and idle
  f.del('B');
  t.is(letter(f.pick(p)), 'A');
  lblcr.tick(24 * HOUR);
  t.is(lblcr.table.size, 0);
});
