import test from 'ava';
import { ManualClock } from '../src/common/clock.js';
import { ConfigError, checkConfigString, formatProblem, loadConfigString } from '../src/config/index.js';
import {
  applyDirectorConfig,
  applyPlanDiff,
  type DirectorPlan,
  diffPlans,
  directorFromConfig,
  isEmptyDiff,
} from '../src/director/config.js';
import { SVC_F_ONEPACKET, SVC_F_SCHED2 } from '../src/l4/service.js';
import { ServiceTable } from '../src/l4/services.js';

const table = () => new ServiceTable({ clock: new ManualClock(), random: () => 0.5 });

const GOOD = `director:
  timeouts: { tcp: 600, udp: 60 }
  sysctl: { expire_nodest_conn: true, conn_reuse_mode: 2 }
  services:
    - name: web
      vip: 10.0.0.100
      port: 80
      scheduler: rr
      persistent: true
      netmask: 255.255.255.0
      real_servers:
        - { address: 10.0.0.11, port: 80, method: dr, weight: 3, u_threshold: 100, l_threshold: 50 }
        - { address: 10.0.0.12 }
        - { address: 10.0.0.13, port: 8080, method: nat }
    - fwmark: 0x2710
      family: inet6
      scheduler: rr
      ops: true
      netmask: 64
      persistent: 30
      real_servers:
        - { address: "2001:db8::0:1", method: tunnel }
        - { address: 192.0.2.7, method: ipip, weight: 0 }
    - vip: 10.0.0.100
      port: 53
      protocol: udp
      scheduler: rr
`;

test('a good director section loads to the expected specs', (t) => {
  const { config } = loadConfigString(GOOD, 'good.yaml');
  const plan = directorFromConfig(config);
  t.deepEqual(plan.timeouts, { tcp: 600, tcpfin: 120, udp: 60 });
  t.deepEqual(plan.sysctl, {
    expireNodestConn: true,
    expireQuiescentTemplate: false,
    sloppyTcp: false,
    sloppySctp: false,
    connReuseMode: 2,
  });
  t.is(plan.services.length, 3);
  const [web, fwm, dns] = plan.services;
  t.is(web.name, 'web');
  t.deepEqual(web.spec, {
    id: { kind: 'tcp', family: 4, addr: '10.0.0.100', port: 80 },
    sched: 'rr',
    flags: 0,
    timeout: 360,
    netmask: 0xffffff00,
  });
  t.deepEqual(web.dests, [
    { addr: '10.0.0.11', port: 80, fwd: 'route', weight: 3, uThreshold: 100, lThreshold: 50 },
    { addr: '10.0.0.12', port: 80, fwd: 'route', weight: 1, uThreshold: 0, lThreshold: 0 },
    { addr: '10.0.0.13', port: 8080, fwd: 'masq', weight: 1, uThreshold: 0, lThreshold: 0 },
  ]);
  t.deepEqual(fwm.spec, {
    id: { kind: 'fwm', family: 6, fwmark: 10000 },
    sched: 'rr',
    flags: SVC_F_ONEPACKET,
    timeout: 30,
    netmask: 64,
  });
  t.deepEqual(
    fwm.dests.map((d) => [d.addr, d.port, d.fwd, d.weight]),
    [
      ['2001:db8::1', 0, 'tunnel', 1],
      ['192.0.2.7', 0, 'tunnel', 0],
    ],
  );
  t.deepEqual(dns.spec.id, { kind: 'udp', family: 4, addr: '10.0.0.100', port: 53 });
  t.is(dns.spec.timeout, 0);

  const tbl = applyDirectorConfig(table(), plan);
  t.is(tbl.list().length, 3);
  // added in config order, so the kernel's list (newest first) shows the last one first
  t.deepEqual(
    tbl.list()[0].dests.map((d) => d.addr),
    ['10.0.0.13', '10.0.0.12', '10.0.0.11'],
  );
});

test('the default scheduler is wlc, sched_flags map to the flag bits', (t) => {
  const r = checkConfigString(
    `director:\n  services:\n    - { vip: 10.0.0.1, port: 80, scheduler: sh, sched_flags: [sh-port] }\n    - { vip: 10.0.0.1, port: 81 }\n`,
  );
  t.deepEqual(r.problems, []);
  const plan = directorFromConfig(r.config!);
  t.is(plan.services[0].spec.flags, SVC_F_SCHED2);
  t.is(plan.services[1].spec.sched, 'wlc');
});

const BAD = `director:
  services:
    - name: web
      vip: 10.0.0.100
      port: 80
      scheduler: rr
      real_servers:
        - { address: 10.0.0.11, weight: 70000 }
        - { address: 10.0.0.12, wieght: 2 }
        - { address: 10.0.0.13, u_threshold: 10, l_threshold: 20 }
        - { address: 10.0.0.11 }
        - { port: 80 }
    - name: nothing
      port: 443
      scheduler: rr
    - name: web-again
      vip: 10.0.0.100
      port: 80
      scheduler: rr
    - vip: 10.0.0.200
      port: eighty
      scheduler: nosuch
      method: route
`;

/** `line:col` of the first `needle` on 1-based `line` of `text` (so expectations do not count columns by hand). */
function at(text: string, line: number, needle: string, nth = 0): string {
  const l = text.split('\n')[line - 1];
  let i = -1;
  for (let k = 0; k <= nth; k++) i = l.indexOf(needle, i + 1);
  if (i < 0) throw new Error(`'${needle}' not on line ${line}`);
  return `${line}:${i + 1}`;
}

test('every problem of a bad director section is reported at its line', (t) => {
  const err = t.throws(() => loadConfigString(BAD, 'bad.yaml'), { instanceOf: ConfigError });
  t.is(err.code, 'ECONFIG');
  const lines = err.problems.map(formatProblem);
  const b = (line: number, needle: string, nth = 0) => `bad.yaml:${at(BAD, line, needle, nth)}`;
  t.deepEqual(lines.slice(0, 8), [
    `${b(8, '70000')}: director.services[0].real_servers[0].weight: must be <= 65535, got 70000`,
    `${b(9, 'wieght')}: director.services[0].real_servers[1].wieght: unknown key 'wieght' (did you mean 'weight'?)`,
    `${b(10, '20')}: director.services[0].real_servers[2].l_threshold: lower threshold 20 is above the upper threshold 10`,
    `${b(11, '{')}: director.services[0].real_servers[3]: real server 10.0.0.11:80 is listed twice (also real_servers[0])`,
    `${b(12, '{')}: director.services[0].real_servers[4]: missing required key 'address'`,
    `${b(13, 'name')}: director.services[1]: a service needs a vip (with port) or a fwmark`,
    `${b(16, 'name')}: director.services[2]: duplicate service TCP 10.0.0.100:80 (first at line 3)`,
    `${b(21, 'eighty')}: director.services[3].port: must be an integer, got string 'eighty'`,
  ]);
  t.regex(
    lines[8],
    /^bad\.yaml:22:18: director\.services\[3\]\.scheduler: unknown scheduler 'nosuch' \(available: rr\b.*\)$/,
  );
  t.is(
    lines[9],
    `${b(23, 'method')}: director.services[3].method: unknown key 'method' (known keys: name, vip, port, protocol, fwmark, family, scheduler, sched_flags, persistent, netmask, ops, match, real_servers, delay_loop, quorum, hysteresis, quorum_up, quorum_down, alpha, omega, ha_suspend, virtualhost, sorry_server)`,
  );
  t.is(lines.length, 10);
  // the error's message is the same list, one per line
  t.is(err.message, lines.join('\n'));
  t.deepEqual(err.problems[0], {
    file: 'bad.yaml',
    line: 8,
    column: 41,
    path: 'director.services[0].real_servers[0].weight',
    message: 'must be <= 65535, got 70000',
  });
});

const RULES = `director:
  services:
    - { vip: 10.0.0.1, fwmark: 3, scheduler: rr }
    - { fwmark: 4, port: 80, protocol: udp, scheduler: rr }
    - { vip: 10.0.0.1, scheduler: rr }
    - { vip: 10.0.0.300, port: 1, scheduler: rr }
    - { vip: "::1", port: 1, family: inet, scheduler: rr, netmask: 255.0.0.0 }
    - { vip: 10.0.0.2, port: 1, scheduler: rr, netmask: 255.0.255.0, ops: true }
    - { fwmark: 5, scheduler: rr, real_servers: [{ address: "2001:db8::1" }] }
    - { vip: 10.0.0.3, port: 80, scheduler: rr, real_servers: [{ address: 10.0.0.9, port: 81 }] }
    - { vip: 10.0.0.4, port: 80, scheduler: rr, sched_flags: [sh-port] }
`;

test('fwmark and vip rules', (t) => {
  const r = checkConfigString(RULES, 'f.yaml');
  const f = (line: number, needle: string, nth = 0) => `f.yaml:${at(RULES, line, needle, nth)}`;
  t.deepEqual(r.problems.map(formatProblem), [
    `${f(3, '3,')}: director.services[0].fwmark: a service has either a vip or a fwmark, not both`,
    `${f(4, '80')}: director.services[1].port: a fwmark service has no port: the mark rules select the ports`,
    `${f(4, 'udp')}: director.services[1].protocol: a fwmark service matches every protocol: remove protocol`,
    `${f(5, '{')}: director.services[2]: missing required key 'port' (port 0, "all ports", needs persistent)`,
    `${f(6, '10.0.0.300')}: director.services[3].vip: '10.0.0.300' is not an IP address`,
    `${f(7, 'inet')}: director.services[4].family: family inet does not match the vip ::1`,
    `${f(7, '255.0.0.0')}: director.services[4].netmask: an IPv6 service's netmask is a prefix length 1..128, got 255.0.0.0`,
    `${f(8, '255.0.255.0')}: director.services[5].netmask: an IPv4 netmask is a dotted mask (255.255.255.0) or a prefix length 1..32, got 255.0.255.0`,
    `${f(8, 'true')}: director.services[5].ops: one-packet scheduling is only for udp and fwmark services`,
    `${f(9, '"2001')}: director.services[6].real_servers[0].address: 2001:db8::1 is IPv6 but the service is IPv4: mixed families need method tunnel`,
    `${f(10, '81')}: director.services[7].real_servers[0].port: only method masq can map ports: a route real server's port is the service's (80)`,
    `${f(11, 'sh-port')}: director.services[8].sched_flags[0]: 'sh-port' needs scheduler sh`,
  ]);
});

const plan = (yaml: string): DirectorPlan => directorFromConfig(loadConfigString(yaml).config);

const BASE = `director:
  services:
    - vip: 10.0.0.1
      port: 80
      scheduler: rr
      real_servers:
        - { address: 10.0.0.11 }
        - { address: 10.0.0.12 }
    - fwmark: 7
      scheduler: rr
      real_servers:
        - { address: 10.0.0.21 }
`;

test('diffPlans: identical plans make an empty diff', (t) => {
  const d = diffPlans(plan(BASE), plan(BASE));
  t.true(isEmptyDiff(d));
});

test('diffPlans: add, edit and remove services and real servers', (t) => {
  const next = `director:
  timeouts: { tcp: 60 }
  services:
    - vip: 10.0.0.1
      port: 80
      scheduler: rr
      persistent: 60
      real_servers:
        - { address: 10.0.0.12, weight: 5 }
        - { address: 10.0.0.13 }
    - vip: 10.0.0.2
      port: 443
      scheduler: rr
      real_servers:
        - { address: 10.0.0.31 }
`;
  const a = plan(BASE);
  const b = plan(next);
  const d = diffPlans(a, b);
  t.deepEqual(
    d.services.add.map((s) => s.spec.id),
    [{ kind: 'tcp', family: 4, addr: '10.0.0.2', port: 443 }],
  );
  t.deepEqual(d.services.add[0].dests.length, 1);
  t.deepEqual(
    d.services.edit.map((s) => s.spec.timeout),
    [60],
  );
  t.deepEqual(d.services.del, [{ kind: 'fwm', family: 4, fwmark: 7 }]);
  const web = { kind: 'tcp', family: 4, addr: '10.0.0.1', port: 80 };
  t.deepEqual(d.dests.del, [{ service: web, addr: '10.0.0.11', port: 80 }]);
  t.deepEqual(
    d.dests.edit.map((x) => [x.dest.addr, x.dest.weight]),
    [['10.0.0.12', 5]],
  );
  t.deepEqual(
    d.dests.add.map((x) => x.dest.addr),
    ['10.0.0.13'],
  );
  t.deepEqual(d.timeouts, { tcp: 60, tcpfin: 120, udp: 300 });
  t.is(d.sysctl, null);
  t.false(isEmptyDiff(d));

  // applying the diff to the live table gives the new plan's table, keeping the untouched objects
  const live = applyDirectorConfig(table(), a);
  const kept = live.list()[0].dests.find((x) => x.addr === '10.0.0.12');
  const events: string[] = [];
  for (const ev of ['service-add', 'service-edit', 'service-del', 'dest-add', 'dest-edit', 'dest-del'] as const)
    live.on(ev, () => events.push(ev));
  applyPlanDiff(live, d);
  t.deepEqual(events.sort(), [
    'dest-add',
    'dest-add',
    'dest-del',
    'dest-edit',
    'service-add',
    'service-del',
    'service-edit',
  ]);
  const fresh = applyDirectorConfig(table(), b);
  const shape = (tb: ServiceTable) =>
    tb
      .list()
      .map(
        (s) =>
          `${s.key} ${s.schedName} ${s.timeout} ${s.dests
            .map((x) => `${x.key}/${x.weight}`)
            .sort()
            .join(',')}`,
      )
      .sort();
  t.deepEqual(shape(live), shape(fresh));
  t.is(
    live.list()[0].dests.find((x) => x.addr === '10.0.0.12'),
    kept,
  );
});

test('service names are unique; a schema-invalid entry still takes part in the duplicate checks', (t) => {
  const text = `director:
  services:
    - { name: a, vip: 10.0.0.1, port: 80, scheduler: rr, persistent: 0 }
    - { name: a, vip: 10.0.0.1, port: 80, scheduler: rr }
`;
  t.deepEqual(checkConfigString(text, 'n.yaml').problems.map(formatProblem), [
    `n.yaml:${at(text, 3, '0 }')}: director.services[0].persistent: must be >= 1, got 0`,
    `n.yaml:${at(text, 4, '{')}: director.services[1]: duplicate service TCP 10.0.0.1:80 (first at line 3)`,
    `n.yaml:${at(text, 4, 'a,')}: director.services[1].name: service name 'a' is used twice (first at line 3)`,
  ]);
});

const MARKED = `director:
  services:
    - fwmark: 7
      match:
        - { vip: 10.0.0.1, port: 80 }
        - { vip: 10.0.0.1, port: 8080, protocol: tcp }
      real_servers: [{ address: 10.0.0.21 }]
    - fwmark: 8
      match: [{ vip: 10.0.0.1, port: 53, protocol: udp }]
      real_servers: [{ address: 10.0.0.22 }]
`;

test('match: a fwmark service lists the VIP ports it marks; the plan holds the mark rules', (t) => {
  const p = plan(MARKED);
  t.deepEqual(p.marks, [
    { family: 4, addr: '10.0.0.1', protocol: 'tcp', port: 80, mark: 7 },
    { family: 4, addr: '10.0.0.1', protocol: 'tcp', port: 8080, mark: 7 },
    { family: 4, addr: '10.0.0.1', protocol: 'udp', port: 53, mark: 8 },
  ]);
  t.deepEqual(
    p.services.map((s) => s.match?.length),
    [2, 1],
  );
  t.deepEqual(plan(BASE).marks, []);
});

test('diffPlans: a change of match is a change to apply (all mark rules, or null when unchanged)', (t) => {
  t.true(isEmptyDiff(diffPlans(plan(MARKED), plan(MARKED))));
  const moved = MARKED.replace('port: 8080', 'port: 8081');
  const d = diffPlans(plan(MARKED), plan(moved));
  t.false(isEmptyDiff(d));
  t.deepEqual(d.services, { add: [], edit: [], del: [] });
  t.deepEqual(
    d.marks?.map((m) => `${m.protocol}/${m.port}→${m.mark}`),
    ['tcp/80→7', 'tcp/8081→7', 'udp/53→8'],
  );
  t.deepEqual(diffPlans(plan(MARKED), plan(BASE)).marks, []);
});

test('match: collisions, families and VIP services are reported with file:line', (t) => {
  const text = `director:
  services:
    - fwmark: 10
      match:
        - { vip: 10.0.0.1, port: 80 }
        - { vip: 10.0.0.1, port: 80, protocol: tcp }
        - { vip: "2001:db8::1", port: 80 }
    - fwmark: 11
      match:
        - { vip: 10.0.0.1, port: 80 }
        - { vip: 10.0.0.1, port: 80, protocol: udp }
        - { vip: 10.0.0.2, port: 0 }
        - { vip: 10.0.0.2, port: 443 }
    - { vip: 10.0.0.1, port: 81, match: [{ vip: 10.0.0.1, port: 81 }] }
`;
  t.deepEqual(checkConfigString(text, 'm.yaml').problems.map(formatProblem), [
    `m.yaml:${at(text, 6, '{')}: director.services[0].match[1]: tcp 10.0.0.1:80 is listed twice (also match[0])`,
    `m.yaml:${at(text, 7, '"2001')}: director.services[0].match[2].vip: 2001:db8::1 is IPv6 but the service is IPv4 (family inet)`,
    `m.yaml:${at(text, 10, '{')}: director.services[1].match[0]: tcp 10.0.0.1:80 is already marked 10 by services[0] (line 5): a packet carries one mark`,
    `m.yaml:${at(text, 13, '{')}: director.services[1].match[3]: tcp 10.0.0.2:443 is listed twice (also match[2])`,
    `m.yaml:${at(text, 14, '[')}: director.services[2].match: match is for fwmark services (a vip service takes the packets for its own vip:port)`,
  ]);
});

test('sync: the daemon options load; the group must be IPv4 multicast (an IPv6 group is refused)', (t) => {
  const ok = checkConfigString(
    'director:\n  sync: { state: backup, syncid: 1, maxlen: 9000, group: 239.0.0.9, port: 9000, ttl: 2 }\n',
  );
  t.deepEqual(ok.problems, []);
  t.deepEqual(ok.config?.director?.sync, {
    state: 'backup',
    syncid: 1,
    maxlen: 9000,
    group: '239.0.0.9',
    port: 9000,
    ttl: 2,
  });
  const text = `director:
  sync:
    state: master
    syncid: 1
    group: "ff02::1:2"
    port: 0
    ttl: 256
    maxlen: 65508
`;
  const bad = (group: string) => text.replace('"ff02::1:2"', group);
  t.deepEqual(checkConfigString(text, 's.yaml').problems.map(formatProblem), [
    `s.yaml:${at(text, 5, '"')}: director.sync.group: 'ff02::1:2': an IPv6 sync group is not supported (IPv4 only)`,
    `s.yaml:${at(text, 6, '0')}: director.sync.port: must be >= 1, got 0`,
    `s.yaml:${at(text, 7, '256')}: director.sync.ttl: must be <= 255, got 256`,
    `s.yaml:${at(text, 8, '65508')}: director.sync.maxlen: must be <= 65507, got 65508`,
  ]);
  for (const g of ['10.0.0.1', 'nonsense', '240.0.0.1'])
    t.deepEqual(
      checkConfigString(bad(g), 's.yaml').problems.map((p) => `${p.path}: ${p.message}`),
      [
        `director.sync.group: '${g}' is not an IPv4 multicast address (224.0.0.0/4)`,
        'director.sync.port: must be >= 1, got 0',
        'director.sync.ttl: must be <= 255, got 256',
        'director.sync.maxlen: must be <= 65507, got 65508',
      ],
    );
});

test('fastpath: auto, on or off reaches the plan; absent leaves it out (off); anything else is refused', (t) => {
  t.is(plan('director:\n  fastpath: auto\n').fastpath, 'auto');
  t.is(plan('director:\n  fastpath: on\n').fastpath, 'on');
  t.false('fastpath' in plan('director:\n  services: []\n'));
  const bad = checkConfigString('director:\n  fastpath: yes\n', 'f.yaml');
  t.is(bad.problems.length, 1);
  t.regex(formatProblem(bad.problems[0]), /director\.fastpath/);
});
