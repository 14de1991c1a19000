/**
 * IPv6: two directors announce an IPv6 VIP (a /128) over IPv6 BGP sessions to a router running BIRD with kernel
 * multipath (net.ipv6.fib_multipath_hash_policy=1): the router's route has a next hop per director; a director
 * stopped with SIGTERM withdraws it.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { NetnsSet, runPrefix } from '../src/lab/netns.js';
import { type RunningDirector, signalDirector, waitFor } from './netns-bgp-topo.js';

const VIP6 = '2001:db8:99::1';
const ROUTER6 = '2001:db8:90::1';
const dir6 = (i: number) => `2001:db8:90::${11 + i}`;
const RS6 = '2001:db8:90::21';
const DIRECTOR_ENTRY = new URL('../src/cli/entry.ts', import.meta.url).pathname;

let set: NetnsSet;
let tmp: string;

test.after.always(() => {
  set?.dispose();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

test.serial('an IPv6 VIP announced as a /128 by two directors: two next hops, one after a SIGTERM', async (t) => {
  set = new NetnsSet(runPrefix('6'));
  tmp = mkdtempSync(join(tmpdir(), 'tierlb-bgp6-'));
  const lan = set.add('lan');
  set.exec(lan, 'ip', ['link', 'add', 'br0', 'type', 'bridge']);
  set.exec(lan, 'ip', ['link', 'set', 'br0', 'up']);
  let port = 0;
  const attach = (ns: string, addr: string) => {
    const p = `p${port++}`;
    set.veth({ ns, name: 'eth0' }, { ns: lan, name: p });
    set.exec(lan, 'ip', ['link', 'set', p, 'master', 'br0', 'up']);
    set.exec(ns, 'ip', ['-6', 'addr', 'add', `${addr}/64`, 'dev', 'eth0', 'nodad']);
    set.exec(ns, 'ip', ['link', 'set', 'eth0', 'up']);
  };
  const rt = set.add('rt');
  attach(rt, ROUTER6);
  set.exec(rt, 'sysctl', ['-qw', 'net.ipv6.conf.all.forwarding=1', 'net.ipv6.fib_multipath_hash_policy=1']);
  const rs = set.add('rs');
  attach(rs, RS6);
  set.exec(rs, 'ip', ['-6', 'addr', 'add', `${VIP6}/128`, 'dev', 'lo']);
  const dirs = [0, 1].map((i) => {
    const ns = set.add(`d${i + 1}`);
    attach(ns, dir6(i));
    set.exec(ns, 'ip', ['-6', 'addr', 'add', `${VIP6}/128`, 'dev', 'lo']);
    return ns;
  });
  mkdirSync(join(tmp, 'rt'));
  writeFileSync(
    join(tmp, 'rt', 'bird.conf'),
    [
      'router id 10.90.0.1;',
      'protocol device { scan time 10; }',
      'protocol kernel { ipv6 { import none; export all; }; merge paths on; }',
      ...[0, 1].map(
        (i) =>
          `protocol bgp d${i + 1} { local ${ROUTER6} as 65000; neighbor ${dir6(i)} as 65001; hold time 3; connect delay time 1; connect retry time 1; error wait time 1, 2; ipv6 { import all; export none; }; }`,
      ),
      '',
    ].join('\n'),
  );
  const bird = set.spawn(rt, 'bird', ['-f', '-c', join(tmp, 'rt', 'bird.conf'), '-s', join(tmp, 'rt', 'bird.ctl')]);
  bird.stdout?.resume();
  bird.stderr?.resume();

  const running: RunningDirector[] = [];
  for (const i of [0, 1]) {
    const d = join(tmp, `d${i + 1}`);
    mkdirSync(d);
    const yaml = [
      'director:',
      '  services:',
      `    - { vip: "${VIP6}", port: 80, scheduler: mh, real_servers: [{ address: "${RS6}" }] }`,
      'bgp:',
      `  router_id: 10.90.0.${11 + i}`,
      '  local_as: 65001',
      `  local_address: "${dir6(i)}"`,
      '  hold_time: 3',
      '  keepalive_time: 1',
      `  neighbors: [{ address: "${ROUTER6}", as: 65000 }]`,
      '  withdraw_delay_ms: 200',
      '',
    ].join('\n');
    writeFileSync(join(d, 'director.yaml'), yaml);
    const socket = join(d, 'director.sock');
    const child = set.spawn(
      dirs[i],
      process.execPath,
      ['--import', 'tsx', DIRECTOR_ENTRY, 'director', '--socket', socket, '--config', join(d, 'director.yaml')],
      { env: { ...process.env, TIERLB_LOG_LEVEL: 'info' } },
    );
    let err = '';
    child.stderr?.on('data', (b) => {
      err += b.toString();
    });
    child.stdout?.resume();
    running.push({ child, socket, stderr: () => err });
  }
  const hops = () => {
    const out = set.exec(rt, 'ip', ['-6', '-j', 'route', 'show', `${VIP6}/128`], { allowFail: true });
    const routes = JSON.parse(out || '[]') as { gateway?: string; nexthops?: { gateway: string }[] }[];
    return routes.flatMap((r) => (r.nexthops ? r.nexthops.map((h) => h.gateway) : r.gateway ? [r.gateway] : []));
  };
  try {
    const up = await waitFor('two IPv6 next hops', () => hops().length === 2, 30_000);
    t.log(`IPv6 VIP on two next hops ${up} ms after the directors' start: ${hops().join(', ')}`);
    const shown = set.exec(rt, 'birdc', ['-s', join(tmp, 'rt', 'bird.ctl'), 'show', 'route', 'for', VIP6]);
    t.regex(shown, new RegExp(`${VIP6.replace(/:/g, ':')}/128 +unicast`));
    await signalDirector(running[0], 'SIGTERM');
    await waitFor('one IPv6 next hop', () => hops().length === 1, 10_000);
    t.pass();
  } finally {
    if (t.passed === false) t.log(running.map((r) => r.stderr()).join('\n'));
    for (const r of running) await signalDirector(r, 'SIGTERM');
  }
});
