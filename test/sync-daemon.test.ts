/** The sync daemon control (--start-daemon / --stop-daemon / -L --daemon) over real UDP on the loopback. */
import test from 'ava';
import { pino } from 'pino';
import { daemonMaxLen, SYNC_MCAST_PORT } from '../src/ha/sync/codec.js';
import { SyncDaemonControl } from '../src/ha/sync/daemon.js';
import { MemorySyncTarget } from '../src/ha/sync/target.js';
import { daemonLines } from '../src/l4/adm/format.js';

const quiet = pino({ level: 'silent' });
const lo = (name: string) => (name === 'lo' ? { addr: '127.0.0.1', mtu: 65536 } : undefined);

test('start, list, errors, stop', async (t) => {
  const d = new SyncDaemonControl({ target: new MemorySyncTarget(), log: quiet, iface: lo });
  t.deepEqual(d.list(), []);
  const port = 20000 + Math.floor(Math.random() * 20000);
  await d.start({ state: 'backup', mcastIfn: 'lo', syncid: 9, peers: ['127.0.0.1'], port });
  await d.start({ state: 'master', mcastIfn: 'lo', syncid: 1, peers: ['127.0.0.1'], port: port + 1 });
  // what the kernel reports: the group and TTL defaults, the port given, maxlen 1500 - 28 for a master and the
  // interface MTU (65536 here, clamped to 65535) less 28 for a backup
  const group = '224.0.0.81';
  t.deepEqual(d.list(), [
    { state: 'master', mcastIfn: 'lo', syncid: 1, maxLen: 1472, group, port: port + 1, ttl: 1 },
    { state: 'backup', mcastIfn: 'lo', syncid: 9, maxLen: 65507, group, port, ttl: 1 },
  ]);
  t.is(
    daemonLines(d.list()),
    `master sync daemon (mcast=lo, syncid=1, maxlen=1472, group=224.0.0.81, port=${port + 1}, ttl=1)\n` +
      `backup sync daemon (mcast=lo, syncid=9, maxlen=65507, group=224.0.0.81, port=${port}, ttl=1)\n`,
  );
  await t.throwsAsync(d.start({ state: 'master', mcastIfn: 'lo', syncid: 1 }), {
    message: 'Daemon has already run',
  });
  await d.stop('master');
  await t.throwsAsync(d.stop('master'), { message: 'No daemon is running' });
  await t.throwsAsync(d.start({ state: 'master', mcastIfn: 'nosuch0', syncid: 1 }), { message: 'No such device' });
  await t.throwsAsync(d.start({ state: 'master', mcastIfn: 'lo', syncid: 256 }), { message: 'Invalid argument' });
  // IPv4 only, as a kernel without IPv6 IPVS: ipvs_strerror's EAFNOSUPPORT text
  await t.throwsAsync(d.start({ state: 'master', mcastIfn: 'lo', syncid: 1, group: 'ff02::1:2' }), {
    code: 'EAFNOSUPPORT',
    message: 'Operation not supported with specified address family',
  });
  for (const bad of [{ group: '10.0.0.1' }, { group: 'nonsense' }, { port: 0 }, { port: 65536 }, { ttl: 256 }])
    await t.throwsAsync(d.start({ state: 'master', mcastIfn: 'lo', syncid: 1, ...bad }), { code: 'EINVAL' });
  t.is(d.master, undefined);
  await d.stopAll();
  t.deepEqual(d.list(), []);
  t.is(SYNC_MCAST_PORT, 8848);
});

test('unicast: connections sent by the master reach the backup target', async (t) => {
  const target = new MemorySyncTarget();
  const d = new SyncDaemonControl({ target, log: quiet, iface: lo });
  const port = 20000 + Math.floor(Math.random() * 20000);
  await d.start({ state: 'backup', mcastIfn: 'lo', syncid: 3, peers: ['127.0.0.1'], port });
  await d.start({ state: 'master', mcastIfn: 'lo', syncid: 3, peers: ['127.0.0.1'], port });
  const master = d.master;
  if (!master) throw new Error('no master');
  for (let i = 0; i < 5; i++)
    master.packet({
      protocol: 17,
      family: 4,
      caddr: '192.0.2.1',
      cport: 5000 + i,
      vaddr: '10.0.0.1',
      vport: 53,
      daddr: '10.0.1.1',
      dport: 53,
      flags: 0,
      state: 0,
      timeoutMs: 300_000,
      fwmark: 0,
      inpkts: 3,
      controlledBy: null,
    });
  master.flush();
  for (let i = 0; i < 50 && target.entries.size < 5; i++) await new Promise((r) => setTimeout(r, 20));
  t.is(target.entries.size, 5);
  t.deepEqual(d.backup?.counters.installed, { created: 5 });
  await d.stopAll();
});

test('sync_maxlen as start_sync_thread settles it', (t) => {
  // defaults: a master sends 1500-byte datagrams whatever the MTU; a backup takes its MTU, at least 1500
  t.is(daemonMaxLen('master', 9000), 1472);
  t.is(daemonMaxLen('master', 1280), 1472);
  t.is(daemonMaxLen('backup', 9000), 8972);
  t.is(daemonMaxLen('backup', 1280), 1472);
  t.is(daemonMaxLen('backup', 65536), 65507);
  // --sync-maxlen: 1..65507 for a master, 1024..65507 for a backup
  t.is(daemonMaxLen('master', 1500, 100), 100);
  t.is(daemonMaxLen('master', 1500, 1), 1);
  t.is(daemonMaxLen('backup', 1500, 100), 1024);
  t.is(daemonMaxLen('backup', 1500, 9000), 9000);
  t.is(daemonMaxLen('master', 1500, 65535), 65507);
});
