/**
 * Interop: Debian keepalived 2.2 and the tierlb VRRP runner elect one master for the same VRID on one bridge, in
 * both directions, and fail over when either leaves (gracefully: priority 0; or crashes). The VIP must move within
 * 3 × advert_int + skew + a margin, and the client's ARP entry must follow the gratuitous ARPs.
 */
import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { sh } from '../src/lab/netns.js';
import {
  A,
  B,
  clientNeigh,
  exited,
  hasVip,
  type Lab,
  lab,
  MARGIN_MS,
  type Opts,
  startTierlb,
  VIP,
  waitFor,
} from './netns-vrrp-lab.js';

const haveKeepalived = sh('sh', ['-c', 'command -v keepalived || true']).trim() !== '';

function startKeepalived(l: Lab, o: Opts): { proc: ChildProcess; out: () => string } {
  const conf = join(l.dir, 'keepalived.conf');
  writeFileSync(
    conf,
    `global_defs {
  router_id ka_${l.set.prefix}
  vrrp_version ${o.version}
}
vrrp_instance VI_1 {
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority ${o.prio}
  advert_int ${o.advert}
${o.version === 2 ? '  authentication {\n    auth_type PASS\n    auth_pass s3cret\n  }' : ''}
${o.unicast ? `  unicast_src_ip ${o.unicast.src}\n  unicast_peer {\n    ${o.unicast.peer}\n  }` : ''}
  virtual_ipaddress {
    ${VIP}/24
  }
}
`,
  );
  const proc = l.set.spawn(l.b, 'keepalived', [
    '-n',
    '-l',
    '-D',
    '-P',
    '-f',
    conf,
    '-p',
    join(l.dir, 'keepalived.pid'),
    '-r',
    join(l.dir, 'vrrp.pid'),
  ]);
  let out = '';
  proc.stdout?.on('data', (d) => (out += d));
  proc.stderr?.on('data', (d) => (out += d));
  return { proc, out: () => out };
}

/** skew for the priority of the router that takes over */
const skewMs = (o: Opts) =>
  o.version === 3 ? ((256 - o.prio) * o.advert * 1000) / 256 : ((256 - o.prio) * 1000) / 256;
const bound = (o: Opts) => 3 * o.advert * 1000 + skewMs(o) + MARGIN_MS;

// CI installs keepalived: without it this interop test fails rather than passing as skipped
test.before(() => {
  if (!haveKeepalived)
    throw new Error('keepalived is not installed (apt-get install keepalived); the interop tests need it');
});

test.serial(
  'v2 + PASS: tierlb higher → tierlb master, keepalived backup; tierlb stops → keepalived takes the VIP',
  async (t) => {
    const l = lab(t);
    const ka = startKeepalived(l, { prio: 100, version: 2, advert: 1 });
    const tl = startTierlb(l, { prio: 150, version: 2, advert: 1 });
    t.truthy(await waitFor(() => hasVip(l.a), 8000), `tierlb never became master:\n${tl.out()}`);
    t.truthy(await waitFor(() => ka.out().includes('Entering BACKUP STATE'), 3000));
    await waitFor(() => !hasVip(l.b), 3000);
    t.false(hasVip(l.b), 'keepalived kept the VIP');
    // stable: one master for a few adverts
    await new Promise((r) => setTimeout(r, 2500));
    t.true(hasVip(l.a));
    t.false(hasVip(l.b));
    t.is(tl.states.at(-1), 'MASTER');
    sh('ip', ['netns', 'exec', l.c, 'ping', '-c1', '-W1', VIP]);
    t.is(clientNeigh(l), l.mac.a);

    tl.proc.kill('SIGTERM');
    const took = await waitFor(() => hasVip(l.b), 10000);
    t.truthy(took, `keepalived did not take over:\n${ka.out()}`);
    const limit = bound({ prio: 100, version: 2, advert: 1 });
    t.log(`failover tierlb → keepalived (priority 0 on stop): ${Math.round(took ?? 0)} ms (limit ${limit} ms)`);
    t.true((took ?? Infinity) <= limit);
    t.true(await exited(tl.proc, 3000), 'tierlb did not exit on SIGTERM');
    t.false(hasVip(l.a), 'tierlb left its VIP behind');
    t.truthy(await waitFor(() => clientNeigh(l) === l.mac.b, 3000), 'client ARP did not follow to keepalived');
    t.true(tl.states.includes('INIT'));
  },
);

test.serial(
  'v2 + PASS: keepalived higher → keepalived master, tierlb backup; keepalived stops → tierlb takes the VIP',
  async (t) => {
    const l = lab(t);
    const ka = startKeepalived(l, { prio: 150, version: 2, advert: 1 });
    t.truthy(await waitFor(() => hasVip(l.b), 8000), `keepalived never became master:\n${ka.out()}`);
    const tl = startTierlb(l, { prio: 100, version: 2, advert: 1 });
    t.truthy(await waitFor(() => tl.states.includes('BACKUP'), 8000), tl.out());
    await new Promise((r) => setTimeout(r, 4500)); // longer than master_down_interval: the backup must stay backup
    t.deepEqual(tl.states, ['BACKUP']);
    t.false(hasVip(l.a));
    t.true(hasVip(l.b));
    sh('ip', ['netns', 'exec', l.c, 'ping', '-c1', '-W1', VIP]);
    t.is(clientNeigh(l), l.mac.b);

    ka.proc.kill('SIGTERM');
    const took = await waitFor(() => hasVip(l.a), 10000);
    t.truthy(took, `tierlb did not take over:\n${tl.out()}`);
    const limit = bound({ prio: 100, version: 2, advert: 1 });
    t.log(`failover keepalived → tierlb (priority 0 on stop): ${Math.round(took ?? 0)} ms (limit ${limit} ms)`);
    t.true((took ?? Infinity) <= limit);
    t.truthy(await waitFor(() => tl.states.at(-1) === 'MASTER', 3000), `tierlb did not report MASTER:\n${tl.out()}`);
    t.truthy(await waitFor(() => clientNeigh(l) === l.mac.a, 3000), 'client ARP did not follow the gratuitous ARP');
    t.true(await exited(ka.proc, 5000));
    t.false(hasVip(l.b));
    // a second start of keepalived with the higher priority preempts tierlb again
    const ka2 = startKeepalived(l, { prio: 150, version: 2, advert: 1 });
    t.truthy(await waitFor(() => hasVip(l.b) && !hasVip(l.a), 8000), `${ka2.out()}\n${tl.out()}`);
    // the VIP can move before tierlb's state line reaches the test through its stdout
    t.truthy(await waitFor(() => tl.states.at(-1) === 'BACKUP', 3000), `tierlb did not step down:\n${tl.out()}`);
  },
);

test.serial(
  'v3 unicast, advert_int 0.5: tierlb master crashes (no priority 0) → keepalived within master_down_interval',
  async (t) => {
    const l = lab(t);
    const kaOpts: Opts = { prio: 100, version: 3, advert: 0.5, unicast: { src: B, peer: A } };
    const ka = startKeepalived(l, kaOpts);
    const tl = startTierlb(l, { prio: 200, version: 3, advert: 0.5, unicast: { src: A, peer: B } });
    t.truthy(await waitFor(() => hasVip(l.a) && !hasVip(l.b), 8000), `${tl.out()}\n${ka.out()}`);
    await new Promise((r) => setTimeout(r, 2000));
    t.true(hasVip(l.a));
    t.false(hasVip(l.b), `keepalived is master too:\n${ka.out()}`);
    t.is(tl.states.at(-1), 'MASTER');

    tl.proc.kill('SIGKILL');
    const took = await waitFor(() => hasVip(l.b), 10000);
    t.truthy(took, `keepalived did not take over:\n${ka.out()}`);
    const limit = bound(kaOpts);
    t.log(`failover after a tierlb crash (v3, 0.5 s adverts): ${Math.round(took ?? 0)} ms (limit ${limit} ms)`);
    t.true((took ?? Infinity) <= limit);
    t.true((took ?? 0) >= 3 * 500 - 300, 'took over before master_down_interval');
  },
);
