/**
 * Two tierlb VRRP runners on one bridge: a tracked script lowers the master's priority so the other preempts, notify
 * scripts see keepalived's arguments, and two masters (one router deaf to the other) are detected on the wire.
 */
import { chmodSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { sh } from '../src/lab/netns.js';
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
  t.is(a.states.at(-1), 'BACKUP');
  t.is(b.states.at(-1), 'MASTER');

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
