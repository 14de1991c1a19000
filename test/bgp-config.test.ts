/**
 * The bgp section: schema and semantic checks through the config loader (file:line), the section → plan defaults,
 * and the BIRD 2 config the director generates, against golden text (test/golden/bgp-*.conf, written by hand from
 * BIRD's documented syntax). When bird is installed, each golden file is also parsed by `bird -p`.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { findProgram, parseProtocols } from '../src/bgp/bird.js';
import { birdConfig } from '../src/bgp/bird-config.js';
import '../src/bgp/config-schema.js'; // registers the bgp section
import type { BgpConfig } from '../src/bgp/config-schema.js';
import { bgpPlanFromConfig } from '../src/bgp/semantics.js';
import { checkConfigString } from '../src/config/load.js';

const golden = (name: string) => readFileSync(new URL(`golden/${name}`, import.meta.url), 'utf8');

const TWO: BgpConfig = {
  local_as: 65001,
  local_address: '10.90.0.11',
  hold_time: 9,
  keepalive_time: 3,
  bfd: { interval_ms: 50, multiplier: 4 },
  communities: ['65000:100'],
  neighbors: [
    { name: 'upstream', address: '10.90.0.1', as: 65000, bfd: true },
    { address: '10.90.0.2', as: 65000 },
  ],
  vips: [
    { address: '10.99.0.2', communities: ['65000:1:2'] },
    { address: '10.99.0.1', communities: ['65000:201'] },
    { address: '2001:db8:99:0::1' },
    { address: '10.99.0.3' },
  ],
};

test('plan: defaults and canonical addresses', (t) => {
  const p = bgpPlanFromConfig(TWO);
  t.is(p.routerId, '10.90.0.11');
  t.is(p.require, 'all');
  t.is(p.withdrawDelayMs, 2000);
  t.deepEqual(p.neighbors[1], { name: 'n_10_90_0_2', address: '10.90.0.2', family: 4, as: 65000, bfd: false });
  t.deepEqual(p.vips?.[2], { address: '2001:db8:99::1', family: 6, communities: ['65000:100'] });
  t.deepEqual(p.vips?.[0].communities, ['65000:100', '65000:1:2']);
});

test('BIRD config: two neighbors, BFD on one, VIPs with communities (10.99.0.3 withdrawn)', (t) => {
  const p = bgpPlanFromConfig(TWO);
  const announced = (p.vips ?? []).filter((v) => v.address !== '10.99.0.3');
  announced.sort((a, b) => (a.address < b.address ? -1 : 1));
  t.is(birdConfig(p, announced), golden('bgp-bird-two-neighbors.conf'));
});

test('BIRD config: nothing announced, IPv6 multihop neighbor with password and port', (t) => {
  const p = bgpPlanFromConfig({
    router_id: '10.90.0.12',
    local_as: 65001,
    local_address: '2001:db8:90::12',
    neighbors: [{ address: '2001:db8:90:0:0::1', as: 65000, bfd: true, multihop: 2, password: 's3cret', port: 1179 }],
  });
  t.is(birdConfig(p, []), golden('bgp-bird-withdrawn.conf'));
});

test('golden configs parse with bird -p', (t) => {
  const bird = findProgram('bird');
  if (!bird) {
    t.log('bird not installed: parse check skipped');
    t.pass();
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'tierlb-bgp-'));
  try {
    for (const f of ['bgp-bird-two-neighbors.conf', 'bgp-bird-withdrawn.conf']) {
      const path = join(dir, f);
      writeFileSync(path, golden(f));
      t.notThrows(() => execFileSync(bird, ['-p', '-c', path], { stdio: 'pipe' }), f);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the loader reports bgp problems at file:line', (t) => {
  const yaml = [
    'bgp:', //  1
    '  local_as: 65001', //  2
    '  hold_time: 3', //  3
    '  keepalive_time: 3', //  4
    '  communities: ["70000:1"]', //  5
    '  neighbors:', //  6
    '    - { address: 10.90.0.1, as: 65000 }', //  7
    '    - { address: 10.90.0.01x, as: 65000 }', //  8
    '    - { address: 10.90.0.1, as: 65000, bdf: true }', //  9
    '  vips:', // 10
    '    - address: 10.99.0.1', // 11
    '    - address: 10.99.0.1', // 12
  ].join('\n');
  const r = checkConfigString(yaml, 'b.yaml', { sections: ['bgp'] });
  t.deepEqual(
    r.problems.map((p) => `${p.line}: ${p.message}`),
    [
      '2: no router_id: set router_id (an IPv4 address), or an IPv4 local_address',
      '4: must be less than hold_time (a third of it is usual)',
      "5: community '70000:1': both halves must be at most 65535 (use three parts for a large community)",
      "8: '10.90.0.01x' is not an IP address",
      '9: 10.90.0.1 is also neighbor 0',
      "9: unknown key 'bdf' (did you mean 'bfd'?)",
      '12: 10.99.0.1 is also vips[0]',
    ],
  );
});

test('a good bgp section loads', (t) => {
  const r = checkConfigString(
    'bgp:\n  router_id: 10.90.0.11\n  local_as: 65001\n  neighbors: [{ address: 10.90.0.1, as: 65000, bfd: true }]\n',
  );
  t.deepEqual(r.problems, []);
});

test('birdc show protocols → rows', (t) => {
  const out = [
    'BIRD 2.0.12 ready.',
    'Name       Proto      Table      State  Since         Info',
    'device1    Device     ---        up     2026-12-02 19:10:00  ',
    'tierlb_vip4 Static     master4    up     2026-12-02 19:10:00  ',
    'n_10_90_0_1 BGP        ---        up     2026-12-02 19:10:01  Established   ',
    'n_10_90_0_2 BGP        ---        start  2026-12-02 19:10:01  Active        Socket: Connection refused',
  ].join('\n');
  t.deepEqual(parseProtocols(out), [
    { name: 'device1', proto: 'Device', state: 'up', info: '' },
    { name: 'tierlb_vip4', proto: 'Static', state: 'up', info: '' },
    { name: 'n_10_90_0_1', proto: 'BGP', state: 'up', info: 'Established' },
    { name: 'n_10_90_0_2', proto: 'BGP', state: 'start', info: 'Active Socket: Connection refused' },
  ]);
});

test('without BIRD the daemon refuses to start and names the fix', async (t) => {
  const { BirdDaemon } = await import('../src/bgp/bird.js');
  const plan = bgpPlanFromConfig({ ...TWO, bird: '/nonexistent/bird' });
  const d = new BirdDaemon({ plan, dir: join(tmpdir(), 'tierlb-bgp-never') });
  const e = await t.throwsAsync(() => d.start());
  t.is((e as { code?: string }).code, 'BGP_DAEMON_MISSING');
  t.regex(e?.message ?? '', /\/nonexistent\/bird not found: .*apt-get install bird2/);
  // a withdrawal after a failed start is a no-op, and stop() is safe
  await d.announce([]);
  await d.stop();
});
