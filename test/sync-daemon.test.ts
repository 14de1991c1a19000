/** The sync daemon control (--start-daemon / --stop-daemon / -L --daemon) over real UDP on the loopback. */
import test from 'ava';
import { pino } from 'pino';
import { SYNC_MCAST_PORT } from '../src/ha/sync/codec.js';
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
  t.deepEqual(d.list(), [
    { state: 'master', mcastIfn: 'lo', syncid: 1 },
    { state: 'backup', mcastIfn: 'lo', syncid: 9 },
  ]);
  t.is(daemonLines(d.list()), 'master sync daemon (mcast=lo, syncid=1)\nbackup sync daemon (mcast=lo, syncid=9)\n');
  await t.throwsAsync(d.start({ state: 'master', mcastIfn: 'lo', syncid: 1 }), {
    message: 'Daemon has already run',
  });
  await d.stop('master');
  await t.throwsAsync(d.stop('master'), { message: 'No daemon is running' });
  await t.throwsAsync(d.start({ state: 'master', mcastIfn: 'nosuch0', syncid: 1 }), { message: 'No such device' });
  await t.throwsAsync(d.start({ state: 'master', mcastIfn: 'lo', syncid: 256 }), { message: 'Invalid argument' });
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
