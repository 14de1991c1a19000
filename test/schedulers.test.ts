import test from 'ava';
import { DEFAULT_SCHEDULER, hasScheduler, SCHEDULERS } from '../src/l4/schedulers/index.js';
import { fixture, letter, seeded } from './schedulers-fixture.js';

test('registry: every kernel scheduler, wlc by default', (t) => {
  const names = ['rr', 'wrr', 'lc', 'wlc', 'sed', 'nq', 'lblc', 'lblcr', 'dh', 'sh', 'mh', 'fo', 'ovf', 'twos'];
  t.deepEqual(Object.keys(SCHEDULERS).sort(), [...names].sort());
  t.is(DEFAULT_SCHEDULER, 'wlc');
  t.true(hasScheduler('mh'));
  t.false(hasScheduler('toString'));
  for (const n of names) t.is(fixture(n).svc.scheduler.name, n);
});

test('empty service: every scheduler answers null', (t) => {
  for (const n of Object.keys(SCHEDULERS)) t.is(fixture(n).pick(), null, n);
});

// ---- rr ----

test('rr: list order is newest first, cycles', (t) => {
  const f = fixture('rr');
  f.addAll({ A: 1, B: 1, C: 1 });
  t.is(f.seq(7), 'CBACBAC');
});

test('rr: skips weight 0 and overloaded servers, null when none is usable', (t) => {
  const f = fixture('rr');
  f.add('A', 1, { uThreshold: 1 });
  f.addAll({ B: 1, C: 1 });
  f.edit('B', 0);
  f.dest('A').bindConn('active'); // reaches -x 1: overloaded
  t.true(f.dest('A').overloaded);
  t.is(f.seq(3), 'CCC');
  f.dest('A').unbindConn('active');
  t.is(f.seq(3), 'ACA');
  f.edit('C', 0);
  f.edit('A', 0);
  t.is(f.pick(), null);
});

test('rr: deleting the cursor server continues with its successor (ip_vs_rr_del_dest)', (t) => {
  const f = fixture('rr');
  f.addAll({ A: 1, B: 1, C: 1 });
  t.is(f.seq(2), 'CB');
  f.del('B');
  t.is(f.seq(3), 'ACA');
  const g = fixture('rr');
  g.addAll({ A: 1, B: 1, C: 1 });
  t.is(g.seq(1), 'C');
  g.del('C'); // cursor steps back to the list head
  t.is(g.seq(2), 'BA');
});

test('rr: the cursor stays on its server when the list around it changes (it is kept as a position)', (t) => {
  const f = fixture('rr');
  f.addAll({ A: 1, B: 1, C: 1 });
  t.is(f.seq(2), 'CB');
  f.add('D', 1); // at the list head: D C B A, the cursor's B moves one down
  t.is(f.seq(4), 'ADCB');
  f.del('D'); // before the cursor: C B A
  f.del('C'); // B A, the cursor's B is now first
  t.is(f.seq(3), 'ABA');
});

// ---- wrr ----

test('wrr: 4:3:2 gives the kernel sequence (first round at cw=1 left by the adds, then the 9-pick cycle)', (t) => {
  const f = fixture('wrr');
  f.addAll({ A: 4, B: 3, C: 2 });
  t.is(f.seq(21), `CBA${'ABACBACBA'.repeat(2)}`);
  const counts: Record<string, number> = {};
  for (const c of f.seq(900)) counts[c] = (counts[c] ?? 0) + 1;
  t.deepEqual(counts, { A: 400, B: 300, C: 200 });
});

test('wrr: switching an existing service to wrr starts at cw = max weight (init_svc)', (t) => {
  const f = fixture('wlc');
  f.addAll({ A: 4, B: 3, C: 2 });
  f.table.editService({ id: f.id, sched: 'wrr', flags: 0, timeout: 0, netmask: 0xffffffff });
  t.is(f.seq(9), 'ABACBACBA');
});

test('wrr: gcd step (4:2) and reset on weight change', (t) => {
  const f = fixture('wrr');
  f.addAll({ A: 4, B: 2 });
  t.is(f.seq(7), 'BAABAAB');
  // upd_dest: cursor back to the head; di = 4, mw = 4 - 3 = 1, cw (1 after the last pass) stays 1/4*4+1 = 1
  f.edit('B', 4);
  t.is(f.seq(4), 'BABA');
});

test('wrr: overloaded and zero-weight servers are skipped; all overloaded gives null', (t) => {
  const f = fixture('wrr');
  f.add('A', 4, { uThreshold: 1 });
  f.addAll({ B: 3, C: 2 });
  f.dest('A').bindConn('active');
  const s = f.seq(10);
  t.false(s.includes('A'));
  t.regex(s, /^[BC]+$/);
  f.edit('B', 0);
  f.edit('C', 0);
  t.is(f.pick(), null);
  t.is(f.pick(), null);
  f.dest('A').unbindConn('active');
  t.is(f.seq(2), 'AA');
});

// ---- lc ----

test('lc: least (active << 8) + inactive, first in list on a tie, weight ignored except 0', (t) => {
  const f = fixture('lc');
  f.addAll({ A: 1, B: 100, C: 1 }); // list: C B A
  f.load('A', 1, 0); // 256
  f.load('B', 0, 200); // 200
  f.load('C', 0, 256); // 256
  t.is(letter(f.pick()), 'B');
  f.load('B', 1, 1); // 257
  t.is(letter(f.pick()), 'C'); // C and A tie at 256: C is first
  f.edit('C', 0);
  t.is(letter(f.pick()), 'A');
});

// ---- wlc ----

test('wlc: least overhead / weight by cross-multiplication, first wins ties, scan starts at first usable', (t) => {
  const f = fixture('wlc');
  f.addAll({ A: 1, B: 3, C: 2 }); // list: C B A
  f.load('C', 1); // 256/2 = 128
  f.load('B', 2); // 512/3 = 170.7
  f.load('A', 0, 100); // 100/1
  t.is(letter(f.pick()), 'A');
  f.load('A', 0, 128); // 128/1 ties C's 128: C is first
  t.is(letter(f.pick()), 'C');
  f.dest('C').overloaded = true;
  t.is(letter(f.pick()), 'A'); // B 170.7 vs A 128
  f.dest('C').overloaded = false;
  f.edit('C', 0);
  f.load('C', 0); // idle but weight 0: quiesced
  t.is(letter(f.pick()), 'A');
});

// ---- sed / nq ----

test('sed: (active + 1) / weight, inactive connections ignored', (t) => {
  const f = fixture('sed');
  f.addAll({ A: 1, B: 2, C: 1 }); // list: C B A
  f.load('C', 0, 1000); // 1/1
  f.load('B', 1); // 2/2 (tie with C: C first)
  f.load('A', 3); // 4/1
  t.is(letter(f.pick()), 'C');
  f.edit('B', 3); // 2/3
  t.is(letter(f.pick()), 'B');
  // wlc would choose differently on the same counters: C's inactive connections count there
  const w = fixture('wlc');
  w.addAll({ A: 1, B: 2, C: 1 });
  w.load('C', 0, 1000);
  w.load('B', 1);
  w.load('A', 3);
  t.is(letter(w.pick()), 'B');
});

test('nq: the first idle server at once, else shortest expected delay', (t) => {
  const f = fixture('nq');
  f.addAll({ A: 1, B: 1, C: 10 }); // list: C B A
  f.load('C', 1); // sed: 2/10
  f.load('B', 0); // idle
  f.load('A', 0); // idle, later
  t.is(letter(f.pick()), 'B');
  const s = fixture('sed');
  s.addAll({ A: 1, B: 1, C: 10 });
  s.load('C', 1);
  t.is(letter(s.pick()), 'C');
  f.load('B', 1); // 2/1
  f.load('A', 4); // 5/1
  t.is(letter(f.pick()), 'C');
  f.load('C', 19); // 20/10 = 2/1: ties B, C is first
  t.is(letter(f.pick()), 'C');
  f.load('C', 20); // 21/10 > 2
  t.is(letter(f.pick()), 'B');
  f.edit('B', 0);
  f.load('B', 0); // idle but quiesced
  t.is(letter(f.pick()), 'C');
});

// ---- fo / ovf ----

test('fo: highest weight usable server, first in list on a tie', (t) => {
  const f = fixture('fo');
  f.addAll({ A: 5, B: 3, C: 5 }); // list: C B A
  t.is(letter(f.pick()), 'C');
  f.dest('C').overloaded = true;
  t.is(letter(f.pick()), 'A');
  f.edit('A', 0);
  t.is(letter(f.pick()), 'B');
  f.edit('B', 0);
  t.is(f.pick(), null);
});

test('ovf: highest weight whose active connections do not exceed the weight', (t) => {
  const f = fixture('ovf');
  f.addAll({ A: 3, B: 5, C: 3 }); // list: C B A
  f.load('B', 6); // over its weight
  t.is(letter(f.pick()), 'C'); // C and A tie at 3: C first
  f.load('C', 3); // exactly its weight: still eligible
  t.is(letter(f.pick()), 'C');
  f.load('C', 4);
  t.is(letter(f.pick()), 'A');
  f.load('A', 4);
  t.is(f.pick(), null);
  f.load('B', 5);
  t.is(letter(f.pick()), 'B');
});

// ---- twos ----

/** a random source that returns draws giving exactly these u32 values */
function draws(...u32s: number[]): () => number {
  return () => {
    const v = u32s.shift();
    if (v === undefined) throw new Error('out of draws');
    return v / 4294967296;
  };
}

test('twos: two weighted draws, the lower overhead / weight wins, the first on a tie', (t) => {
  // list C(1) B(2) A(3): total 6, draws are taken % 7: 0..1 -> C, 2..3 -> B, 4..6 -> A
  const f = fixture('twos', { random: draws(0, 3, 1, 2, 6, 4, 0, 1) });
  f.addAll({ A: 3, B: 2, C: 1 });
  f.load('C', 1); // 256/1
  f.load('B', 1); // 256/2
  f.load('A', 3); // 768/3
  t.is(letter(f.pick()), 'B'); // C vs B: B lower
  t.is(letter(f.pick()), 'B'); // draws 1 -> C, 2 -> B
  t.is(letter(f.pick()), 'A'); // A vs A
  t.is(letter(f.pick()), 'C'); // C vs C
});

test('twos: with equal loads the first draw decides, with the kernel shares (w1+1)/(W+1) for the first server', (t) => {
  const f = fixture('twos', { random: () => 0 });
  f.addAll({ A: 3, B: 2, C: 1 });
  t.is(letter(f.pick()), 'C'); // a draw of 0 lands on the first server
  const g = fixture('twos', { random: seeded(7) });
  g.addAll({ A: 3, B: 2, C: 1 });
  const counts: Record<string, number> = { A: 0, B: 0, C: 0 };
  const n = 70000;
  for (let i = 0; i < n; i++) counts[letter(g.pick())]++;
  t.true(Math.abs(counts.C / n - 2 / 7) < 0.01, `C ${counts.C}`);
  t.true(Math.abs(counts.B / n - 2 / 7) < 0.01, `B ${counts.B}`);
  t.true(Math.abs(counts.A / n - 3 / 7) < 0.01, `A ${counts.A}`);
});

test('twos: a loaded server is only chosen when both draws land on it', (t) => {
  const f = fixture('twos');
  f.addAll({ A: 1, B: 1 });
  f.load('B', 50);
  let b = 0;
  const n = 9000;
  for (let i = 0; i < n; i++) if (letter(f.pick()) === 'B') b++;
  // list B A, draws % 3: 0..1 -> B, 2 -> A; B only wins when both draws are B
  t.true(Math.abs(b / n - (2 / 3) ** 2) < 0.03, `B ${b}`);
  f.edit('A', 0);
  t.is(letter(f.pick()), 'B');
});
