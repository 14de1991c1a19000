/**
 * ipvsadm's output formats, byte for byte, against test/golden/ (see test/golden/README.md for how those files were
 * derived from ipvsadm's printf formats, independently of this code).
 */
import { readFileSync } from 'node:fs';
import test from 'ava';
import { runAdm } from '../src/l4/adm/run.js';
import type { AdmTarget } from '../src/l4/adm/target.js';
import { FIXTURE_CONNS, fixture } from './adm-fixture.js';

const golden = (name: string) => readFileSync(new URL(`golden/${name}`, import.meta.url), 'utf8');

function listing(t: AdmTarget, args: string): string {
  const r = runAdm(args.split(' '), t);
  if (r.code !== 0 || r.stderr !== '') throw new Error(`ipvsadm ${args}: ${r.code} ${r.stderr}`);
  return r.stdout;
}

const CASES: [string, string, boolean][] = [
  ['-L -n', 'adm-list.txt', false],
  ['-l -n', 'adm-list.txt', false],
  ['-Ln', 'adm-list.txt', false],
  ['--list --numeric', 'adm-list.txt', false],
  ['-L -n -t 10.0.0.1:80', 'adm-list-service.txt', false],
  ['-L -n --thresholds', 'adm-list-thresholds.txt', false],
  ['-L -n --persistent-conn', 'adm-list-persistent-conn.txt', false],
  ['-L -n --tun-info', 'adm-list-tun-info.txt', false],
  ['-L -n --stats', 'adm-list-stats.txt', true],
  ['-L -n --stats --exact', 'adm-list-stats-exact.txt', true],
  ['-L -n --rate', 'adm-list-rate.txt', true],
  ['-L -n --rate --exact', 'adm-list-rate-exact.txt', true],
  ['-S -n', 'adm-save.txt', false],
  ['-S', 'adm-save.txt', false],
  ['--save', 'adm-save.txt', false],
];

for (const [args, file, stats] of CASES) {
  test(`ipvsadm ${args} matches ${file}`, (t) => {
    t.is(listing(fixture(stats), args), golden(file));
  });
}

test('-L without -n prints the same (numeric) listing; no arguments at all lists too', (t) => {
  t.is(listing(fixture(), '-L'), golden('adm-list.txt'));
  t.is(runAdm([], fixture()).stdout, golden('adm-list.txt'));
});

function connTarget(): AdmTarget {
  const base = fixture();
  return {
    table: base.table,
    getTimeouts: () => base.getTimeouts(),
    setTimeouts: () => {},
    connections: () => FIXTURE_CONNS,
  };
}

test('-L -n -c lists the connections and templates', (t) => {
  t.is(listing(connTarget(), '-L -n -c'), golden('adm-conn.txt'));
  t.is(listing(connTarget(), '-lnc'), golden('adm-conn.txt'));
});

test('-L -n -c --persistent-conn adds the pe columns to the title', (t) => {
  t.is(listing(connTarget(), '-L -n -c --persistent-conn'), golden('adm-conn-persistent.txt'));
});

test('-L --timeout', (t) => {
  t.is(listing(fixture(), '-L --timeout'), golden('adm-timeout.txt'));
});

test('--nosort keeps the table order: services as added, real servers newest first', (t) => {
  const out = listing(fixture(), '-L -n --nosort').split('\n');
  t.is(out[3], 'TCP  [2001:db8::1]:443 rr');
  t.is(out[4], '  -> [2001:db8::10]:8443          Masq    5      12         3         ');
  t.is(out[5], '  -> [2001:db8::11]:443           Route   1      0          0         ');
  t.is(out[6], 'FWM  10000 rr');
});

test('--daemon lists the sync daemons the target reports', (t) => {
  const base = fixture();
  const target: AdmTarget = {
    table: base.table,
    getTimeouts: () => base.getTimeouts(),
    setTimeouts: () => {},
    connections: () => [],
    daemons: () => [
      { state: 'master', mcastIfn: 'eth0', syncid: 5 },
      { state: 'backup', mcastIfn: 'eth1', syncid: 0 },
    ],
  };
  t.is(
    listing(target, '-L --daemon'),
    'master sync daemon (mcast=eth0, syncid=5)\nbackup sync daemon (mcast=eth1, syncid=0)\n',
  );
  t.is(listing(fixture(), '-L --daemon'), '');
  // a kernel >= 4.3 also reports maxlen, group, port and ttl: list_daemon prints each one that is set
  const full: AdmTarget = {
    ...target,
    daemons: () => [
      { state: 'master', mcastIfn: 'eth0', syncid: 5, maxLen: 1472, group: '239.1.2.3', port: 9000, ttl: 4 },
      { state: 'backup', mcastIfn: 'eth1', syncid: 0, maxLen: 8972, group: 'ff02::1:2', port: 8848, ttl: 1 },
    ],
  };
  t.is(
    listing(full, '-L --daemon'),
    'master sync daemon (mcast=eth0, syncid=5, maxlen=1472, group=239.1.2.3, port=9000, ttl=4)\n' +
      'backup sync daemon (mcast=eth1, syncid=0, maxlen=8972, group=ff02::1:2, port=8848, ttl=1)\n',
  );
});
