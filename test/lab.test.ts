/** The lab's pure parts: config/lab.yaml and its checks, the plan and the configs it generates, doctor's logic. */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import test from 'ava';
import { parse as parseYaml } from 'yaml';
import { checkConfigFile, checkConfigString, loadConfigString } from '../src/config/index.js';
// the sections these tests load, registered with the loader
import '../src/ha/config-schema.js';
import '../src/listeners/config-schema.js';
import '../src/overlay/config-schema.js';
import '../src/bgp/config-schema.js';
import { renderNode } from '../src/cluster/render.js';
import { directorFromConfig } from '../src/director/config.js';
import { emptyPlan, renderChain } from '../src/fwmark/plan.js';
import { LAB_DEFAULTS, type LabSection, labFromSection } from '../src/lab/config-schema.js';
import { directorYaml, labCluster, listenersYaml, overlayYaml, vrrpYaml } from '../src/lab/derive.js';
import {
  type DoctorInput,
  doctorChecks,
  formatFindings,
  type HostFacts,
  parseSs,
  parseSysctl,
} from '../src/lab/doctor.js';
import { type FailoverResult, formatFailover } from '../src/lab/failover.js';
import { loadLabConfig } from '../src/lab/lab.js';
import { buildPlan, macFor, masterDirector } from '../src/lab/plan.js';
import { isOurProcess, patternSha256 } from '../src/lab/proc.js';
import { normalizeOverlay } from '../src/overlay/config.js';

const SHIPPED = new URL('../config/lab.yaml', import.meta.url).pathname;
const ECMP = new URL('../config/lab-ecmp.yaml', import.meta.url).pathname;

test('config/lab.yaml is valid and equals the built-in defaults', async (t) => {
  const r = await checkConfigFile(SHIPPED);
  t.deepEqual(r.problems, []);
  t.deepEqual(labFromSection(r.config?.lab as LabSection), LAB_DEFAULTS);
});

test('lab config: cross-field problems are reported at file:line', (t) => {
  const text = `lab:
  vip: 10.9.9.9
  clients:
    - { name: client1, address: 10.77.1.10 }
    - { name: client1, address: 10.77.1.10 }
  backends:
    - { name: be1, hypervisor: hv9, address: 10.0.0.1 }
  listeners:
    - { name: web, port: 80, mode: http, backend_port: 8080 }
    - { name: web2, port: 80, mode: tcp, backend_port: 7000 }
`;
  const r = checkConfigString(text, 'lab.yaml');
  const msgs = r.problems.map((p) => `${p.line}: ${p.path}: ${p.message}`);
  t.true(
    msgs.some((m) => /^2: lab\.vip: the VIP 10\.9\.9\.9 is not in the front subnet/.test(m)),
    msgs.join('\n'),
  );
  t.true(
    msgs.some((m) => /^5: lab\.clients\[1\]\.name: host name 'client1' is already used/.test(m)),
    msgs.join('\n'),
  );
  t.true(
    msgs.some((m) => /^5: lab\.clients\[1\]\.address: address 10\.77\.1\.10 is already used/.test(m)),
    msgs.join('\n'),
  );
  t.true(
    msgs.some((m) => /^7: lab\.backends\[0\]\.hypervisor: no hypervisor named 'hv9'/.test(m)),
    msgs.join('\n'),
  );
  t.true(
    msgs.some((m) => /^7: lab\.backends\[0\]\.address: 10\.0\.0\.1 is not in the overlay subnet/.test(m)),
    msgs.join('\n'),
  );
  t.true(
    msgs.some((m) => /^10: lab\.listeners\[1\]\.port: port 80 is already used/.test(m)),
    msgs.join('\n'),
  );
  const bad = checkConfigString('lab:\n  prefix: Bad-Prefix\n  lb_nodes: []\n', 'x.yaml');
  t.true(bad.problems.some((p) => p.path === 'lab.prefix'));
  t.true(bad.problems.some((p) => p.path === 'lab.lb_nodes'));
});

test('plan: namespaces, stable MACs, a mark per listener from 0x2710, the master director', (t) => {
  const plan = buildPlan({ ...LAB_DEFAULTS, prefix: 'tlt' });
  t.deepEqual(
    plan.hosts.map((h) => h.ns),
    [
      'tlt-sw',
      'tlt-client1',
      'tlt-dir1',
      'tlt-dir2',
      'tlt-lb1',
      'tlt-lb2',
      'tlt-lb3',
      'tlt-hv1',
      'tlt-hv2',
      'tlt-be1',
      'tlt-be2',
      'tlt-be3',
    ],
  );
  t.is(macFor('front', '10.77.1.21'), '02:01:0a:4d:01:15');
  t.is(macFor('overlay', '172.16.100.11'), '02:03:ac:10:64:0b');
  t.deepEqual(plan.marks, [
    { listener: 'web', port: 80, mark: 0x2710 },
    { listener: 'tcp', port: 7000, mark: 0x2711 },
  ]);
  t.is(masterDirector(plan), 'dir1');
  t.deepEqual(
    plan.processes.map((p) => p.id),
    [
      'backend-be1',
      'backend-be2',
      'backend-be3',
      'listeners-lb1',
      'listeners-lb2',
      'listeners-lb3',
      'director-dir1',
      'director-dir2',
    ],
  );
  // the lab installs no mark rule of its own: the director config carries them (match), the director renders them
  const dir = directorFromConfig(loadConfigString(directorYaml(plan), 'director.yaml').config);
  const rules = emptyPlan(0);
  rules.matches = dir.marks ?? [];
  for (const s of dir.services)
    rules.services.push({ kind: 'fwm', family: 4, addr: '0.0.0.0', port: 0, fwmark: s.spec.id.fwmark ?? 0 });
  t.deepEqual(
    renderChain(rules, 4)
      .split('\n')
      .filter((l) => l.includes('-j MARK')),
    [
      '-A TIERLB_DIVERT -d 10.77.1.100/32 -p tcp -m tcp --dport 80 -j MARK --set-xmark 0x2710/0xffffffff',
      '-A TIERLB_DIVERT -d 10.77.1.100/32 -p tcp -m tcp --dport 7000 -j MARK --set-xmark 0x2711/0xffffffff',
    ],
  );
});

test('plan: the generated director, listeners, overlay and vrrp configs load with their owners’ loaders', (t) => {
  const plan = buildPlan(LAB_DEFAULTS);
  const dir = directorFromConfig(loadConfigString(directorYaml(plan), 'director.yaml').config);
  t.deepEqual(
    dir.services.map((s) => [s.spec.id.kind, s.spec.id.fwmark, s.spec.sched, s.dests.map((d) => d.addr)]),
    [
      ['fwm', 10000, 'rr', ['10.77.1.21', '10.77.1.22', '10.77.1.23']],
      ['fwm', 10001, 'rr', ['10.77.1.21', '10.77.1.22', '10.77.1.23']],
    ],
  );
  t.true(dir.services.every((s) => s.dests.every((d) => d.fwd === dir.services[0].dests[0].fwd)));
  const l = loadConfigString(listenersYaml(plan, 'lb2'), 'l.yaml').config.listeners as {
    listen: { bind: string; servers: { address: string }[] }[];
  };
  t.deepEqual(
    l.listen.map((x) => x.bind),
    ['10.77.1.100:80', '10.77.1.100:7000'],
  );
  t.deepEqual(
    l.listen[0].servers.map((s) => s.address),
    ['172.16.100.11:8080', '172.16.100.12:8080', '172.16.100.13:8080'],
  );
  const ovLb = normalizeOverlay((parseYaml(overlayYaml(plan, 'lb2')) as { overlay: unknown }).overlay);
  t.like(ovLb.networks[0], { vni: 100, local: '10.200.0.22', dev: 'eth1', mtu: 1450, addresses: ['172.16.100.2/24'] });
  t.deepEqual(ovLb.networks[0].remotes, ['10.200.0.21', '10.200.0.23', '10.200.0.1', '10.200.0.2']);
  t.true(ovLb.networks[0].fdb.some((e) => e.mac === '02:03:ac:10:64:0d' && e.dst === '10.200.0.2'));
  const ovHv = normalizeOverlay((parseYaml(overlayYaml(plan, 'hv1')) as { overlay: unknown }).overlay);
  t.deepEqual(ovHv.networks[0].ports, ['b-be1', 'b-be2']);
  t.false(
    ovHv.networks[0].fdb.some((e) => e.mac === '02:03:ac:10:64:0b'),
    'no fdb entry for a local backend',
  );
  const v = loadConfigString(vrrpYaml(plan, 'dir2'), 'v.yaml').config.vrrp as {
    instances: { priority: number; virtual_router_id: number }[];
  };
  t.like(v.instances[0], { priority: 100, virtual_router_id: 51 });
});

test('plan: the director, listeners and overlay configs are the cluster derivation of the lab, plus lab-only keys', async (t) => {
  for (const file of [SHIPPED, ECMP]) {
    const plan = buildPlan(await loadLabConfig(file));
    const cluster = labCluster(plan.cfg);
    const marks = Object.fromEntries(plan.marks.map((m) => [m.listener, m.mark]));
    const derived = (node: string) =>
      renderNode(cluster, node, marks).config as Record<string, Record<string, unknown>>;
    for (const d of plan.cfg.directors) {
      const got = parseYaml(directorYaml(plan, d.name)) as Record<string, Record<string, unknown>>;
      const want = derived(d.name);
      // the lab's own: check every second, the VRRP instance and the connection sync in the VRRP lab
      const services = (got.director.services as Record<string, unknown>[]).map(({ delay_loop, ...s }) => {
        t.is(delay_loop, 1);
        return s;
      });
      t.deepEqual(services, want.director.services, `${file} ${d.name}: services`);
      t.deepEqual(got.bgp, want.bgp, `${file} ${d.name}: bgp`);
      if (plan.cfg.ecmp) t.deepEqual(Object.keys(got).sort(), ['bgp', 'director']);
      else {
        t.deepEqual(got.director.sync, { state: 'vrrp', syncid: 51, interface: 'eth0' });
        t.deepEqual(Object.keys(got).sort(), ['director', 'vrrp']);
      }
    }
    for (const l of plan.cfg.lbNodes) {
      const got = parseYaml(listenersYaml(plan, l.name)) as { listeners: { listen: Record<string, unknown>[] } };
      const want = derived(l.name).listeners.listen as Record<string, unknown>[];
      t.deepEqual(
        got.listeners.listen.map(({ forwardfor, check, ...x }) => x),
        want,
        `${file} ${l.name}: listen`,
      );
      const ov = (parseYaml(overlayYaml(plan, l.name)) as { overlay: Record<string, unknown> }).overlay;
      const wantOv = derived(l.name).overlay as { local: string; networks: Record<string, unknown>[] };
      t.is(ov.local, wantOv.local);
      const { fdb, mac, ...net } = (ov.networks as Record<string, unknown>[])[0];
      t.deepEqual(net, wantOv.networks[0], `${file} ${l.name}: overlay`);
    }
    for (const h of plan.cfg.hypervisors) {
      const ov = (parseYaml(overlayYaml(plan, h.name)) as { overlay: Record<string, unknown> }).overlay;
      const wantOv = derived(h.name).overlay as { local: string; networks: Record<string, unknown>[] };
      const { fdb, ports, ...net } = (ov.networks as Record<string, unknown>[])[0];
      t.deepEqual(net, wantOv.networks[0], `${file} ${h.name}: overlay`);
    }
  }
});

for (const [file, node, name] of [
  ['lab.yaml', 'dir1', 'lab-dir1.yaml'],
  ['lab.yaml', 'lb1', 'lab-lb1.yaml'],
  ['lab-ecmp.yaml', 'dir1', 'lab-ecmp-dir1.yaml'],
] as const)
  test(`config/${file} → ${node} matches golden/${name} and loads clean`, async (t) => {
    const cfg = await loadLabConfig(new URL(`../config/${file}`, import.meta.url).pathname);
    const plan = buildPlan({ ...cfg, stateDir: '/run/tierlb-lab' });
    const text = cfg.directors.some((d) => d.name === node)
      ? directorYaml(plan, node)
      : `${listenersYaml(plan, node)}${overlayYaml(plan, node).replace(/^#.*\n/, '')}`;
    t.is(text, readFileSync(new URL(`golden/${name}`, import.meta.url), 'utf8'));
    t.deepEqual(checkConfigString(text, `${node}.yaml`).problems, []);
  });

// ---- doctor ----

const VIP = '10.77.1.100';
const lbFacts = (name: string): HostFacts => ({
  name,
  role: 'lb',
  addrs: [
    { ifname: 'lo', local: '127.0.0.1', prefixlen: 8 },
    { ifname: 'lo', local: VIP, prefixlen: 32 },
    { ifname: 'eth0', local: '10.77.1.21', prefixlen: 24 },
  ],
  sysctl: { 'all.arp_ignore': 1, 'all.arp_announce': 2, 'eth0.arp_ignore': 1, 'eth0.arp_announce': 2 },
  defaultVia: null,
  rules: [],
  tables: {},
  mangle: [],
  listening: [`${VIP}:80`, `${VIP}:7000`, '127.0.0.1:9101'],
});
const dirFacts = (name: string, ip: string, vip: boolean): HostFacts => ({
  name,
  role: 'director',
  addrs: [
    { ifname: 'eth0', local: ip, prefixlen: 24 },
    ...(vip ? [{ ifname: 'eth0', local: VIP, prefixlen: 24 }] : []),
  ],
  sysctl: {},
  defaultVia: null,
  rules: [
    { priority: 500, fwmark: 0x544c0100, table: '31000' },
    { priority: 500, fwmark: 0x544c0101, table: '31001' },
    { priority: 1000, table: 'local' },
    { priority: 32766, table: 'main' },
  ],
  tables: { '31000': ['default via 10.77.1.21 dev eth0 onlink'], '31001': ['default via 10.77.1.22 dev eth0 onlink'] },
  mangle: [
    '-P PREROUTING ACCEPT',
    '-N TIERLB_DIVERT',
    '-A PREROUTING -j TIERLB_DIVERT',
    `-A TIERLB_DIVERT -d ${VIP}/32 -p tcp -m tcp --dport 80 -j MARK --set-xmark 0x2710/0xffffffff`,
    `-A TIERLB_DIVERT -d ${VIP}/32 -p tcp -m tcp --dport 7000 -j MARK --set-xmark 0x2711/0xffffffff`,
    '-A TIERLB_DIVERT -m mark --mark 0x2710 -j NFQUEUE --queue-num 0',
    '-A TIERLB_DIVERT -m mark --mark 0x2711 -j NFQUEUE --queue-num 0',
  ],
  listening: [],
});

function healthy(): DoctorInput {
  return {
    vip: VIP,
    frontIf: 'eth0',
    directors: [
      { name: 'dir1', ip: '10.77.1.2' },
      { name: 'dir2', ip: '10.77.1.3' },
    ],
    realServers: [
      { name: 'lb1', ip: '10.77.1.21', method: 'route' },
      { name: 'lb2', ip: '10.77.1.22', method: 'route' },
    ],
    marks: [
      { port: 80, mark: 0x2710 },
      { port: 7000, mark: 0x2711 },
    ],
    markChain: 'TIERLB_DIVERT',
    listenerPorts: [80, 7000],
    vrrp: { vrid: 51, expected: true },
    hosts: {
      lb1: lbFacts('lb1'),
      lb2: lbFacts('lb2'),
      dir1: dirFacts('dir1', '10.77.1.2', true),
      dir2: dirFacts('dir2', '10.77.1.3', false),
    },
    reach: [
      { from: 'client1', target: VIP, what: 'VIP', ok: true },
      { from: 'client1', target: '10.77.1.21', what: 'lb1', ok: true },
    ],
    adverts: [
      { src: '10.77.1.2', vrid: 51, priority: 150 },
      { src: '10.77.1.2', vrid: 51, priority: 150 },
    ],
  };
}

const failing = (d: DoctorInput) =>
  doctorChecks(d)
    .filter((f) => !f.ok)
    .map((f) => `${f.check}${f.host ? ` ${f.host}` : ''}`);

test('doctor: a healthy lab passes every check', (t) => {
  const fs = doctorChecks(healthy());
  t.deepEqual(failing(healthy()), []);
  t.regex(formatFindings(fs), /all \d+ checks passed/);
});

test('doctor: each broken thing is reported, and only it, with a fix', (t) => {
  const cases: [string, (d: DoctorInput) => void, string[], RegExp][] = [
    [
      'VIP off lo',
      (d) => void (d.hosts.lb2.addrs = d.hosts.lb2.addrs.filter((a) => a.local !== VIP)),
      ['vip-lo lb2'],
      /ip addr add 10\.77\.1\.100\/32 dev lo/,
    ],
    [
      'VIP on lo as /24',
      (d) => void (d.hosts.lb1.addrs[1].prefixlen = 24),
      ['vip-lo lb1'],
      /ip addr del 10\.77\.1\.100\/24 dev lo/,
    ],
    [
      'arp_ignore=0 on all and eth0',
      (d) => Object.assign(d.hosts.lb1.sysctl, { 'all.arp_ignore': 0, 'eth0.arp_ignore': 0 }),
      ['arp lb1'],
      /arp_ignore=1/,
    ],
    ['policy rule deleted', (d) => void d.hosts.dir1.rules.splice(1, 1), ['policy dir1'], /restart the director/],
    ['lookup local back at 0', (d) => void (d.hosts.dir2.rules[2].priority = 0), ['policy dir2'], /lookup local/],
    [
      'duplicate VRID',
      (d) => void d.adverts!.push({ src: '10.77.1.10', vrid: 51, priority: 100 }),
      ['vrrp'],
      /different virtual_router_id/,
    ],
    ['mark rule missing', (d) => void d.hosts.dir2.mangle.splice(4, 1), ['fwmark dir2'], /--set-mark/],
    [
      'gateway via the director',
      (d) => void (d.hosts.lb2.defaultVia = '10.77.1.2'),
      ['gateway lb2'],
      /ip route replace default/,
    ],
    [
      'listener down',
      (d) => void (d.hosts.lb1.listening = ['127.0.0.1:9101']),
      ['listeners lb1'],
      /start the listeners/,
    ],
    ['VIP unreachable', (d) => void (d.reach[0].ok = false), ['reach VIP'], /check VIP is up/],
    [
      'no director holds the VIP',
      (d) => void (d.hosts.dir1.addrs = d.hosts.dir1.addrs.slice(0, 1)),
      ['vip-holder'],
      /start VRRP/,
    ],
  ];
  for (const [what, breakIt, want, fix] of cases) {
    const d = healthy();
    breakIt(d);
    t.deepEqual(failing(d), want, what);
    t.regex(formatFindings(doctorChecks(d)), fix, what);
  }
});

test('doctor: NAT real servers need the director as gateway; --host restricts the checks', (t) => {
  const d = healthy();
  d.realServers[1].method = 'masq';
  t.deepEqual(failing(d), ['gateway lb2']);
  d.hosts.lb2.defaultVia = '10.77.1.2';
  t.deepEqual(failing(d), []);
  const e = healthy();
  e.hosts.lb2.addrs = [];
  e.only = ['lb1'];
  t.deepEqual(failing(e), []);
  t.true(doctorChecks(e).every((f) => !f.host || f.host === 'lb1'));
});

test('doctor parsers: sysctl and ss output', (t) => {
  t.deepEqual(parseSysctl('net.ipv4.conf.all.arp_ignore = 1\nnet.ipv4.conf.eth0.arp_announce = 2\n'), {
    'all.arp_ignore': 1,
    'eth0.arp_announce': 2,
  });
  t.deepEqual(parseSs('LISTEN 0      511      10.77.1.100:80       0.0.0.0:*\nLISTEN 0 4096 *:22 *:*\n'), [
    '10.77.1.100:80',
    '0.0.0.0:22',
  ]);
  t.true(readFileSync(SHIPPED, 'utf8').includes('virtual_router_id'));
});

test('isOurProcess: a recorded pid is ours only while its command line is the argv the lab started', async (t) => {
  const argv = ['sleep', '30'];
  const child = spawn(argv[0], argv.slice(1), { stdio: 'ignore' });
  const pid = child.pid as number;
  try {
    t.true(isOurProcess({ pid, ns: 'tlx-h1', argv }));
    t.false(isOurProcess({ pid, ns: 'tlx-h1', argv: ['sleep', '31'] }), 'a recycled pid running something else');
  } finally {
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
  }
  t.false(isOurProcess({ pid, ns: 'tlx-h1', argv }), 'gone');
});

test('failover report: the gap is the longer of the keep-alive gap and the download stall; a broken flow is said', (t) => {
  const r: FailoverResult = {
    master: 'dir1',
    backup: 'dir2',
    syncedBefore: 2,
    vipMovedMs: 3290,
    cutAtMs: 3300,
    bytes: 1024,
    byteExact: true,
    problems: [],
    client: {
      ka: { sent: 66, ok: 66, errors: [], sockets: 1, gapMs: 3450, gapEndMs: 6720 },
      dl: {
        bytes: 1024,
        ok: true,
        sha256: patternSha256(1024),
        stallMs: 3160,
        stallEndMs: 6500,
        error: null,
        ms: 9790,
      },
    },
  };
  const text = formatFailover(r).join('\n');
  t.regex(text, /dir2 held 2 connection\(s\) received from dir1/);
  t.regex(text, /dir2 held the VIP 3\.29 s after the cut/);
  t.regex(
    text,
    /66\/66 requests answered on 1 connection\(s\); longest gap between answers 3\.45 s \(ended 3\.42 s after/,
  );
  t.regex(text, /^failover gap: 3\.45 s \(keep-alive 3\.45 s, download 3\.16 s\); both connections survived$/m);
  t.regex(formatFailover({ ...r, problems: ['x'] }).join('\n'), /connections BROKEN$/);
});
