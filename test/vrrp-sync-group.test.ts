import test from 'ava';
import { ManualClock } from '../src/common/clock.js';
import { checkVrrpConfig } from '../src/ha/vrrp/config.js';
import { type MachineConfig, type VrrpAction, VrrpMachine } from '../src/ha/vrrp/state.js';
import { VrrpSyncGroupMachine } from '../src/ha/vrrp/sync-group.js';
import { instanceDefaults } from '../src/ha/vrrp/types.js';

/** Two members (VI_1 on eth0, VI_2 on eth1) of group G on one clock; every action goes through the group. */
function group(o: Partial<MachineConfig> = {}) {
  const clock = new ManualClock(0);
  const mk = (name: string, ifc: string, ip: string) =>
    new VrrpMachine(
      {
        name,
        version: 2,
        priority: 100,
        advertIntMs: 1000,
        nopreempt: false,
        preemptDelayMs: 0,
        primaryIp: ip,
        trackInterfaces: [{ name: ifc, weight: 0 }],
        trackScripts: [],
        ...o,
      },
      clock,
    );
  const a = mk('VI_1', 'eth0', '10.0.0.2');
  const b = mk('VI_2', 'eth1', '10.0.1.2');
  const g = new VrrpSyncGroupMachine('G', 2);
  /** what happened, as "VI_1:send:0", "VI_2:MASTER", "G:FAULT" */
  let log: string[] = [];
  const kind = (x: VrrpAction) =>
    x.type === 'send'
      ? `send:${x.priority}`
      : x.type === 'vips'
        ? `vips:${x.add ? 'add' : 'del'}`
        : x.type === 'state'
          ? x.to
          : x.type;
  const note = (m: VrrpMachine, acts: VrrpAction[]) => {
    for (const x of acts) if (x.type !== 'log' && x.type !== 'garp') log.push(`${m.cfg.name}:${kind(x)}`);
  };
  const feed = (m: VrrpMachine, acts: VrrpAction[]): string[] => {
    log = [];
    note(m, acts);
    const r = g.react(m, acts);
    for (const c of r.changes) log.push(`G:${c.to}`);
    for (const e of r.effects) note(e.machine, e.actions);
    return log;
  };
  const start = () => {
    g.attach(a);
    g.attach(b);
    return [...feed(a, a.start()), ...feed(b, b.start())];
  };
  /** advance to the next deadline of `m` and tick it */
  const expire = (m: VrrpMachine) => {
    clock.set(m.nextDeadline() as number);
    return feed(m, m.tick());
  };
  /** both members MASTER */
  const masters = () => {
    start();
    expire(a);
    expire(b);
  };
  return { clock, a, b, g, feed, start, expire, masters };
}

test('startup: both BACKUP, the group BACKUP once', (t) => {
  const { start, g } = group();
  t.deepEqual(start(), ['VI_1:BACKUP', 'G:BACKUP', 'VI_2:BACKUP']);
  t.is(g.state, 'BACKUP');
});

test('MASTER together: the first member due waits for the others, the last takes the group along', (t) => {
  const { start, expire, a, b, g } = group();
  start();
  // VI_1's down timer expires: VI_2 does not want MASTER yet → VI_1 stays BACKUP, wanting it
  t.deepEqual(expire(a), []);
  t.is(a.state, 'BACKUP');
  t.true(a.wantMaster);
  // VI_2's timer expires: every other member wants MASTER → both become MASTER at once
  t.deepEqual(expire(b), [
    'VI_2:MASTER',
    'VI_2:send:100',
    'VI_2:vips:add',
    'G:MASTER',
    'VI_1:MASTER',
    'VI_1:send:100',
    'VI_1:vips:add',
  ]);
  t.is(g.state, 'MASTER');
});

test('an advert that keeps a held-back member BACKUP clears its wish for MASTER', (t) => {
  const { start, expire, feed, a, b } = group();
  start();
  expire(a);
  t.true(a.wantMaster);
  feed(a, a.receive({ src: '10.0.0.3', priority: 150, intervalCs: 100 }));
  t.false(a.wantMaster);
  // VI_2's timer: VI_1 no longer wants MASTER → VI_2 is held back too
  t.deepEqual(expire(b), []);
  t.is(b.state, 'BACKUP');
});

test('preempting is held back by the group too', (t) => {
  const { start, feed, a, b } = group();
  start();
  t.deepEqual(
    feed(a, a.receive({ src: '10.0.0.3', priority: 50, intervalCs: 100 })),
    [],
    'a lower master on VI_1 alone does not make it MASTER',
  );
  t.true(a.wantMaster);
  t.deepEqual(feed(b, b.receive({ src: '10.0.1.3', priority: 50, intervalCs: 100 })), [
    'VI_2:MASTER',
    'VI_2:send:100',
    'VI_2:vips:add',
    'G:MASTER',
    'VI_1:MASTER',
    'VI_1:send:100',
    'VI_1:vips:add',
  ]);
});

test('FAULT together: one member faulty → every member FAULT, masters send priority 0 and drop their VIPs', (t) => {
  const { masters, feed, a, b, g } = group();
  masters();
  t.deepEqual(feed(b, b.setInterface('eth1', false)), [
    'VI_2:send:0',
    'VI_2:vips:del',
    'VI_2:FAULT',
    'G:FAULT',
    'VI_1:send:0',
    'VI_1:vips:del',
    'VI_1:FAULT',
  ]);
  t.is(a.state, 'FAULT');
  t.is(g.state, 'FAULT');
  // VI_1 has no fault of its own, yet it stays FAULT with its group: no timer runs
  t.is(a.faultReason, undefined);
  t.is(a.nextDeadline(), undefined);
});

test('FAULT from BACKUP: the other backups go FAULT without sending', (t) => {
  const { start, feed, a, b } = group();
  start();
  t.deepEqual(feed(a, a.setInterface('eth0', false)), ['VI_1:FAULT', 'G:FAULT', 'VI_2:FAULT']);
  t.is(b.nextDeadline(), undefined);
});

test('leaving FAULT together: only when no member has a fault of its own', (t) => {
  const { clock, masters, feed, a, b, g } = group();
  masters();
  feed(a, a.setInterface('eth0', false));
  feed(b, b.setInterface('eth1', false));
  t.is(g.state, 'FAULT');
  // VI_1 is up again, VI_2 is not: both stay FAULT
  t.deepEqual(feed(a, a.setInterface('eth0', true)), []);
  t.is(a.state, 'FAULT');
  // VI_2 up: the group leaves FAULT, every member BACKUP (then the election as usual)
  t.deepEqual(feed(b, b.setInterface('eth1', true)), ['G:BACKUP', 'VI_1:BACKUP', 'VI_2:BACKUP']);
  t.is(a.state, 'BACKUP');
  t.is(b.state, 'BACKUP');
  // both run the master down timer from now
  t.is(a.nextDeadline(), clock.now() + a.masterDownIntervalMs);
  t.is(b.nextDeadline(), clock.now() + b.masterDownIntervalMs);
});

test('BACKUP together: one master sees a higher master → the other masters follow (no priority 0)', (t) => {
  const { clock, masters, feed, a, b, g } = group();
  masters();
  t.deepEqual(feed(a, a.receive({ src: '10.0.0.3', priority: 200, intervalCs: 100 })), [
    'VI_1:vips:del',
    'VI_1:BACKUP',
    'G:BACKUP',
    'VI_2:vips:del',
    'VI_2:BACKUP',
  ]);
  t.is(b.state, 'BACKUP');
  t.is(g.state, 'BACKUP');
  // VI_2 runs its master down timer as a backup does
  t.is(b.nextDeadline(), clock.now() + b.masterDownIntervalMs);
});

test('a member that joins while its group is FAULT starts in FAULT', (t) => {
  const { feed, a, b, g } = group();
  g.attach(a);
  feed(a, a.start());
  feed(a, a.setInterface('eth0', false));
  t.is(g.state, 'FAULT');
  g.attach(b);
  t.true(b.syncHeld);
  t.deepEqual(feed(b, b.start()), ['VI_2:FAULT']);
  // VI_1 up again: nobody is faulty, both leave
  t.deepEqual(feed(a, a.setInterface('eth0', true)), ['G:BACKUP', 'VI_1:BACKUP', 'VI_2:BACKUP']);
});

test('address owners in a group: the first waits for the second, then both are MASTER', (t) => {
  const { start, a, b } = group({ priority: 255 });
  t.deepEqual(start(), [
    'VI_1:BACKUP',
    'G:BACKUP',
    'VI_2:MASTER',
    'VI_2:send:255',
    'VI_2:vips:add',
    'G:MASTER',
    'VI_1:MASTER',
    'VI_1:send:255',
    'VI_1:vips:add',
  ]);
  t.is(a.state, 'MASTER');
  t.is(b.state, 'MASTER');
});

test('stopping members does not move the group; a detached member is free', (t) => {
  const { masters, feed, a, b, g } = group();
  masters();
  t.deepEqual(feed(a, a.stop()), ['VI_1:send:0', 'VI_1:vips:del', 'VI_1:INIT']);
  t.is(b.state, 'MASTER');
  t.is(g.state, 'MASTER');
  g.detach(a);
  t.is(a.syncGate, undefined);
  t.is(g.size, 1);
});

test('config: an instance in two sync groups is refused', (t) => {
  const i = (name: string, vrid: number) =>
    instanceDefaults({
      name,
      interface: 'eth0',
      virtualRouterId: vrid,
      virtualIpaddress: [{ addr: '10.0.0.100', prefixLen: 24 }],
    });
  const problems = checkVrrpConfig({
    instances: [i('A', 1), i('B', 2)],
    scripts: [],
    syncGroups: [
      { name: 'G1', group: ['A', 'B'], notify: {} },
      { name: 'G2', group: ['B'], notify: {} },
    ],
  });
  t.deepEqual(problems, ['vrrp sync group G2: instance B is already in sync group G1 (one group each)']);
});
