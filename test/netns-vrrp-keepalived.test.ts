/**
 * Interop: Debian keepalived 2.2 and the tierlb VRRP runner elect one master for the same VRID on one bridge, in
 * both directions, and fail over when either leaves (gracefully: priority 0; or crashes). The VIP must move within
 * 3 × advert_int + skew + a margin, and the client's ARP entry must follow the gratuitous ARPs.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { NetnsSet, sh } from '../src/lab/netns.js';

const VIP = '10.88.0.100';
const A = '10.88.0.2'; // tierlb
const B = '10.88.0.3'; // keepalived
const C = '10.88.0.10'; // client
const MARGIN_MS = 1500;

const haveKeepalived = sh('sh', ['-c', 'command -v keepalived || true']).trim() !== '';

interface Lab {
  set: NetnsSet;
  dir: string;
  a: string;
  b: string;
  c: string;
  mac: { a: string; b: string };
}

function lab(t: ExecutionContext): Lab {
  const set = new NetnsSet();
  const dir = mkdtempSync(join(tmpdir(), `${set.prefix}-`));
  t.teardown(() => {
    set.dispose();
    rmSync(dir, { recursive: true, force: true });
  });
  const br = set.add('br');
  sh('ip', ['-n', br, 'link', 'add', 'br0', 'type', 'bridge']);
  sh('ip', ['-n', br, 'link', 'set', 'br0', 'up']);
  const ns: Record<string, string> = {};
  for (const [n, ip] of [
    ['a', A],
    ['b', B],
    ['c', C],
  ]) {
    ns[n] = set.add(n);
    set.veth({ ns: ns[n], name: 'eth0' }, { ns: br, name: `p${n}` });
    sh('ip', ['-n', br, 'link', 'set', `p${n}`, 'master', 'br0']);
    sh('ip', ['-n', br, 'link', 'set', `p${n}`, 'up']);
    sh('ip', ['-n', ns[n], 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
    sh('ip', ['-n', ns[n], 'link', 'set', 'eth0', 'up']);
  }
  const mac = (n: string) => JSON.parse(sh('ip', ['-n', n, '-j', 'link', 'show', 'eth0']))[0].address as string;
  return { set, dir, a: ns.a, b: ns.b, c: ns.c, mac: { a: mac(ns.a), b: mac(ns.b) } };
}

function hasVip(ns: string): boolean {
  return sh('ip', ['-n', ns, '-4', '-o', 'addr', 'show', 'dev', 'eth0']).includes(` ${VIP}/`);
}

function clientNeigh(l: Lab): string | undefined {
  const j = JSON.parse(sh('ip', ['-n', l.c, '-j', 'neigh', 'show', VIP]) || '[]') as { lladdr?: string }[];
  return j[0]?.lladdr;
}

async function waitFor(cond: () => boolean, ms: number, step = 25): Promise<number | undefined> {
  const t0 = performance.now();
  while (performance.now() - t0 < ms) {
    if (cond()) return performance.now() - t0;
    await new Promise((r) => setTimeout(r, step));
  }
  return cond() ? performance.now() - t0 : undefined;
}

interface Opts {
  prio: number;
  version: 2 | 3;
  advert: number;
  unicast?: { src: string; peer: string };
}

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

function startTierlb(l: Lab, o: Opts): { proc: ChildProcess; states: string[]; out: () => string } {
  const conf = join(l.dir, 'tierlb.yaml');
  const lines = [
    'vrrp:',
    '  instances:',
    '    - name: VI_1',
    '      interface: eth0',
    '      virtual_router_id: 51',
    `      priority: ${o.prio}`,
    `      advert_int: ${o.advert}`,
    `      version: ${o.version}`,
    `      virtual_ipaddress: [${VIP}/24]`,
  ];
  if (o.version === 2) lines.push('      authentication: { auth_type: PASS, auth_pass: s3cret }');
  if (o.unicast) lines.push(`      unicast_src_ip: ${o.unicast.src}`, `      unicast_peer: [${o.unicast.peer}]`);
  writeFileSync(conf, `${lines.join('\n')}\n`);
  const proc = l.set.spawn(l.a, process.execPath, ['--import', 'tsx', 'src/ha/vrrp-main.ts', '--config', conf], {
    cwd: process.cwd(),
  });
  const states: string[] = [];
  let out = '';
  let buf = '';
  proc.stdout?.on('data', (d) => {
    buf += d;
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      out += `${line}\n`;
      try {
        const ev = JSON.parse(line);
        if (ev.event === 'state') states.push(ev.to);
      } catch {}
    }
  });
  proc.stderr?.on('data', (d) => (out += d));
  return { proc, states, out: () => out };
}

function exited(p: ChildProcess, ms: number): Promise<boolean> {
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    p.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/** skew for the priority of the router that takes over */
const skewMs = (o: Opts) =>
  o.version === 3 ? ((256 - o.prio) * o.advert * 1000) / 256 : ((256 - o.prio) * 1000) / 256;
const bound = (o: Opts) => 3 * o.advert * 1000 + skewMs(o) + MARGIN_MS;

const maybe = haveKeepalived ? test.serial : test.serial.skip;

maybe(
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

maybe(
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
    t.is(tl.states.at(-1), 'MASTER');
    t.truthy(await waitFor(() => clientNeigh(l) === l.mac.a, 3000), 'client ARP did not follow the gratuitous ARP');
    t.true(await exited(ka.proc, 5000));
    t.false(hasVip(l.b));
    // a second start of keepalived with the higher priority preempts tierlb again
    const ka2 = startKeepalived(l, { prio: 150, version: 2, advert: 1 });
    t.truthy(await waitFor(() => hasVip(l.b) && !hasVip(l.a), 8000), `${ka2.out()}\n${tl.out()}`);
    t.is(tl.states.at(-1), 'BACKUP');
  },
);

maybe(
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
