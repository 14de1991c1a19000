/** keepalived.conf and the equivalent YAML build the same director plan (services, real servers, health checks). */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { ConfigError, formatProblem } from '../src/config/index.js';
import type { Datapath } from '../src/director/datapath.js';
import { DirectorHa, haPlanFromKeepalived, haPlanFromYaml, RemoteTable, serviceArgs } from '../src/director/ha.js';
import { renderMetrics } from '../src/director/metrics.js';
import type { MetricsSnapshot } from '../src/director/worker-ha.js';
import { KeepalivedSyntaxError } from '../src/ha/keepalived/parse.js';
import { newCounters } from '../src/l4/datapath/forward.js';

const dir = mkdtempSync(join(tmpdir(), 'tierlb-ha-'));

const KEEPALIVED = `
global_defs {
  router_id dir1
  lvs_sync_daemon eth0 VI_1 id 7
}
vrrp_instance VI_1 {
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority 100
  advert_int 1
  virtual_ipaddress {
    10.0.0.100/24
  }
}
virtual_server 10.0.0.100 80 {
  delay_loop 2
  lb_algo rr
  lb_kind DR
  quorum 1
  sorry_server 10.0.0.50 80
  real_server 10.0.0.11 80 {
    weight 2
    inhibit_on_failure
    HTTP_GET {
      url {
        path /health
        status_code 200
      }
      connect_timeout 1
      retry 2
      delay_before_retry 1
    }
  }
  real_server 10.0.0.12 80 {
    weight 1
    TCP_CHECK {
      connect_timeout 1
    }
    MISC_CHECK {
      misc_path "/bin/true"
      misc_dynamic
    }
  }
}
`;

const YAML = `
vrrp:
  instances:
    - { name: VI_1, interface: eth0, virtual_router_id: 51, priority: 100, advert_int: 1, state: BACKUP,
        virtual_ipaddress: [10.0.0.100/24] }
director:
  sync: { state: vrrp, syncid: 7, interface: eth0, instance: VI_1 }
  services:
    - vip: 10.0.0.100
      port: 80
      scheduler: rr
      delay_loop: 2
      quorum: 1
      sorry_server: { address: 10.0.0.50, port: 80 }
      real_servers:
        - address: 10.0.0.11
          method: dr
          weight: 2
          inhibit_on_failure: true
          checks:
            - { type: HTTP_GET, url: [{ path: /health, status_code: [200] }], connect_timeout: 1, retry: 2,
                delay_before_retry: 1 }
        - address: 10.0.0.12
          method: dr
          checks:
            - { type: TCP_CHECK, connect_timeout: 1 }
            - { type: MISC_CHECK, misc_path: /bin/true, misc_dynamic: true }
`;

test('a keepalived.conf and the equivalent YAML produce equal plans', async (t) => {
  writeFileSync(join(dir, 'k.conf'), KEEPALIVED);
  writeFileSync(join(dir, 'c.yaml'), YAML);
  const k = haPlanFromKeepalived(join(dir, 'k.conf'));
  const y = await haPlanFromYaml(join(dir, 'c.yaml'));
  t.deepEqual(k.director, y.director);
  t.deepEqual(k.sync, y.sync);
  t.deepEqual(k.vrrp?.instances, y.vrrp?.instances);
  t.is(k.director.services[0].health?.realServers[0].checks[0].type, 'http');
  // equal is not enough: both must carry what the files say (two empty plans are equal too)
  t.deepEqual(k.sync, { state: 'vrrp', syncid: 7, interface: 'eth0', instance: 'VI_1' });
  t.like(k.vrrp?.instances, [{ name: 'VI_1', virtualRouterId: 51, priority: 100, interface: 'eth0' }]);
  t.is(k.vrrp?.instances.length, 1);
  t.deepEqual(
    k.director.services[0].dests.map((d) => [d.addr, d.port, d.weight]),
    [
      ['10.0.0.11', 80, 2],
      ['10.0.0.12', 80, 1],
    ],
  );
});

test('lvs_sync_daemon maxlen, port, ttl and group give the plan the YAML sync section gives', async (t) => {
  const conf = (sync: string) => KEEPALIVED.replace('lvs_sync_daemon eth0 VI_1 id 7', sync);
  const yaml = (sync: string) => YAML.replace(/ {2}sync: .*\n/, `  sync: ${sync}\n`);
  const plans = async (name: string, k: string, y: string) => {
    writeFileSync(join(dir, `${name}.conf`), conf(k));
    writeFileSync(join(dir, `${name}.yaml`), yaml(y));
    return [haPlanFromKeepalived(join(dir, `${name}.conf`)), await haPlanFromYaml(join(dir, `${name}.yaml`))];
  };
  const [k, y] = await plans(
    'sync-opts',
    'lvs_sync_daemon eth1 inst VI_1 id 3 maxlen 1200 port 9000 ttl 4 group 239.1.2.3',
    '{ state: vrrp, syncid: 3, interface: eth1, instance: VI_1, maxlen: 1200, group: 239.1.2.3, port: 9000, ttl: 4 }',
  );
  t.deepEqual(k.sync, y.sync);
  t.deepEqual(k.sync, {
    state: 'vrrp',
    syncid: 3,
    interface: 'eth1',
    instance: 'VI_1',
    maxLen: 1200,
    group: '239.1.2.3',
    port: 9000,
    ttl: 4,
  });
  // options not given stay out of the plan (the daemon's defaults apply); no id: the instance's virtual_router_id
  const [k2, y2] = await plans(
    'sync-some',
    'lvs_sync_daemon eth0 VI_1 ttl 2',
    '{ state: vrrp, syncid: 51, interface: eth0, instance: VI_1, ttl: 2 }',
  );
  t.deepEqual(k2.sync, y2.sync);
  t.deepEqual(k2.sync, { state: 'vrrp', syncid: 51, interface: 'eth0', instance: 'VI_1', ttl: 2 });
  // a bad value stops the load with file:line, as a bad YAML value does
  writeFileSync(join(dir, 'sync-bad.conf'), conf('lvs_sync_daemon eth0 VI_1 ttl 256'));
  t.throws(() => haPlanFromKeepalived(join(dir, 'sync-bad.conf')), {
    message: `${join(dir, 'sync-bad.conf')}:4: 'lvs_sync_daemon ttl' wants an integer in 1..255, got '256'`,
  });
});

test('haPlanFromYaml: every problem of the director and vrrp sections, as a list with file:line', async (t) => {
  const file = join(dir, 'bad-plan.yaml');
  writeFileSync(
    file,
    [
      'director:',
      '  services:',
      '    - { vip: 10.0.0.1, port: 80, scheduler: rrr }',
      'vrrp:',
      '  instances:',
      '    - { name: VI_1, interface: eth0, virtual_router_id: 300, virtual_ipaddress: [10.0.0.100/24] }',
      '',
    ].join('\n'),
  );
  const e = await t.throwsAsync(haPlanFromYaml(file), { instanceOf: ConfigError });
  t.is(e?.problems.length, 2);
  t.deepEqual(
    e?.problems.map((p) => [p.line, p.path]),
    [
      [3, 'director.services[0].scheduler'],
      [6, 'vrrp.instances[0].virtual_router_id'],
    ],
  );
  t.is(e?.message, e?.problems.map(formatProblem).join('\n'));
  // the checks over the whole VRRP config (after the schema) come as a list too
  writeFileSync(
    file,
    [
      'vrrp:',
      '  instances:',
      '    - { name: VI_1, interface: eth0, virtual_router_id: 51, virtual_ipaddress: [10.0.0.100/24] }',
      '    - { name: VI_1, interface: eth1, virtual_router_id: 52, virtual_ipaddress: [10.0.0.101/24] }',
      '  sync_groups:',
      '    - { name: G1, group: [VI_7, VI_8] }',
      '',
    ].join('\n'),
  );
  const e2 = await t.throwsAsync(haPlanFromYaml(file), { instanceOf: ConfigError });
  t.deepEqual(e2?.problems.map(formatProblem), [
    `${file}:4:7: vrrp.instances[1]: vrrp instance VI_1: duplicate instance name`,
    `${file}:6:27: vrrp.sync_groups[0].group[0]: vrrp sync group G1: instance VI_7 is not defined`,
    `${file}:6:33: vrrp.sync_groups[0].group[1]: vrrp sync group G1: instance VI_8 is not defined`,
  ]);
});

test('haPlanFromKeepalived: errors are a KeepalivedSyntaxError with every diagnostic', (t) => {
  writeFileSync(join(dir, 'two-bad.conf'), 'virtual_server 10.0.0.1 80 {\n  lb_algo nope\n  lb_kind XX\n}\n');
  const e = t.throws(() => haPlanFromKeepalived(join(dir, 'two-bad.conf')), { instanceOf: KeepalivedSyntaxError });
  t.is(e?.code, 'EKEEPALIVED_SYNTAX');
  t.deepEqual(
    e?.diagnostics.map((d) => d.line),
    [2, 3],
  );
});

test('the YAML sync section takes --sync-maxlen, --mcast-group, --mcast-port and --mcast-ttl to the daemon', async (t) => {
  const file = join(dir, 'sync.yaml');
  writeFileSync(
    file,
    'director:\n  sync: { state: master, syncid: 3, interface: eth1, maxlen: 1200, group: 239.1.2.3, port: 9000, ttl: 4 }\n',
  );
  const plan = await haPlanFromYaml(file);
  t.deepEqual(plan.sync, {
    state: 'master',
    syncid: 3,
    interface: 'eth1',
    instance: undefined,
    maxLen: 1200,
    group: '239.1.2.3',
    port: 9000,
    ttl: 4,
  });
  // the director asks its data-path worker for exactly that daemon
  const reqs: unknown[] = [];
  const dp = { ha: async (r: unknown) => reqs.push(r) } as unknown as Datapath;
  const ha = new DirectorHa({ dp, plan });
  await ha.start();
  t.deepEqual(reqs, [
    {
      op: 'sync-start',
      start: { state: 'master', syncid: 3, mcastIfn: 'eth1', maxLen: 1200, group: '239.1.2.3', port: 9000, ttl: 4 },
    },
  ]);
  await ha.stop();
});

test('the checker table mirror sends ipvsadm commands in order', async (t) => {
  const sent: string[][] = [];
  const id = { kind: 'tcp', family: 4, addr: '10.0.0.100', port: 80 } as const;
  const d = { addr: '10.0.0.11', port: 80, fwd: 'route', weight: 2, uThreshold: 0, lThreshold: 0 } as const;
  const tbl = new RemoteTable(
    async (argv) => {
      sent.push(argv);
      return { code: 0, stderr: '' };
    },
    [{ spec: { id }, dests: [d] }],
  );
  t.is(tbl.get(id)?.dests.length, 1);
  tbl.editDest(id, { ...d, weight: 0 });
  tbl.delDest(id, d.addr, d.port);
  tbl.addDest(id, d);
  await tbl.settled();
  t.deepEqual(serviceArgs(id), ['-t', '10.0.0.100:80']);
  t.deepEqual(
    sent.map((a) => a.slice(0, 5)),
    [
      ['-e', '-t', '10.0.0.100:80', '-r', '10.0.0.11:80'],
      ['-d', '-t', '10.0.0.100:80', '-r', '10.0.0.11:80'],
      ['-a', '-t', '10.0.0.100:80', '-r', '10.0.0.11:80'],
    ],
  );
  t.is(sent[0][7], '0');
});

test('metrics render per service and real server', async (t) => {
  const st = {
    conns: 3,
    inpkts: 10,
    outpkts: 0,
    inbytes: 600,
    outbytes: 0,
    cps: 1,
    inpps: 2,
    outpps: 0,
    inbps: 3,
    outbps: 0,
  };
  const snap: MetricsSnapshot = {
    services: [
      {
        service: 'TCP 10.0.0.100:80',
        stats: st,
        dests: [{ addr: '10.0.0.11', port: 80, fwd: 'route', weight: 1, activeConns: 2, inactConns: 1, stats: st }],
      },
    ],
    counters: newCounters(),
    sync: { daemons: [{ state: 'master', syncid: 7 }], master: { messages: 4, conns: 9, bytes: 100 } },
  };
  const text = await renderMetrics(snap, {
    vrrpStates: new Map([['VI_1', { state: 'MASTER', vrid: 51, priority: 100 }]]),
  });
  t.regex(text, /tierlb_ipvs_service_connections_total\{service="TCP 10.0.0.100:80"\} 3/);
  t.regex(
    text,
    /tierlb_ipvs_backend_connections_active\{service="TCP 10.0.0.100:80",server="10.0.0.11:80",forward="route"\} 2/,
  );
  t.regex(text, /tierlb_vrrp_state\{instance="VI_1",vrid="51",state="MASTER"\} 1/);
  t.regex(text, /tierlb_sync_master_conns_total 9/);
});
