/**
 * Two tierlb VRRP runners on one bridge: a tracked script lowers the master's priority so the other preempts, notify
 * scripts see keepalived's arguments, two masters (one router deaf to the other) are detected on the wire, and a
 * vrrp_sync_group moves its two instances (two interfaces) together.
 */
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { NetnsSet, sh } from '../src/lab/netns.js';
import { B, exited, hasVip, lab, startTierlb, waitFor } from './netns-vrrp-lab.js';

test.serial('track_script weight moves the master; notify scripts get INSTANCE name state priority', async (t) => {
  const l = lab(t);
  const flag = join(l.dir, 'healthy');
  writeFileSync(flag, '');
  const notifyLog = join(l.dir, 'notify.log');
  const masterLog = join(l.dir, 'master.log');
  const notify = join(l.dir, 'notify.sh');
  writeFileSync(notify, `#!/bin/sh\necho "$@" >> ${notifyLog}\n`);
  chmodSync(notify, 0o755);
  const scripts = [
    '  scripts:',
    `    - { name: chk_flag, script: "test -f ${flag}", interval: 0.2, weight: -60, fall: 1, rise: 1 }`,
  ];
  const a = startTierlb(
    l,
    { prio: 150, version: 2, advert: 1 },
    {
      scripts,
      extra: [
        '      track_script: [chk_flag]',
        `      notify: ${notify}`,
        `      notify_master: "/bin/sh -c 'echo master >> ${masterLog}'"`,
      ],
    },
  );
  t.truthy(await waitFor(() => hasVip(l.a), 8000), a.out());
  const b = startTierlb(l, { prio: 120, version: 2, advert: 1 }, { ns: l.b });
  t.truthy(await waitFor(() => b.states.includes('BACKUP'), 8000), b.out());
  await new Promise((r) => setTimeout(r, 1500));
  t.true(hasVip(l.a));
  t.false(hasVip(l.b));

  rmSync(flag); // 150 − 60 = 90 < 120: b preempts at a's next advert
  const took = await waitFor(() => hasVip(l.b) && !hasVip(l.a), 5000);
  t.truthy(took, `${a.out()}\n${b.out()}`);
  t.log(`script failure → preempted in ${Math.round(took ?? 0)} ms`);
  // the VIP can move before each router's state line reaches the test through its stdout
  t.truthy(await waitFor(() => a.states.at(-1) === 'BACKUP', 3000), `a did not step down:\n${a.out()}`);
  t.truthy(await waitFor(() => b.states.at(-1) === 'MASTER', 3000), `b did not report MASTER:\n${b.out()}`);

  writeFileSync(flag, ''); // back to 150: a preempts again
  t.truthy(await waitFor(() => hasVip(l.a) && !hasVip(l.b), 5000), `${a.out()}\n${b.out()}`);

  a.proc.kill('SIGTERM');
  t.true(await exited(a.proc, 5000));
  await waitFor(() => readFileSync(notifyLog, 'utf8').includes('STOP'), 2000);
  t.deepEqual(readFileSync(notifyLog, 'utf8').trim().split('\n'), [
    'INSTANCE VI_1 BACKUP 150',
    'INSTANCE VI_1 MASTER 150',
    'INSTANCE VI_1 BACKUP 90',
    'INSTANCE VI_1 MASTER 150',
    'INSTANCE VI_1 STOP 150',
  ]);
  t.true(existsSync(masterLog));
  t.is(readFileSync(masterLog, 'utf8'), 'master\nmaster\n');
  b.proc.kill('SIGTERM');
  t.true(await exited(b.proc, 5000));
});

test.serial('two masters on the wire: a router deaf to VRRP keeps advertising, the other reports it', async (t) => {
  const l = lab(t);
  // b cannot hear a: it stays master; a hears b's lower adverts after answering them
  sh('ip', ['netns', 'exec', l.b, 'iptables-nft', '-A', 'INPUT', '-p', '112', '-j', 'DROP']);
  const a = startTierlb(l, { prio: 150, version: 3, advert: 0.5 });
  const b = startTierlb(l, { prio: 100, version: 3, advert: 0.5 }, { ns: l.b });
  t.truthy(
    await waitFor(() => /more than one master/.test(a.out()), 8000),
    `no two-master report:\n${a.out()}\n${b.out()}`,
  );
  t.regex(a.out(), new RegExp(`${B.replace(/\./g, '\\.')}`));
  t.true(hasVip(l.a));
  t.true(hasVip(l.b));
});

test.serial(
  'vrrp_sync_group: eth1 down on the master → both instances move to the other router, and back',
  async (t) => {
    // routers a (priority 150) and b (100), each on two bridges: VI_1 on eth0, VI_2 on eth1, one sync group
    const set = new NetnsSet();
    const dir = mkdtempSync(join(tmpdir(), `${set.prefix}-`));
    t.teardown(() => {
      set.dispose();
      rmSync(dir, { recursive: true, force: true });
    });
    const br = set.add('br');
    const ns = { a: set.add('a'), b: set.add('b') };
    for (const [i, bridge] of ['br0', 'br1'].entries()) {
      sh('ip', ['-n', br, 'link', 'add', bridge, 'type', 'bridge']);
      sh('ip', ['-n', br, 'link', 'set', bridge, 'up']);
      for (const [n, host] of [
        ['a', 2],
        ['b', 3],
      ] as const) {
        set.veth({ ns: ns[n], name: `eth${i}` }, { ns: br, name: `p${n}${i}` });
        sh('ip', ['-n', br, 'link', 'set', `p${n}${i}`, 'master', bridge, 'up']);
        sh('ip', ['-n', ns[n], 'addr', 'add', `10.89.${i}.${host}/24`, 'dev', `eth${i}`]);
        sh('ip', ['-n', ns[n], 'link', 'set', `eth${i}`, 'up']);
      }
    }
    const vips = (n: 'a' | 'b') =>
      [0, 1].filter((i) =>
        sh('ip', ['-n', ns[n], '-4', '-o', 'addr', 'show', 'dev', `eth${i}`]).includes(` 10.89.${i}.100/`),
      ).length;
    const start = (n: 'a' | 'b', prio: number) => {
      const log = join(dir, `group-${n}.log`);
      const notify = join(dir, `notify-${n}.sh`);
      writeFileSync(notify, `#!/bin/sh\necho "$@" >> ${log}\n`);
      chmodSync(notify, 0o755);
      const inst = (name: string, i: number) => [
        `    - name: ${name}`,
        `      interface: eth${i}`,
        `      virtual_router_id: ${51 + i}`,
        `      priority: ${prio}`,
        '      advert_int: 0.5',
        '      version: 3',
        `      virtual_ipaddress: [10.89.${i}.100/24]`,
      ];
      const conf = join(dir, `sync-${n}.yaml`);
      writeFileSync(
        conf,
        `${['vrrp:', '  instances:', ...inst('VI_1', 0), ...inst('VI_2', 1), '  sync_groups:', `    - { name: G, group: [VI_1, VI_2], notify: ${notify} }`].join('\n')}\n`,
      );
      const proc = set.spawn(ns[n], process.execPath, ['--import', 'tsx', 'src/ha/vrrp-main.ts', '--config', conf], {
        cwd: process.cwd(),
      });
      let out = '';
      proc.stdout?.on('data', (d) => (out += d));
      proc.stderr?.on('data', (d) => (out += d));
      const notes = () => (existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : []);
      return { proc, out: () => out, notes };
    };
    const a = start('a', 150);
    t.truthy(await waitFor(() => vips('a') === 2, 8000), a.out());
    const b = start('b', 100);
    t.truthy(await waitFor(() => b.notes().includes('GROUP G BACKUP 0'), 8000), b.out());
    await new Promise((r) => setTimeout(r, 1000));
    t.is(vips('a'), 2);
    t.is(vips('b'), 0);
    t.false(a.out().includes('not supported'), 'the sync group is no longer ignored');

    // eth1 down on the master: VI_2 FAULT there, VI_1 follows to FAULT (priority 0) → b takes both
    const t0 = performance.now();
    sh('ip', ['-n', ns.a, 'link', 'set', 'eth1', 'down']);
    const took = await waitFor(() => vips('b') === 2 && vips('a') === 0, 8000);
    t.truthy(took, `${a.out()}\n${b.out()}`);
    t.log(`eth1 down on the master → both instances on the other router in ${Math.round(performance.now() - t0)} ms`);
    t.deepEqual(a.notes(), ['GROUP G BACKUP 0', 'GROUP G MASTER 0', 'GROUP G FAULT 0']);
    t.deepEqual(b.notes(), ['GROUP G BACKUP 0', 'GROUP G MASTER 0']);
    const faults = a
      .out()
      .split('\n')
      .filter((l) => l.startsWith('{"event":"state"') && l.includes('"to":"FAULT"'));
    t.is(faults.length, 2, 'both instances of a went FAULT');

    // eth1 up again: the group leaves FAULT and a (150) preempts with both instances
    sh('ip', ['-n', ns.a, 'link', 'set', 'eth1', 'up']);
    t.truthy(await waitFor(() => vips('a') === 2 && vips('b') === 0, 8000), `${a.out()}\n${b.out()}`);
    t.deepEqual(b.notes(), ['GROUP G BACKUP 0', 'GROUP G MASTER 0', 'GROUP G BACKUP 0']);
    for (const p of [a.proc, b.proc]) {
      p.kill('SIGTERM');
      t.true(await exited(p, 5000));
    }
  },
);
