import test from 'ava';
import { ManualClock } from '../src/common/clock.js';
import { ScriptStatus } from '../src/ha/vrrp/script-status.js';
import { type MachineConfig, type VrrpAction, VrrpMachine } from '../src/ha/vrrp/state.js';
import type { VrrpStateName } from '../src/ha/vrrp/types.js';

function machine(o: Partial<MachineConfig> = {}, t0 = 0) {
  const clock = new ManualClock(t0);
  const m = new VrrpMachine(
    {
      name: 'VI_1',
      version: 2,
      priority: 100,
      advertIntMs: 1000,
      nopreempt: false,
      preemptDelayMs: 0,
      primaryIp: '10.0.0.2',
      trackInterfaces: [{ name: 'eth0', weight: 0 }],
      trackScripts: [],
      ...o,
    },
    clock,
  );
  /** advance the clock, firing every deadline on the way; returns all actions */
  const run = (ms: number): VrrpAction[] => {
    const end = clock.now() + ms;
    const out: VrrpAction[] = [];
    for (let d = m.nextDeadline(); d !== undefined && d <= end; d = m.nextDeadline()) {
      clock.set(Math.max(clock.now(), d));
      out.push(...m.tick());
    }
    clock.set(end);
    return out;
  };
  return { m, clock, run };
}

const kinds = (a: VrrpAction[]) =>
  a
    .filter((x) => x.type !== 'log')
    .map((x) =>
      x.type === 'send'
        ? `send:${x.priority}`
        : x.type === 'vips'
          ? `vips:${x.add ? 'add' : 'del'}`
          : x.type === 'state'
            ? `${x.to}`
            : x.type,
    );

test('timers: master_down_interval and skew per version', (t) => {
  const rows: [Partial<MachineConfig>, number, number][] = [
    // v2: skew = (256-prio)/256 s
    [{ version: 2, priority: 100, advertIntMs: 1000 }, 609, 3609],
    [{ version: 2, priority: 254, advertIntMs: 3000 }, 7, 9007],
    [{ version: 2, priority: 1, advertIntMs: 1000 }, 996, 3996],
    // v3: skew = (256-prio) * Master_Adver_Interval / 256
    [{ version: 3, priority: 100, advertIntMs: 1000 }, 609, 3609],
    [{ version: 3, priority: 100, advertIntMs: 100 }, 60, 360],
    [{ version: 3, priority: 200, advertIntMs: 2000 }, 437, 6437],
  ];
  for (const [cfg, skew, mdi] of rows) {
    const { m } = machine(cfg);
    t.is(m.skewMs, skew, JSON.stringify(cfg));
    t.is(m.masterDownIntervalMs, mdi, JSON.stringify(cfg));
  }
});

test('startup: owner is master at once, others wait for master_down_interval', (t) => {
  const owner = machine({ priority: 255 });
  t.deepEqual(kinds(owner.m.start()), ['MASTER', 'send:255', 'vips:add', 'garp']);
  t.is(owner.m.nextDeadline(), 1000);

  const b = machine({ priority: 100 });
  t.deepEqual(kinds(b.m.start()), ['BACKUP']);
  t.deepEqual(kinds(b.run(3608)), []);
  t.deepEqual(kinds(b.run(1)), ['MASTER', 'send:100', 'vips:add', 'garp']);
  // then one advert per interval
  t.deepEqual(kinds(b.run(3000)), ['send:100', 'send:100', 'send:100']);

  // a MASTER hint takes over after one interval + skew
  const h = machine({ priority: 100, stateHint: 'MASTER' });
  h.m.start();
  t.deepEqual(kinds(h.run(1608)), []);
  t.deepEqual(kinds(h.run(1)), ['MASTER', 'send:100', 'vips:add', 'garp']);
});

test('backup: adverts from a higher master keep it backup; priority 0 → master after skew time', (t) => {
  const { m, run } = machine({ priority: 100 });
  m.start();
  for (let i = 0; i < 10; i++) {
    t.deepEqual(kinds(m.receive({ src: '10.0.0.3', priority: 150, intervalCs: 100 })), []);
    t.deepEqual(kinds(run(1000)), []);
  }
  t.is(m.state, 'BACKUP');
  m.receive({ src: '10.0.0.3', priority: 0, intervalCs: 100 });
  t.deepEqual(kinds(run(608)), []);
  t.deepEqual(kinds(run(1)), ['MASTER', 'send:100', 'vips:add', 'garp']);
});

test('election table: what a received advert does', (t) => {
  type Row = [
    string,
    Partial<MachineConfig>,
    'BACKUP' | 'MASTER',
    { src: string; priority: number },
    string[],
    VrrpStateName,
  ];
  const rows: Row[] = [
    ['backup, higher advert', {}, 'BACKUP', { src: '10.0.0.3', priority: 150 }, [], 'BACKUP'],
    ['backup, equal advert', {}, 'BACKUP', { src: '10.0.0.1', priority: 100 }, [], 'BACKUP'],
    [
      'backup, lower advert, preempt',
      {},
      'BACKUP',
      { src: '10.0.0.3', priority: 50 },
      ['MASTER', 'send:100', 'vips:add', 'garp'],
      'MASTER',
    ],
    ['backup, lower advert, nopreempt', { nopreempt: true }, 'BACKUP', { src: '10.0.0.3', priority: 50 }, [], 'BACKUP'],
    [
      'backup, lower advert, inside preempt_delay',
      { preemptDelayMs: 30000 },
      'BACKUP',
      { src: '10.0.0.3', priority: 50 },
      [],
      'BACKUP',
    ],
    [
      'master, higher advert → steps down',
      {},
      'MASTER',
      { src: '10.0.0.3', priority: 150 },
      ['vips:del', 'BACKUP'],
      'BACKUP',
    ],
    [
      'master, equal priority, higher primary IP → steps down',
      {},
      'MASTER',
      { src: '10.0.0.9', priority: 100 },
      ['vips:del', 'BACKUP'],
      'BACKUP',
    ],
    [
      'master, equal priority, lower primary IP → stays and asserts',
      {},
      'MASTER',
      { src: '10.0.0.1', priority: 100 },
      ['send:100'],
      'MASTER',
    ],
    ['master, lower advert → asserts', {}, 'MASTER', { src: '10.0.0.3', priority: 50 }, ['send:100'], 'MASTER'],
    ['master, priority 0 → advert at once', {}, 'MASTER', { src: '10.0.0.3', priority: 0 }, ['send:100'], 'MASTER'],
  ];
  for (const [name, cfg, from, adv, actions, after] of rows) {
    const { m, run } = machine({ ...cfg, stateHint: from === 'MASTER' ? 'MASTER' : undefined });
    m.start();
    if (from === 'MASTER') run(2000);
    t.is(m.state, from, name);
    t.deepEqual(kinds(m.receive({ ...adv, intervalCs: 100 })), actions, name);
    t.is(m.state, after, name);
  }
});

test('preempt_delay: a lower master is accepted until the delay is over', (t) => {
  const { m, run } = machine({ priority: 150, preemptDelayMs: 5000 });
  m.start();
  for (let i = 0; i < 4; i++) {
    t.deepEqual(kinds(m.receive({ src: '10.0.0.3', priority: 100, intervalCs: 100 })), []);
    run(1000);
  }
  t.is(m.state, 'BACKUP');
  run(1000);
  t.deepEqual(kinds(m.receive({ src: '10.0.0.3', priority: 100, intervalCs: 100 })), [
    'MASTER',
    'send:150',
    'vips:add',
    'garp',
  ]);
});

test('v3: a backup adopts the master advert interval', (t) => {
  const { m, run } = machine({ version: 3, priority: 100, advertIntMs: 1000 });
  m.start();
  m.receive({ src: '10.0.0.3', priority: 200, intervalCs: 50 });
  t.is(m.masterAdverIntMs, 500);
  t.is(m.masterDownIntervalMs, 1500 + 304);
  t.deepEqual(kinds(run(1803)), []);
  t.deepEqual(kinds(run(1)), ['MASTER', 'send:100', 'vips:add', 'garp']);
});

test('stop: a master sends priority 0 and releases; a backup just stops', (t) => {
  const a = machine({ priority: 255 });
  a.m.start();
  t.deepEqual(kinds(a.m.stop()), ['send:0', 'vips:del', 'INIT']);
  t.is(a.m.counters.priorityZeroSent, 1);
  t.deepEqual(a.m.stop(), []);
  const b = machine();
  b.m.start();
  t.deepEqual(kinds(b.m.stop()), ['INIT']);
  t.is(b.m.nextDeadline(), undefined);
  t.deepEqual(b.m.receive({ src: '10.0.0.3', priority: 10, intervalCs: 100 }), []);
});

test('tracking: weights change the effective priority; weight 0 down → FAULT and back', (t) => {
  const { m, run } = machine({
    priority: 100,
    trackInterfaces: [
      { name: 'eth0', weight: 0 },
      { name: 'eth1', weight: -30 },
      { name: 'eth2', weight: 10 },
    ],
    trackScripts: [
      { name: 'chk_up', weight: 5 },
      { name: 'chk_down', weight: -20 },
      { name: 'chk_fatal', weight: 0 },
    ],
  });
  t.is(m.effectivePriority, 115);
  m.start();
  run(4000);
  t.is(m.state, 'MASTER');
  t.deepEqual(kinds(m.setInterface('eth1', false)), ['send:85']);
  t.deepEqual(kinds(m.setInterface('eth2', false)), ['send:75']);
  t.deepEqual(kinds(m.setScript('chk_up', false)), ['send:70']);
  t.deepEqual(kinds(m.setScript('chk_down', false)), ['send:50']);
  t.deepEqual(m.setScript('unknown', false), []);
  // a fatal script: master → FAULT with priority 0, addresses released
  t.deepEqual(kinds(m.setScript('chk_fatal', false)), ['send:0', 'vips:del', 'FAULT']);
  t.deepEqual(m.receive({ src: '10.0.0.3', priority: 10, intervalCs: 100 }), []);
  t.deepEqual(kinds(run(10000)), []);
  t.deepEqual(kinds(m.setScript('chk_fatal', true)), ['BACKUP']);
  t.deepEqual(kinds(m.setInterface('eth0', false)), ['FAULT']);
  t.is(m.faultReason, 'interface eth0 down');
  t.deepEqual(kinds(m.setInterface('eth0', true)), ['BACKUP']);
  // priority is clamped to 1..254 and an owner ignores weights
  const low = machine({ priority: 10, trackInterfaces: [{ name: 'x', weight: -50 }] });
  low.m.setInterface('x', false);
  t.is(low.m.effectivePriority, 1);
  const high = machine({ priority: 250, trackInterfaces: [{ name: 'x', weight: 50 }] });
  t.is(high.m.effectivePriority, 254);
  const owner = machine({ priority: 255, trackInterfaces: [{ name: 'x', weight: -50 }] });
  owner.m.setInterface('x', false);
  t.is(owner.m.effectivePriority, 255);
});

test('starting with a tracked interface down → FAULT; the owner leaving FAULT is master at once', (t) => {
  const { m } = machine({ priority: 255 });
  m.setInterface('eth0', false);
  t.deepEqual(kinds(m.start()), ['FAULT']);
  t.deepEqual(kinds(m.setInterface('eth0', true)), ['MASTER', 'send:255', 'vips:add', 'garp']);
});

test('two masters on the wire are detected once per conflict', (t) => {
  // a backup hearing two routers alternate
  const b = machine({ priority: 50 });
  b.m.start();
  const seen: string[][] = [];
  const feed = (src: string, priority: number) => {
    for (const a of b.m.receive({ src, priority, intervalCs: 100 })) if (a.type === 'two-masters') seen.push(a.masters);
  };
  feed('10.0.0.3', 100);
  b.run(300);
  feed('10.0.0.4', 120); // a takeover looks like this: no conflict yet
  t.deepEqual(seen, []);
  for (let i = 0; i < 3; i++) {
    b.run(400);
    feed('10.0.0.3', 100);
    b.run(400);
    feed('10.0.0.4', 120);
  }
  t.deepEqual(seen, [['10.0.0.3', '10.0.0.4']]);
  t.is(b.m.counters.twoMasters, 1);

  // a master whose lower-priority rival keeps advertising after being answered
  const m = machine({ priority: 200, stateHint: 'MASTER' });
  m.m.start();
  m.run(2000);
  const acts = [
    ...m.m.receive({ src: '10.0.0.3', priority: 100, intervalCs: 100 }),
    ...m.run(500),
    ...m.m.receive({ src: '10.0.0.3', priority: 100, intervalCs: 100 }),
  ];
  t.deepEqual(
    acts.filter((a) => a.type === 'two-masters'),
    [{ type: 'two-masters', masters: ['10.0.0.2 (self)', '10.0.0.3'] }],
  );
  // a legitimate preemption by a higher router is no conflict
  const p = machine({ priority: 100, stateHint: 'MASTER' });
  p.m.start();
  p.run(2000);
  const acts2 = p.m.receive({ src: '10.0.0.3', priority: 150, intervalCs: 100 });
  t.false(acts2.some((a) => a.type === 'two-masters'));
  t.is(p.m.state, 'BACKUP');
});

test('script rise/fall', (t) => {
  const rows: [number, number, boolean[], (boolean | undefined)[]][] = [
    [1, 1, [false, true], [false, true]],
    [
      2,
      3,
      [false, false, true, false, false, false, true, true],
      [undefined, undefined, undefined, undefined, undefined, false, undefined, true],
    ],
  ];
  for (const [rise, fall, results, changes] of rows) {
    const s = new ScriptStatus(rise, fall);
    t.deepEqual(
      results.map((r) => s.result(r)),
      changes,
    );
  }
});
