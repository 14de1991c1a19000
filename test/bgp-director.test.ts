/** The director's side of the announce rule: its services → the rule's input, the decisions → BIRD's VIP list. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { announceDecisions } from '../src/bgp/announce.js';
import { bgpPlanFromConfig } from '../src/bgp/semantics.js';
import { loadConfigString } from '../src/config/index.js';
import { bgpPlanFromYaml, serviceInputs, vipsToAnnounce } from '../src/director/bgp.js';
import { directorFromConfig } from '../src/director/config.js';

const YAML = `
director:
  services:
    - vip: 10.99.0.1
      port: 80
      scheduler: mh
      quorum: 2
      real_servers:
        - { address: 10.98.0.11, weight: 1, checks: [{ type: TCP_CHECK }] }
        - { address: 10.98.0.12, weight: 1, checks: [{ type: TCP_CHECK }] }
    - fwmark: 10000
      scheduler: mh
      match: [{ vip: 10.99.0.2, port: 443 }]
      family: inet
      real_servers: [{ address: 10.98.0.11 }]
    - vip: 10.99.0.3
      port: 53
      protocol: udp
      real_servers: [{ address: 10.98.0.11, weight: 0 }]
bgp:
  router_id: 10.90.0.11
  local_as: 65001
  communities: ["65000:100"]
  neighbors: [{ address: 10.90.0.1, as: 65000 }]
`;

test('services → announce input: VIPs, checker quorum where checked, weights otherwise', (t) => {
  const { config } = loadConfigString(YAML);
  const plan = directorFromConfig(config);
  const inputs = serviceInputs(plan, (key) => (key === 'tcp|10.99.0.1|80' ? false : undefined));
  t.deepEqual(inputs, [
    { name: 'TCP 10.99.0.1:80', vips: ['10.99.0.1'], weightSum: 2, quorumUp: false },
    { name: 'FWM 10000', vips: ['10.99.0.2'], weightSum: 1 },
    { name: 'UDP 10.99.0.3:53', vips: ['10.99.0.3'], weightSum: 0 },
  ]);
  // before the first probe of each checked real server, the checked service says so
  const probed = new Set(['tcp|10.99.0.1|80|10.98.0.11|80']);
  const early = serviceInputs(
    plan,
    () => true,
    (key, addr, port) => probed.has(`${key}|${addr}|${port}`),
  );
  t.true(early[0].firstChecksPending);
  t.is(early[1].firstChecksPending, undefined);
  probed.add('tcp|10.99.0.1|80|10.98.0.12|80');
  t.is(
    serviceInputs(
      plan,
      () => true,
      (key, addr, port) => probed.has(`${key}|${addr}|${port}`),
    )[0].firstChecksPending,
    undefined,
  );
  const bgp = bgpPlanFromConfig(config.bgp as never);
  const d = announceDecisions({ datapathUp: true, stopping: false, services: inputs, require: 'all' });
  t.deepEqual(
    d.map((x) => `${x.vip} ${x.announce} ${x.reason}`),
    [
      '10.99.0.1 false quorum lost: TCP 10.99.0.1:80',
      '10.99.0.2 true quorum met',
      '10.99.0.3 false quorum lost: UDP 10.99.0.3:53',
    ],
  );
  t.deepEqual(vipsToAnnounce(bgp, d), [{ address: '10.99.0.2', family: 4, communities: ['65000:100'] }]);
});

test('bgp mode: sloppy_tcp defaults on, an explicit value stays', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tierlb-bgp-'));
  try {
    const file = join(dir, 'd.yaml');
    for (const [sysctl, want] of [
      ['', true],
      ['  sysctl: { sloppy_tcp: false }\n', false],
    ] as const) {
      writeFileSync(file, YAML.replace('director:\n', `director:\n${sysctl}`));
      const plan = directorFromConfig(loadConfigString(YAML).config);
      t.false(plan.sysctl.sloppyTcp);
      const bgp = await bgpPlanFromYaml(file, plan);
      t.is(bgp?.localAs, 65001);
      t.is(plan.sysctl.sloppyTcp, want);
    }
    // no bgp section: untouched
    writeFileSync(file, YAML.slice(0, YAML.indexOf('bgp:')));
    const plan = directorFromConfig(loadConfigString(YAML).config);
    t.is(await bgpPlanFromYaml(file, plan), undefined);
    t.false(plan.sysctl.sloppyTcp);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
