import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { loadKeepalivedConf, readKeepalivedConf } from '../src/ha/keepalived/config.js';
import {
  expandGlob,
  formatDiagnostic,
  KeepalivedSyntaxError,
  parseConfFile,
  realFs,
} from '../src/ha/keepalived/parse.js';
import { SCHEDULERS } from '../src/l4/schedulers/index.js';
import { SVC_F_ONEPACKET, SVC_F_SCHED1, SVC_F_SCHED2 } from '../src/l4/service.js';

function tree(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'tlka-'));
  for (const [name, text] of Object.entries(files)) {
    const p = join(dir, name);
    mkdirSync(join(p, '..'), { recursive: true });
    writeFileSync(p, text);
  }
  return dir;
}

// An LB node in the articles' style: VRRP master/backup for the VIP, LVS-DR per listener by fwmark (from 0x2710),
// MISC_CHECK with nc -vz against the HAProxy listeners, and an HTTP service with a genhash digest.
const MAIN = `! Configuration File for keepalived
global_defs {
   notification_email {
     ops@example.com
   }
   notification_email_from keepalived@lb-node0
   smtp_server 127.0.0.1
   smtp_connect_timeout 30
   router_id LB_NODE0       # this node
   vrrp_skip_check_adv_addr
}

vrrp_script chk_haproxy {
    script "/usr/bin/killall -0 haproxy"
    interval 2
    weight -20
    fall 3
    rise 2
}

vrrp_instance VI_1 {
    state MASTER
    interface eth1
    virtual_router_id 51
    priority 150
    advert_int 1
    nopreempt
    preempt_delay 10
    authentication {
        auth_type PASS
        auth_pass 1111
    }
    virtual_ipaddress {
        1.2.3.252/24 dev eth1 label eth1:1
        1.2.3.253
    }
    track_interface {
        eth0 weight -30
        eth1
    }
    track_script {
        chk_haproxy
    }
    unicast_src_ip 1.2.3.9
    unicast_peer {
        1.2.3.10
    }
    notify_master "/etc/keepalived/notify.sh master"
    notify /etc/keepalived/notify-all.sh
    smtp_alert
}

vrrp_sync_group VG_1 {
    group {
        VI_1
    }
}

include conf.d/*.conf
`;

const LVS = `# listeners by fwmark, as the iptables PREROUTING rules mark them
virtual_server_group LISTENERS {
    fwmark 10000
    fwmark 10001
}

virtual_server group LISTENERS {
    delay_loop 6
    lb_algo wrr
    lb_kind DR
    persistence_timeout 50
    persistence_granularity 255.255.255.0
    protocol TCP
    sorry_server 1.2.3.99 80
    quorum 2
    hysteresis 1
    real_server 1.2.3.9 0 {
        weight 3
        inhibit_on_failure
        MISC_CHECK {
            misc_path "/usr/bin/nc -vz -w 2 1.2.3.9 80"
            misc_timeout 5
            misc_dynamic
        }
    }
    real_server 1.2.3.10 0 {
        weight 1
        uthreshold 1000
        lthreshold 800
        MISC_CHECK {
            misc_path "/usr/bin/nc -vz -w 2 1.2.3.10 80"
        }
    }
}
`;

const WEB = `virtual_server 1.2.3.252 80 {
    delay_loop 10
    lb_algo sh
    sh-port
    sh-fallback
    lb_kind NAT
    protocol TCP
    real_server 192.168.10.11 8080 {
        weight 2
        HTTP_GET {
            url {
              path /healthz
              digest 9B3A0C85A887A256D6939DA88AABD8CD
              status_code 200
            }
            url {
              path /ready
              status_code 200-204 301
            }
            connect_timeout 3
            nb_get_retry 3
            delay_before_retry 2
            connect_port 8081
        }
    }
    real_server 192.168.10.12 8080 {
        TCP_CHECK {
            connect_timeout 4
            retry 2
            warmup 5
        }
        SMTP_CHECK {
            connect_timeout 4
        }
    }
}

virtual_server 1.2.3.252 53 {
    lb_algo rr
    lb_kind TUN
    protocol UDP
    ops
    persistence_timeout
    real_server 10.9.9.1 53 {
    }
}
`;

test('a realistic keepalived.conf with an include: VRRP, fwmark groups, DR/NAT/TUN, checkers', (t) => {
  const dir = tree({
    'keepalived.conf': MAIN,
    'conf.d/10-lvs.conf': LVS,
    'conf.d/20-web.conf': WEB,
    'conf.d/x.txt': 'junk {',
  });
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const r = loadKeepalivedConf(join(dir, 'keepalived.conf'));
  t.deepEqual(r.errors.map(formatDiagnostic), []);
  t.deepEqual(
    r.files.map((f) => f.slice(dir.length + 1)),
    ['keepalived.conf', 'conf.d/10-lvs.conf', 'conf.d/20-web.conf'],
  );
  const c = r.config;
  t.is(c.routerId, 'LB_NODE0');

  // VRRP
  t.deepEqual(c.vrrp.scripts, [
    {
      name: 'chk_haproxy',
      script: '/usr/bin/killall -0 haproxy',
      interval: 2,
      timeout: 2,
      weight: -20,
      rise: 2,
      fall: 3,
    },
  ]);
  t.is(c.vrrp.instances.length, 1);
  t.deepEqual(c.vrrp.instances[0], {
    name: 'VI_1',
    interface: 'eth1',
    virtualRouterId: 51,
    priority: 150,
    advertInt: 1,
    version: 2,
    state: 'MASTER',
    nopreempt: true,
    preemptDelay: 10,
    authPass: '1111',
    virtualIpaddress: [
      { addr: '1.2.3.252', prefixLen: 24, dev: 'eth1', label: 'eth1:1' },
      { addr: '1.2.3.253', prefixLen: 32 },
    ],
    unicastSrcIp: '1.2.3.9',
    unicastPeer: ['1.2.3.10'],
    trackInterface: [
      { name: 'eth0', weight: -30 },
      { name: 'eth1', weight: 0 },
    ],
    trackScript: [{ name: 'chk_haproxy' }],
    notify: { master: '/etc/keepalived/notify.sh master', notify: '/etc/keepalived/notify-all.sh' },
    garpMasterDelay: 5,
    garpMasterRepeat: 5,
  });
  t.deepEqual(c.vrrp.syncGroups, [{ name: 'VG_1', group: ['VI_1'], notify: {} }]);

  // director: the group expands to one fwmark service per member
  t.is(c.services.length, 4);
  const [fw1, fw2, web, dns] = c.services;
  t.deepEqual(fw1.spec, {
    id: { kind: 'fwm', family: 4, fwmark: 10000 },
    sched: 'wrr',
    flags: 0,
    timeout: 50,
    netmask: 0xffffff00,
  });
  t.is(fw2.spec.id.fwmark, 10001);
  t.is(fw1.group, 'LISTENERS');
  t.deepEqual(fw1.dests, [
    { addr: '1.2.3.9', port: 0, fwd: 'route', weight: 3, uThreshold: 0, lThreshold: 0 },
    { addr: '1.2.3.10', port: 0, fwd: 'route', weight: 1, uThreshold: 1000, lThreshold: 800 },
  ]);
  t.deepEqual(fw2.dests, fw1.dests);
  t.like(fw1.health, {
    delayLoop: 6,
    quorum: 2,
    hysteresis: 1,
    sorryServer: { addr: '1.2.3.99', port: 80, inhibit: false },
  });
  t.deepEqual(fw1.health.realServers[0], {
    addr: '1.2.3.9',
    port: 0,
    inhibitOnFailure: true,
    checks: [{ type: 'misc', path: '/usr/bin/nc -vz -w 2 1.2.3.9 80', timeout: 5, dynamic: true }],
  });
  t.deepEqual(fw1.health.realServers[1].checks, [
    { type: 'misc', path: '/usr/bin/nc -vz -w 2 1.2.3.10 80', dynamic: false },
  ]);

  t.deepEqual(web.spec, {
    id: { kind: 'tcp', family: 4, addr: '1.2.3.252', port: 80 },
    sched: 'sh',
    flags: SVC_F_SCHED1 | SVC_F_SCHED2,
    timeout: 0,
    netmask: 0xffffffff,
  });
  t.deepEqual(
    web.dests.map((d) => [d.addr, d.port, d.fwd, d.weight]),
    [
      ['192.168.10.11', 8080, 'masq', 2],
      ['192.168.10.12', 8080, 'masq', 1],
    ],
  );
  const http = web.health.realServers[0].checks[0];
  t.deepEqual(http, {
    type: 'http',
    tls: false,
    urls: [
      { path: '/healthz', statusCodes: [200], digest: '9b3a0c85a887a256d6939da88aabd8cd' },
      { path: '/ready', statusCodes: [200, 201, 202, 203, 204, 301] },
    ],
    connectTimeout: 3,
    retry: 3,
    delayBeforeRetry: 2,
    connectPort: 8081,
  });
  t.deepEqual(web.health.realServers[1].checks, [
    { type: 'tcp', connectTimeout: 4, retry: 2, delayBeforeRetry: 1, warmup: 5 },
  ]);
  t.deepEqual(dns.spec, {
    id: { kind: 'udp', family: 4, addr: '1.2.3.252', port: 53 },
    sched: 'rr',
    flags: SVC_F_ONEPACKET,
    timeout: 360,
    netmask: 0xffffffff,
  });
  t.is(dns.dests[0].fwd, 'tunnel');
  t.is(dns.health.delayLoop, 60);

  // every unsupported keyword is warned about with its file and line
  const w = r.warnings.map((d) => `${d.file.slice(dir.length + 1)}:${d.line}: ${d.message}`);
  const has = (re: RegExp) =>
    t.true(
      w.some((x) => re.test(x)),
      `no warning matching ${re}:\n${w.join('\n')}`,
    );
  has(/^keepalived\.conf:3: 'notification_email' in global_defs: e-mail notification/);
  has(/^keepalived\.conf:6: 'notification_email_from'/);
  has(/^keepalived\.conf:7: 'smtp_server'/);
  has(/^keepalived\.conf:8: 'smtp_connect_timeout'/);
  has(/^keepalived\.conf:10: 'vrrp_skip_check_adv_addr' in global_defs: not supported by tierlb/);
  has(/^keepalived\.conf:50: 'smtp_alert' in vrrp_instance VI_1/);
  has(/^conf\.d\/20-web\.conf:32: 'SMTP_CHECK' in real_server 192\.168\.10\.12 8080: this checker is not supported/);
  t.is(w.length, 7, w.join('\n'));
});

test('syntax errors and bad values name file:line; all of them at once', (t) => {
  const dir = tree({
    'k.conf': `vrrp_instance VI_1 {
  interface eth0
  virtual_router_id 300
  priority high
  state LEADER
  virtual_ipaddress {
    10.0.0.1/40
    fe80::1
  }
}
include missing.conf
virtual_server 10.0.0.1 80 {
  lb_algo fastest
  lb_kind DSR
  real_server 10.0.0.2 80 {
    HTTP_GET {
      url {
        digest nothex
      }
    }
  }
}
vrrp_instance VI_2 {
  priority 10
}
virtual_server group NOPE {
}
}
virtual_server 10.0.0.5 80 {
  real_server 10.0.0.6 80 {
`,
  });
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const r = loadKeepalivedConf(join(dir, 'k.conf'));
  const e = r.errors.map((d) => `${d.file.slice(dir.length + 1)}:${d.line}: ${d.message}`);
  const expected = [
    /^k\.conf:3: 'virtual_router_id' wants an integer in 1\.\.255, got '300'/,
    /^k\.conf:4: 'priority' wants an integer in 1\.\.255, got 'high'/,
    /^k\.conf:5: state must be MASTER or BACKUP, got 'LEADER'/,
    /^k\.conf:7: bad prefix length in 10\.0\.0\.1\/40/,
    /^k\.conf:8: \(VI_1\): address family must match VRRP instance \[fe80::1\]$/,
    /^k\.conf:11: include missing\.conf: no such file|^k\.conf:11: cannot read .*missing\.conf/,
    /^k\.conf:13: lb_algo 'fastest' is not a scheduler/,
    /^k\.conf:14: lb_kind must be DR, NAT or TUN, got 'DSR'/,
    /^k\.conf:18: digest must be 32 hex digits/,
    /^k\.conf:17: url without path/,
    /^k\.conf:23: vrrp_instance VI_2 has no 'interface'/,
    /^k\.conf:23: vrrp_instance VI_2 has no 'virtual_router_id'/,
    /^k\.conf:26: virtual_server_group NOPE is not defined/,
    /^k\.conf:28: unexpected '}'/,
    /^k\.conf:30: block opened here is missing its '}'/,
    /^k\.conf:29: block opened here is missing its '}'/,
  ];
  for (const re of expected)
    t.true(
      e.some((x) => re.test(x)),
      `no error matching ${re}:\n${e.join('\n')}`,
    );
  const err = t.throws(() => readKeepalivedConf(join(dir, 'k.conf')), { instanceOf: KeepalivedSyntaxError });
  t.is(err?.diagnostics.length, r.errors.length);
  t.regex(err?.message ?? '', /k\.conf:3: /);
});

test('tokenizer: comments, quotes, braces on the same or next line, continuation, one-line blocks', (t) => {
  const dir = tree({
    'k.conf': `vrrp_script "chk one" # a comment
{
  script "/bin/sh -c 'exit 0'"   ! another comment
  interval 1 \\
    # not a comment: continued
}
vrrp_instance VI_1 { interface eth0
  virtual_router_id 7
  virtual_ipaddress { 10.0.0.9/24 }
  unicast_peer { 10.0.0.2 }
}
`,
  });
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const p = parseConfFile(join(dir, 'k.conf'));
  t.deepEqual(p.errors, []);
  t.is(p.statements[0].name, 'vrrp_script');
  t.deepEqual(p.statements[0].args, ['chk one']);
  t.deepEqual(
    p.statements[0].block?.map((s) => [s.name, s.args, s.line]),
    [
      ['script', ["/bin/sh -c 'exit 0'"], 3],
      ['interval', ['1'], 4],
    ],
  );
  const r = loadKeepalivedConf(join(dir, 'k.conf'));
  t.deepEqual(r.errors, []);
  t.like(r.config.vrrp.instances[0], {
    interface: 'eth0',
    virtualRouterId: 7,
    virtualIpaddress: [{ addr: '10.0.0.9', prefixLen: 24 }],
    unicastPeer: ['10.0.0.2'],
  });
});

test('include: relative to the including file, nested, loops reported, empty globs warned', (t) => {
  const dir = tree({
    'main.conf': 'include sub/a.conf\ninclude none/*.conf\n',
    'sub/a.conf': 'include b.conf\n',
    'sub/b.conf': 'include ../main.conf\nglobal_defs {\n router_id X\n}\n',
  });
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const r = loadKeepalivedConf(join(dir, 'main.conf'));
  t.is(r.config.routerId, 'X');
  t.true(r.errors.some((e) => e.file.endsWith('sub/b.conf') && e.line === 1 && /include loop/.test(e.message)));
  t.true(r.warnings.some((w) => w.file.endsWith('main.conf') && w.line === 2 && /no file matches/.test(w.message)));
  t.deepEqual(
    expandGlob(join(dir, 's*/[ab].conf'), realFs).map((f) => f.slice(dir.length + 1)),
    ['sub/a.conf', 'sub/b.conf'],
  );
});

test('virtual_server_group with an address range, vrrp_version in global_defs, v3 instance', (t) => {
  const dir = tree({
    'k.conf': `global_defs {
  vrrp_version 3
}
vrrp_instance V6 {
  interface eth0
  virtual_router_id 9
  advert_int 0.5
  authentication {
    auth_type PASS
    auth_pass x
  }
  virtual_ipaddress {
    10.1.1.1
  }
}
virtual_server_group WEB {
  10.1.1.1-3 80
  10.2.2.2 8080
}
virtual_server group WEB {
  lb_kind DR
  real_server 10.3.3.3 80 {
  }
}
`,
  });
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const r = loadKeepalivedConf(join(dir, 'k.conf'));
  t.deepEqual(r.errors, []);
  t.like(r.config.vrrp.instances[0], { version: 3, advertInt: 0.5 });
  t.is(r.config.vrrp.instances[0].authPass, undefined);
  t.true(r.warnings.some((w) => w.line === 4 && /not part of VRRPv3/.test(w.message)));
  t.deepEqual(
    r.config.services.map((s) => `${s.spec.id.kind} ${s.spec.id.addr}:${s.spec.id.port} ${s.spec.sched}`),
    ['tcp 10.1.1.1:80 wlc', 'tcp 10.1.1.2:80 wlc', 'tcp 10.1.1.3:80 wlc', 'tcp 10.2.2.2:8080 wlc'],
  );
});

test('lb_algo and lvs_sched take exactly the schedulers of the registry (src/l4/schedulers)', (t) => {
  const names = Object.keys(SCHEDULERS);
  const conf = [
    ...names.map((n, i) => `virtual_server 10.0.0.1 ${8000 + i} {\n  lb_algo ${n}\n}`),
    'virtual_server 10.0.0.1 9000 {\n  lvs_sched wrrr\n}',
  ].join('\n');
  const dir = tree({ 'k.conf': `${conf}\n` });
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const r = loadKeepalivedConf(join(dir, 'k.conf'));
  t.deepEqual(
    r.config.services.slice(0, names.length).map((s) => s.spec.sched),
    names,
  );
  t.deepEqual(
    r.errors.map((d) => `${d.line}: ${d.message}`),
    [`${names.length * 3 + 2}: lvs_sched 'wrrr' is not a scheduler (${names.join(', ')})`],
  );
});
