/**
 * keepalived.conf's sync daemon: global_defs `lvs_sync_daemon <INTERFACE> [[inst] <VRRP_INSTANCE>] [id <SYNC_ID>]
 * [maxlen <LEN>] [port <PORT>] [ttl <TTL>] [group <IP ADDR>]` and a vrrp_instance's deprecated
 * `lvs_sync_daemon_interface`, read as keepalived reads them (global_parser.c lvs_syncd_handler, vrrp_parser.c
 * vrrp_lvs_syncd_handler, vrrp.c vrrp_complete_init).
 */
import test, { type ExecutionContext } from 'ava';
import { type KeepalivedLoadResult, type LvsSyncDaemon, loadKeepalivedConf } from '../src/ha/keepalived/config.js';
import { type ConfFs, formatDiagnostic } from '../src/ha/keepalived/parse.js';

const FILE = '/etc/keepalived/keepalived.conf';

function load(text: string): KeepalivedLoadResult {
  const fs: ConfFs = {
    read: (p) => {
      if (p !== FILE) throw Object.assign(new Error(p), { code: 'ENOENT' });
      return text;
    },
    list: () => [],
    isDir: () => false,
  };
  return loadKeepalivedConf(FILE, fs);
}

const INSTANCES = `vrrp_instance VI_1 {
  interface eth0
  virtual_router_id 51
  virtual_ipaddress {
    10.0.0.100
  }
}
vrrp_instance VI_2 {
  interface eth0
  virtual_router_id 52
  virtual_ipaddress {
    10.0.0.101
  }
}
`;

/** global_defs holding `line` (on line 2) before VI_1 (virtual_router_id 51) and VI_2 (52) */
function withLine(line: string): KeepalivedLoadResult {
  return load(`global_defs {\n  ${line}\n}\n${INSTANCES}`);
}

const diags = (ds: KeepalivedLoadResult['errors']) => ds.map((d) => formatDiagnostic(d).replace(`${FILE}:`, ''));

/** The sync daemon of a line that must load without an error or a warning. */
function clean(t: ExecutionContext, line: string): LvsSyncDaemon | undefined {
  const r = withLine(line);
  t.deepEqual([...diags(r.errors), ...diags(r.warnings)], [], line);
  return r.config.lvsSync;
}

test('every option maps to the sync daemon: id, maxlen, port, ttl, group', (t) => {
  t.deepEqual(clean(t, 'lvs_sync_daemon eth1 VI_2 id 3 maxlen 1200 port 9000 ttl 4 group 239.1.2.3'), {
    interface: 'eth1',
    instance: 'VI_2',
    syncid: 3,
    maxLen: 1200,
    group: '239.1.2.3',
    port: 9000,
    ttl: 4,
  });
});

test('only the options given are set; without id the sync id is the instance virtual_router_id', (t) => {
  t.deepEqual(clean(t, 'lvs_sync_daemon eth0 VI_2'), { interface: 'eth0', instance: 'VI_2', syncid: 52 });
  // `inst`, options in any order, the last of a repeated option wins
  const inst = clean(t, 'lvs_sync_daemon eth0 ttl 9 group 239.0.0.9 inst VI_1 ttl 2 maxlen 65507');
  t.deepEqual(inst, { interface: 'eth0', instance: 'VI_1', syncid: 51, ttl: 2, group: '239.0.0.9', maxLen: 65507 });
  // the lower bounds, and id 0 is a sync id, not "unset"
  const low = clean(t, 'lvs_sync_daemon eth0 VI_1 id 0 maxlen 1 port 1 ttl 1 group 224.0.0.0');
  t.deepEqual(low, { interface: 'eth0', instance: 'VI_1', syncid: 0, maxLen: 1, port: 1, ttl: 1, group: '224.0.0.0' });
});

test('values keepalived accepts: strtoul forms, a group with a mask or range, a bare sync id (warned)', (t) => {
  t.deepEqual(clean(t, 'lvs_sync_daemon eth0 VI_1 port +9000 ttl " 7" group 239.1.1.1/32'), {
    interface: 'eth0',
    instance: 'VI_1',
    syncid: 51,
    port: 9000,
    ttl: 7,
    group: '239.1.1.1',
  });
  const range = withLine('lvs_sync_daemon eth0 VI_1 group 239.1.1.1-9');
  t.is(range.config.lvsSync?.group, '239.1.1.1');
  const old = withLine('lvs_sync_daemon eth0 VI_1 7 port 9001');
  t.deepEqual(diags(old.errors), []);
  t.deepEqual(diags(old.warnings), [
    "2: lvs_sync_daemon: write 'id 7' for the sync id (a bare sync id is the old syntax)",
  ]);
  t.deepEqual(old.config.lvsSync, { interface: 'eth0', instance: 'VI_1', syncid: 7, port: 9001 });
});

test('bad values are errors at file:line naming the option and its range', (t) => {
  const cases: [string, string][] = [
    ['maxlen 0', "'lvs_sync_daemon maxlen' wants an integer in 1..65507, got '0'"],
    ['maxlen 65508', "'lvs_sync_daemon maxlen' wants an integer in 1..65507, got '65508'"],
    ['maxlen 12abc', "'lvs_sync_daemon maxlen' wants an integer in 1..65507, got '12abc'"],
    ['port 0', "'lvs_sync_daemon port' wants an integer in 1..65535, got '0'"],
    ['port 65536', "'lvs_sync_daemon port' wants an integer in 1..65535, got '65536'"],
    ['port 0x10', "'lvs_sync_daemon port' wants an integer in 1..65535, got '0x10'"],
    ['ttl 0', "'lvs_sync_daemon ttl' wants an integer in 1..255, got '0'"],
    ['ttl 256', "'lvs_sync_daemon ttl' wants an integer in 1..255, got '256'"],
    ['ttl 1e2', "'lvs_sync_daemon ttl' wants an integer in 1..255, got '1e2'"],
    ['ttl 2.5', "'lvs_sync_daemon ttl' wants an integer in 1..255, got '2.5'"],
    ['id 256', "'lvs_sync_daemon id' wants an integer in 0..255, got '256'"],
    ['id -1', "'lvs_sync_daemon id' wants an integer in 0..255, got '-1'"],
    ['group 10.0.0.1', "lvs_sync_daemon group '10.0.0.1' is not a multicast address"],
    ['group 240.0.0.1', "lvs_sync_daemon group '240.0.0.1' is not a multicast address"],
    ['group 2001:db8::1', "lvs_sync_daemon group '2001:db8::1' is not a multicast address"],
    ['group nonsense', "lvs_sync_daemon group 'nonsense' is not an IP address"],
    ['group 239.1.1', "lvs_sync_daemon group '239.1.1' is not an IP address"],
    ['group ff02::1%eth0', "lvs_sync_daemon group 'ff02::1%eth0' is not an IP address"],
    // keepalived reads the word after the instance as an old-style sync id
    ['foo', "'lvs_sync_daemon id' wants an integer in 0..255, got 'foo'"],
    ['ttl', "'lvs_sync_daemon ttl' needs a value"],
    ['port 9000 group', "'lvs_sync_daemon group' needs a value"],
  ];
  for (const [opts, message] of cases) {
    const r = withLine(`lvs_sync_daemon eth0 VI_1 ${opts}`);
    t.deepEqual(diags(r.errors), [`2: ${message}`], opts);
  }
  // several at once, each reported
  const many = withLine('lvs_sync_daemon eth0 VI_1 maxlen 0 port 65536 ttl 0 group 10.0.0.1');
  t.deepEqual(diags(many.errors), [
    "2: 'lvs_sync_daemon maxlen' wants an integer in 1..65507, got '0'",
    "2: 'lvs_sync_daemon port' wants an integer in 1..65535, got '65536'",
    "2: 'lvs_sync_daemon ttl' wants an integer in 1..255, got '0'",
    "2: lvs_sync_daemon group '10.0.0.1' is not a multicast address",
  ]);
});

test('interface and instance: required, the name short enough, the instance defined', (t) => {
  t.deepEqual(diags(withLine('lvs_sync_daemon').errors), ["2: 'lvs_sync_daemon' needs an interface"]);
  t.deepEqual(diags(withLine('lvs_sync_daemon a23456789012345 VI_1').errors), []);
  t.deepEqual(diags(withLine('lvs_sync_daemon a234567890123456 VI_1').errors), [
    "2: lvs_sync_daemon interface name 'a234567890123456' is too long (at most 15 bytes)",
  ]);
  const noInst = withLine('lvs_sync_daemon eth0 id 3');
  t.deepEqual(diags(noInst.errors), [
    '2: lvs_sync_daemon without a VRRP instance (keepalived then runs the master and the backup daemon at once) is not supported by tierlb: name the instance the daemon follows',
  ]);
  t.is(noInst.config.lvsSync, undefined);
  t.deepEqual(diags(withLine('lvs_sync_daemon eth0 inst').errors), [
    "2: 'lvs_sync_daemon inst' needs a value",
    '2: lvs_sync_daemon without a VRRP instance (keepalived then runs the master and the backup daemon at once) is not supported by tierlb: name the instance the daemon follows',
  ]);
  const missing = withLine('lvs_sync_daemon eth0 VI_9 id 1');
  t.deepEqual(diags(missing.errors), ['2: lvs_sync_daemon: vrrp_instance VI_9 is not defined']);
  t.is(missing.config.lvsSync, undefined);
  const twice = withLine('lvs_sync_daemon eth0 VI_1 inst VI_2');
  t.deepEqual(diags(twice.warnings), ["2: lvs_sync_daemon 'inst VI_2': the instance is already VI_1, ignored"]);
  t.is(twice.config.lvsSync?.instance, 'VI_1');
});

test('still unsupported: an IPv6 group and unknown words are warned about and ignored', (t) => {
  const v6 = withLine('lvs_sync_daemon eth0 VI_1 group ff02::1:2 port 9000');
  t.deepEqual(diags(v6.errors), []);
  t.deepEqual(diags(v6.warnings), [
    '2: lvs_sync_daemon group ff02::1:2: an IPv6 sync group is not supported by tierlb (IPv4 only), ignored: the daemon uses the default group 224.0.0.81',
  ]);
  t.deepEqual(v6.config.lvsSync, { interface: 'eth0', instance: 'VI_1', syncid: 51, port: 9000 });
  // an unknown word is skipped alone: what follows it is read
  const unknown = withLine('lvs_sync_daemon eth0 VI_1 id 3 bogus ttl 2');
  t.deepEqual(diags(unknown.errors), []);
  t.deepEqual(diags(unknown.warnings), ["2: lvs_sync_daemon option 'bogus' is unknown to tierlb, ignored"]);
  t.deepEqual(unknown.config.lvsSync, { interface: 'eth0', instance: 'VI_1', syncid: 3, ttl: 2 });
});

test('a second lvs_sync_daemon is ignored with a warning; the first stays', (t) => {
  const r = load(`global_defs {
  lvs_sync_daemon eth0 VI_1 id 1
  lvs_sync_daemon eth1 VI_2 id 2 ttl 5
}
${INSTANCES}`);
  t.deepEqual(diags(r.errors), []);
  t.deepEqual(diags(r.warnings), [`3: the sync daemon is already given at ${FILE}:2: ignored`]);
  t.deepEqual(r.config.lvsSync, { interface: 'eth0', instance: 'VI_1', syncid: 1 });
});

test('lvs_sync_daemon_interface in a vrrp_instance: that instance, sync id 0, deprecated; the first declaration wins', (t) => {
  const inInstance = (extra: string) =>
    INSTANCES.replace('  virtual_router_id 52\n', `  virtual_router_id 52\n${extra}`);
  // VI_2's block starts on line 8; the keyword is on line 11 (after interface, virtual_router_id)
  const alone = load(inInstance('  lvs_sync_daemon_interface eth2\n'));
  t.deepEqual(diags(alone.errors), []);
  t.deepEqual(diags(alone.warnings), [
    "11: 'lvs_sync_daemon_interface' in vrrp_instance VI_2 is deprecated: write 'lvs_sync_daemon eth2 VI_2' in global_defs",
  ]);
  t.deepEqual(alone.config.lvsSync, { interface: 'eth2', instance: 'VI_2', syncid: 0 });
  t.deepEqual(diags(load(inInstance('  lvs_sync_daemon_interface\n')).errors), [
    "11: 'lvs_sync_daemon_interface' needs a value",
  ]);

  // global_defs first in the file: it wins
  const globalFirst = load(
    `global_defs {\n  lvs_sync_daemon eth0 VI_1 id 9\n}\n${inInstance('  lvs_sync_daemon_interface eth2\n')}`,
  );
  t.deepEqual(diags(globalFirst.warnings), [`14: the sync daemon is already given at ${FILE}:2: ignored`]);
  t.deepEqual(globalFirst.config.lvsSync, { interface: 'eth0', instance: 'VI_1', syncid: 9 });

  // the instance first: it wins, the later global_defs line is the one ignored
  const instanceFirst = load(
    `${inInstance('  lvs_sync_daemon_interface eth2\n')}global_defs {\n  lvs_sync_daemon eth0 VI_1 id 9\n}\n`,
  );
  t.deepEqual(diags(instanceFirst.warnings), [
    `17: the sync daemon is already given at ${FILE}:11: ignored`,
    "11: 'lvs_sync_daemon_interface' in vrrp_instance VI_2 is deprecated: write 'lvs_sync_daemon eth2 VI_2' in global_defs",
  ]);
  t.deepEqual(instanceFirst.config.lvsSync, { interface: 'eth2', instance: 'VI_2', syncid: 0 });

  // in two instances: the first
  const both = load(
    inInstance('  lvs_sync_daemon_interface eth2\n').replace(
      '  virtual_router_id 51\n',
      '  virtual_router_id 51\n  lvs_sync_daemon_interface eth3\n',
    ),
  );
  t.deepEqual(diags(both.warnings), [
    "4: 'lvs_sync_daemon_interface' in vrrp_instance VI_1 is deprecated: write 'lvs_sync_daemon eth3 VI_1' in global_defs",
    `12: the sync daemon is already given at ${FILE}:4: ignored`,
  ]);
  t.deepEqual(both.config.lvsSync, { interface: 'eth3', instance: 'VI_1', syncid: 0 });

  // global_defs does not take it (keepalived does not know it there)
  const inGlobal = withLine('lvs_sync_daemon_interface eth2');
  t.deepEqual(diags(inGlobal.warnings), [
    "2: 'lvs_sync_daemon_interface' in global_defs: it belongs in a vrrp_instance (deprecated there: use lvs_sync_daemon), ignored",
  ]);
  t.is(inGlobal.config.lvsSync, undefined);
});
