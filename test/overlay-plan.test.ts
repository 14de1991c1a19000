/** The overlay planner without a kernel: config → commands, `ip -j`/`bridge -j` output → diff. */
import test from 'ava';
import { normalizeOverlay, OverlayConfigError } from '../src/overlay/config.js';
import { commandLine, planDown, planUp } from '../src/overlay/plan.js';
import { overlayProblems } from '../src/overlay/semantics.js';
import { parseHostState } from '../src/overlay/state.js';

const spec = normalizeOverlay({
  local: '10.9.9.1',
  networks: [
    {
      vni: 100,
      remotes: ['10.9.9.2', '10.9.9.3'],
      fdb: [{ mac: '02:00:00:64:00:0B', dst: '10.9.9.2' }],
      addresses: ['172.16.100.1/24'],
      mac: '02:00:00:64:00:01',
    },
  ],
});

const ALIAS = 'tierlb:overlay vni=100';

interface LinkOpts {
  mtu?: number;
  up?: boolean;
  alias?: string;
  master?: string;
  address?: string;
  addrs?: string[];
  data?: Record<string, unknown>;
}
function link(ifname: string, kind: string, o: LinkOpts = {}) {
  return {
    ifname,
    flags: ['BROADCAST', 'MULTICAST', ...(o.up === false ? [] : ['UP', 'LOWER_UP'])],
    mtu: o.mtu ?? 1450,
    ...(o.master ? { master: o.master } : {}),
    address: o.address ?? '4a:95:49:87:f9:4c',
    linkinfo: { info_kind: kind, ...(o.data ? { info_data: o.data } : {}) },
    ...(o.alias ? { ifalias: o.alias } : {}),
    addr_info: [
      { family: 'inet6', local: 'fe80::1', prefixlen: 64, scope: 'link' },
      ...(o.addrs ?? []).map((a) => ({
        family: 'inet',
        local: a.split('/')[0],
        prefixlen: Number(a.split('/')[1]),
        scope: 'global',
      })),
    ],
  };
}
const vxData = { id: 100, local: '10.9.9.1', port: 4789, learning: false, ttl: 0 };
const fdb = (mac: string, dst: string, ifname = 'vx100') => ({ mac, ifname, dst, flags: ['self'], state: 'permanent' });

function converged(over: { br?: LinkOpts; vx?: LinkOpts; fdb?: object[] } = {}) {
  const ip = [
    { ifname: 'lo', flags: ['LOOPBACK', 'UP'], mtu: 65536, address: '00:00:00:00:00:00', addr_info: [] },
    link('br100', 'bridge', { alias: ALIAS, address: '02:00:00:64:00:01', addrs: ['172.16.100.1/24'], ...over.br }),
    link('vx100', 'vxlan', { alias: ALIAS, master: 'br100', data: vxData, ...over.vx }),
  ];
  const fdbs = over.fdb ?? [
    { mac: '4a:95:49:87:f9:4c', ifname: 'vx100', master: 'br100', flags: [], state: 'permanent' },
    fdb('02:00:00:64:00:0b', '10.9.9.2'),
    fdb('00:00:00:00:00:00', '10.9.9.2'),
    fdb('00:00:00:00:00:00', '10.9.9.3'),
  ];
  return parseHostState(JSON.stringify(ip), JSON.stringify(fdbs));
}

const lines = (cmds: { argv: string[]; why: string }[], ns?: string) => cmds.map((c) => commandLine({ ...c }, ns));

test('defaults: br/vx names, dstport 4789, MTU 1450, lower-case MACs', (t) => {
  const n = spec.networks[0];
  t.like(n, { bridge: 'br100', vxlan: 'vx100', dstport: 4789, mtu: 1450, mac: '02:00:00:64:00:01' });
  t.deepEqual(n.fdb, [{ mac: '02:00:00:64:00:0b', dst: '10.9.9.2' }]);
});

test('config problems are all reported at once', (t) => {
  const e = t.throws(
    () =>
      normalizeOverlay({
        networks: [
          { vni: 5, remotes: ['10.0.0.1'], fdb: [{ mac: '00:00:00:00:00:00', dst: '10.0.0.2' }] },
          { vni: 5, bridge: 'br5' },
        ],
      }),
    { instanceOf: OverlayConfigError },
  );
  t.true(e.problems.length >= 3, e.message);
  t.regex(e.message, /overlay.networks.0: no local underlay address/);
  t.regex(e.message, /overlay.networks.1.vni: VNI 5 is also network 0's/);
  t.regex(e.message, /'br5' is already used/);
  t.regex(e.message, /is for flooding/);
  t.throws(() => normalizeOverlay({ networks: [{ vni: 0 }], bogus: 1 }), { message: /bogus[\s\S]*must be >= 1/ });
});

test('empty host: create, mark, flood + static fdb, MTU, address, up — in a namespace', (t) => {
  const plan = planUp(spec, parseHostState('[]', '[]'));
  t.deepEqual(plan.conflicts, []);
  t.deepEqual(lines(plan.commands, 'ns1'), [
    'ip -n ns1 link add br100 address 02:00:00:64:00:01 type bridge',
    "ip -n ns1 link set br100 alias 'tierlb:overlay vni=100'",
    'ip -n ns1 link add vx100 mtu 1450 type vxlan id 100 local 10.9.9.1 dstport 4789 nolearning',
    "ip -n ns1 link set vx100 alias 'tierlb:overlay vni=100'",
    'ip -n ns1 link set vx100 master br100',
    'bridge -n ns1 fdb append 00:00:00:00:00:00 dev vx100 dst 10.9.9.2 self permanent',
    'bridge -n ns1 fdb append 00:00:00:00:00:00 dev vx100 dst 10.9.9.3 self permanent',
    'bridge -n ns1 fdb add 02:00:00:64:00:0b dev vx100 dst 10.9.9.2 self permanent',
    'ip -n ns1 link set br100 mtu 1450',
    'ip -n ns1 addr add 172.16.100.1/24 dev br100',
    'ip -n ns1 link set vx100 up',
    'ip -n ns1 link set br100 up',
  ]);
  t.true(plan.checks.every((c) => c.status === 'missing'));
});

test('converged host: nothing to do, every check ok', (t) => {
  const plan = planUp(spec, converged());
  t.deepEqual(plan.commands, []);
  t.deepEqual(plan.conflicts, []);
  t.true(plan.checks.every((c) => c.status === 'ok'));
  t.is(plan.checks.length, 6);
});

test('drift is corrected in place: MTU, down, stale fdb entry, extra address', (t) => {
  const plan = planUp(
    spec,
    converged({
      br: { up: false, addrs: ['172.16.100.1/24', '192.0.2.1/24'] },
      vx: { mtu: 1500 },
      fdb: [
        fdb('00:00:00:00:00:00', '10.9.9.2'),
        fdb('00:00:00:00:00:00', '10.9.9.9'),
        fdb('02:00:00:64:00:0b', '10.9.9.3'),
      ],
    }),
  );
  t.deepEqual(lines(plan.commands), [
    'ip link set vx100 mtu 1450',
    'bridge fdb del 00:00:00:00:00:00 dev vx100 dst 10.9.9.9',
    'bridge fdb del 02:00:00:64:00:0b dev vx100 dst 10.9.9.3',
    'bridge fdb append 00:00:00:00:00:00 dev vx100 dst 10.9.9.3 self permanent',
    'bridge fdb add 02:00:00:64:00:0b dev vx100 dst 10.9.9.2 self permanent',
    'ip addr del 192.0.2.1/24 dev br100',
    'ip link set br100 up',
  ]);
});

test('a VXLAN device of ours with another VNI or local address is recreated with its fdb', (t) => {
  const plan = planUp(spec, converged({ vx: { data: { ...vxData, id: 200 } } }));
  const l = lines(plan.commands);
  t.is(l[0], 'ip link del vx100');
  t.is(l[1], 'ip link add vx100 mtu 1450 type vxlan id 100 local 10.9.9.1 dstport 4789 nolearning');
  t.is(l.filter((x) => x.startsWith('bridge fdb')).length, 3);
  t.true(l.includes('ip link set vx100 up'));
  t.true(planUp(spec, converged({ vx: { data: { ...vxData, learning: true } } })).commands.length > 0);
});

test('links of the same name not made by tierlb are a conflict and are not touched', (t) => {
  const state = converged({ vx: { alias: undefined } });
  const up = planUp(spec, state);
  t.deepEqual(up.commands, []);
  t.regex(up.conflicts[0], /vx100 exists and was not made by tierlb/);
  const down = planDown(spec, state);
  t.deepEqual(lines(down.commands), ['ip link del br100']);
  t.is(down.conflicts.length, 1);
});

test('down removes only links carrying the alias; --all also removes ours no longer configured', (t) => {
  const ip = JSON.stringify([
    link('br100', 'bridge', { alias: ALIAS }),
    link('vx100', 'vxlan', { alias: ALIAS, data: vxData }),
    link('vx7', 'vxlan', { alias: 'tierlb:overlay vni=7', data: { ...vxData, id: 7 } }),
    link('eth0', 'veth', { alias: 'uplink' }),
  ]);
  const state = parseHostState(ip, '[]');
  t.deepEqual(lines(planDown(spec, state).commands), ['ip link del vx100', 'ip link del br100']);
  t.deepEqual(lines(planDown(spec, state, { all: true }).commands), [
    'ip link del vx100',
    'ip link del br100',
    'ip link del vx7',
  ]);
  t.deepEqual(planDown(spec, parseHostState('[]', '[]')).commands, []);
  t.true(planUp(spec, state).checks.some((c) => c.object === 'link vx7' && c.status === 'extra'));
});

test('ports: missing is a conflict; existing ones are enslaved and brought up', (t) => {
  const withPort = normalizeOverlay({ local: '10.9.9.1', networks: [{ vni: 100, ports: ['pb1'] }] });
  t.regex(planUp(withPort, parseHostState('[]', '[]')).conflicts[0], /port pb1 does not exist/);
  const state = parseHostState(JSON.stringify([link('pb1', 'veth', { up: false, mtu: 1500 })]), '[]');
  const l = lines(planUp(withPort, state).commands);
  t.true(l.includes('ip link set pb1 master br100'));
  t.true(l.includes('ip link set pb1 up'));
  // the bridge MTU comes after the ports, so a 1500-byte port cannot change it
  t.true(l.indexOf('ip link set br100 mtu 1450') > l.indexOf('ip link set pb1 master br100'));
});

test('the fdb parser keeps only VXLAN entries with a destination', (t) => {
  const s = parseHostState(
    '[]',
    JSON.stringify([
      { mac: '33:33:00:00:00:01', ifname: 'd1', flags: ['self'], state: 'permanent' },
      { mac: '4a:95:49:87:f9:4c', ifname: 'vx100', flags: [], master: 'br100', state: 'permanent' },
      fdb('00:00:00:00:00:00', '10.9.9.2'),
    ]),
  );
  t.deepEqual(s.fdb, [{ mac: '00:00:00:00:00:00', dev: 'vx100', dst: '10.9.9.2' }]);
});

test('overlayProblems: link names too long or used twice, at the path of the second use', (t) => {
  t.deepEqual(
    overlayProblems({
      local: '10.0.0.1',
      networks: [
        { vni: 5, ports: ['pbe1', 'a-very-long-port-name'] },
        { vni: 6, bridge: 'vx5', ports: ['x', 'pbe1'] },
      ],
    }),
    [
      { path: ['networks', 0, 'ports', 1], message: "'a-very-long-port-name' is longer than 15 characters" },
      { path: ['networks', 1, 'bridge'], message: "'vx5' is already used as networks.0.vxlan" },
      { path: ['networks', 1, 'ports', 1], message: "'pbe1' is already used as networks.0.ports.0" },
    ],
  );
});
