import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import test from 'ava';
import { parse as parseYaml } from 'yaml';
import { ConfigError, checkConfigString, formatProblem } from '../src/config/index.js';
import { vrrpSchema } from '../src/ha/config-schema.js';
import { loadKeepalivedConf } from '../src/ha/keepalived/config.js';
import { KeepalivedSyntaxError } from '../src/ha/keepalived/parse.js';
import { checkVrrpConfig, type VrrpSection, vrrpFromSection } from '../src/ha/vrrp/config.js';
import { instanceDefaults } from '../src/ha/vrrp/types.js';
import { loadVrrpConfigFile } from '../src/ha/vrrp-main.js';

const YAML = `
vrrp:
  scripts:
    - { name: chk_haproxy, script: "killall -0 haproxy", interval: 2, weight: -20, fall: 2, rise: 2 }
  instances:
    - name: VI_1
      interface: eth0
      virtual_router_id: 51
      priority: 150
      advert_int: 1
      version: 2
      state: BACKUP
      nopreempt: true
      preempt_delay: 5
      authentication: { auth_type: PASS, auth_pass: secret }
      virtual_ipaddress: [10.0.0.100/24, { address: 10.0.0.101, dev: eth1, label: "eth1:1" }]
      unicast_src_ip: 10.0.0.2
      unicast_peer: [10.0.0.3]
      track_interface: [eth1, { name: eth2, weight: -10 }]
      track_script: [chk_haproxy]
      notify_master: /etc/tierlb/master.sh
      notify: /etc/tierlb/notify.sh
  sync_groups:
    - { name: G1, group: [VI_1] }
`;

const CONF = `vrrp_script chk_haproxy {
  script "killall -0 haproxy"
  interval 2
  weight -20
  fall 2
  rise 2
}
vrrp_instance VI_1 {
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority 150
  advert_int 1
  nopreempt
  preempt_delay 5
  authentication {
    auth_type PASS
    auth_pass secret
  }
  virtual_ipaddress {
    10.0.0.100/24
    10.0.0.101 dev eth1 label eth1:1
  }
  unicast_src_ip 10.0.0.2
  unicast_peer {
    10.0.0.3
  }
  track_interface {
    eth1
    eth2 weight -10
  }
  track_script {
    chk_haproxy
  }
  notify_master /etc/tierlb/master.sh
  notify /etc/tierlb/notify.sh
}
vrrp_sync_group G1 {
  group {
    VI_1
  }
}
`;

test('the vrrp YAML section and the same keepalived.conf give the same in-memory config', (t) => {
  const doc = parseYaml(YAML) as { vrrp: VrrpSection };
  const ajv = new Ajv({ allErrors: true });
  const valid = ajv.validate(vrrpSchema, doc.vrrp);
  t.true(valid, ajv.errorsText());
  const fromYaml = vrrpFromSection(doc.vrrp);
  t.deepEqual(checkVrrpConfig(fromYaml), []);
  const dir = mkdtempSync(join(tmpdir(), 'tlvc-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'keepalived.conf'), CONF);
  writeFileSync(join(dir, 'tierlb.yaml'), YAML);
  const r = loadKeepalivedConf(join(dir, 'keepalived.conf'));
  t.deepEqual(r.errors, []);
  t.deepEqual(r.warnings, []);
  t.deepEqual(r.config.vrrp, fromYaml);
  t.deepEqual(loadVrrpConfigFile(join(dir, 'tierlb.yaml')), fromYaml);
  t.deepEqual(loadVrrpConfigFile(join(dir, 'keepalived.conf')), fromYaml);
});

test('schema rejects bad sections', (t) => {
  const ajv = new Ajv({ allErrors: true });
  const check = ajv.compile(vrrpSchema);
  const base = { name: 'V', interface: 'eth0', virtual_router_id: 1, virtual_ipaddress: ['10.0.0.1'] };
  t.true(check({ instances: [base] }));
  for (const bad of [
    { ...base, virtual_router_id: 0 },
    { ...base, priority: 256 },
    { ...base, version: 4 },
    { ...base, state: 'LEADER' },
    { ...base, authentication: { auth_type: 'AH', auth_pass: 'x' } },
    { ...base, authentication: { auth_type: 'PASS', auth_pass: 'toolongpass' } },
    { ...base, virtual_ipaddress: [] },
    { ...base, interface: 'averyverylonginterfacename' },
    { ...base, unknown_key: 1 },
  ])
    t.false(check({ instances: [bad] }), JSON.stringify(bad));
  t.false(check([base]));
});

test('checks the schema cannot express', (t) => {
  const i = (o: Parameters<typeof instanceDefaults>[0]) =>
    instanceDefaults({ virtualIpaddress: [{ addr: '10.0.0.1', prefixLen: 32 }], ...o });
  const problems = checkVrrpConfig({
    instances: [
      i({ name: 'A', interface: 'eth0', virtualRouterId: 1, advertInt: 1.5 }),
      i({ name: 'B', interface: 'eth0', virtualRouterId: 1, version: 3, advertInt: 0.005, authPass: 'x' }),
      i({ name: 'A', interface: 'eth1', virtualRouterId: 2, trackScript: [{ name: 'nope' }], virtualIpaddress: [] }),
      i({
        name: 'C',
        interface: 'eth1',
        virtualRouterId: 3,
        virtualIpaddress: [
          { addr: 'fe80::1', prefixLen: 64 },
          { addr: '10.0.0.9', prefixLen: 32 },
          { addr: '2001:db8::1', prefixLen: 129 },
        ],
        unicastPeer: ['fe80::2'],
      }),
    ],
    scripts: [],
    syncGroups: [{ name: 'G', group: ['Z'], notify: {} }],
  });
  t.deepEqual(problems, [
    'vrrp instance A: advert_int must be a whole number of seconds 1..255 with VRRPv2',
    'vrrp instance B: virtual_router_id 1 on eth0 already used by A',
    'vrrp instance B: advert_int must be 0.01..40.95 s in steps of 0.01 with VRRPv3',
    'vrrp instance B: authentication is not part of VRRPv3',
    'vrrp instance A: duplicate instance name',
    'vrrp instance A: no virtual_ipaddress',
    'vrrp instance A: track_script nope is not defined',
    'vrrp instance C: (C): address family must match VRRP instance [10.0.0.9]',
    'vrrp instance C: virtual address 2001:db8::1/129: prefix length must be 0..128',
    'vrrp instance C: VRRPv2 is IPv4 only: an IPv6 instance needs version 3',
    'vrrp instance C: unicast_peer with IPv6 is not supported by tierlb',
    'vrrp sync group G: instance Z is not defined',
  ]);
});

test('an address with an octet over 255 is refused at file:line (schema and the in-memory check)', (t) => {
  const text = `vrrp:
  instances:
    - name: VI_1
      interface: eth0
      virtual_router_id: 51
      virtual_ipaddress: [999.1.1.1/24, 10.0.0.1/33, { address: 10.0.0.2 }]
      unicast_src_ip: 999.1.1.1
      unicast_peer: [10.0.0.3, 10.0.0.256]
`;
  const at = checkConfigString(text, 'ha.yaml').problems.map((p) => `ha.yaml:${p.line}:${p.column}: ${p.path}`);
  for (const want of [
    'ha.yaml:6:27: vrrp.instances[0].virtual_ipaddress[0]',
    'ha.yaml:6:41: vrrp.instances[0].virtual_ipaddress[1]',
    'ha.yaml:7:23: vrrp.instances[0].unicast_src_ip',
    'ha.yaml:8:32: vrrp.instances[0].unicast_peer[1]',
  ])
    t.true(at.includes(want), `${want} in\n${at.join('\n')}`);
  t.false(
    at.some((a) => a.includes('virtual_ipaddress[2]') || a.includes('unicast_peer[0]')),
    'good addresses pass',
  );
  const cfg = {
    instances: [
      instanceDefaults({
        name: 'A',
        interface: 'eth0',
        virtualRouterId: 1,
        virtualIpaddress: [
          { addr: '999.1.1.1', prefixLen: 32 },
          { addr: '10.0.0.1', prefixLen: 24 },
        ],
      }),
    ],
    scripts: [],
    syncGroups: [],
  };
  t.deepEqual(checkVrrpConfig(cfg), ['vrrp instance A: virtual address 999.1.1.1 is not an IPv4 address']);
});

test('vrrp YAML through the config loader: every problem a ConfigError with file:line', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tlvc-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // schema problems
  const bad = join(dir, 'bad.yaml');
  writeFileSync(
    bad,
    'vrrp:\n  instances:\n    - name: VI_1\n      interface: eth0\n      virtual_router_id: 51\n      priority: 300\n      virtual_ipaddress: [10.0.0.100/24]\n',
  );
  const e1 = t.throws(() => loadVrrpConfigFile(bad), { instanceOf: ConfigError });
  t.is(e1?.code, 'ECONFIG');
  t.deepEqual(e1?.problems.map(formatProblem), [`${bad}:6:17: vrrp.instances[0].priority: must be <= 255, got 300`]);
  // the checks over the whole VRRP config, each at the instance or sync group (or the key in it) it is about
  const cross = join(dir, 'cross.yaml');
  writeFileSync(
    cross,
    [
      'vrrp:',
      '  instances:',
      '    - name: VI_1',
      '      interface: eth0',
      '      virtual_router_id: 51',
      '      virtual_ipaddress: [10.0.0.100/24]',
      '    - name: VI_2',
      '      interface: eth0',
      '      virtual_router_id: 51',
      '      virtual_ipaddress: [10.0.0.101/24]',
      '      track_script: [chk_none]',
      '  sync_groups:',
      '    - { name: G1, group: [VI_1, VI_9] }',
      '',
    ].join('\n'),
  );
  const e2 = t.throws(() => loadVrrpConfigFile(cross), { instanceOf: ConfigError });
  t.deepEqual(e2?.problems.map(formatProblem), [
    `${cross}:9:26: vrrp.instances[1].virtual_router_id: vrrp instance VI_2: virtual_router_id 51 on eth0 already used by VI_1`,
    `${cross}:11:22: vrrp.instances[1].track_script[0]: vrrp instance VI_2: track_script chk_none is not defined`,
    `${cross}:13:33: vrrp.sync_groups[0].group[1]: vrrp sync group G1: instance VI_9 is not defined`,
  ]);
  // a file that is the section alone is still read (its places as written)
  const bare = join(dir, 'bare.yaml');
  writeFileSync(bare, YAML.replace('\nvrrp:\n', '\n').replace(/^ {2}/gm, ''));
  t.deepEqual(loadVrrpConfigFile(bare), vrrpFromSection((parseYaml(YAML) as { vrrp: VrrpSection }).vrrp));
  writeFileSync(bare, 'instances:\n  - { name: VI_1, interface: eth0, virtual_router_id: 0 }\n');
  t.deepEqual(t.throws(() => loadVrrpConfigFile(bare), { instanceOf: ConfigError })?.problems.map(formatProblem), [
    `${bare}:2:55: instances[0].virtual_router_id: must be >= 1, got 0`,
  ]);
  // a file without a vrrp section, and a keepalived.conf with errors: typed errors too
  const none = join(dir, 'none.yaml');
  writeFileSync(none, 'director: {}\n');
  t.deepEqual(t.throws(() => loadVrrpConfigFile(none), { instanceOf: ConfigError })?.problems.map(formatProblem), [
    `${none}: no 'vrrp' section`,
  ]);
  const conf = join(dir, 'k.conf');
  writeFileSync(conf, 'vrrp_instance VI_1 {\n  interface eth0\n}\n');
  const e3 = t.throws(() => loadVrrpConfigFile(conf), { instanceOf: KeepalivedSyntaxError });
  t.is(e3?.code, 'EKEEPALIVED_SYNTAX');
  t.is(e3?.message, `${conf}:1: vrrp_instance VI_1 has no 'virtual_router_id'`);
});
