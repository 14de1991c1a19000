/**
 * Connection sync on a real segment: three director namespaces on one bridge. lb1 runs the master sync daemon
 * (syncid 7), lb2 a backup with syncid 7, lb3 a backup with syncid 9. Connections opened through lb1's engine are
 * multicast to 224.0.0.81:8848 and appear in lb2's connection table; lb3 drops the messages as another syncid's.
 */
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { NetnsSet, runPrefix } from '../src/lab/netns.js';

const helper = fileURLToPath(new URL('./netns-sync-peer.ts', import.meta.url));
const cwd = fileURLToPath(new URL('..', import.meta.url));

let set: NetnsSet;
const ns: Record<'lb1' | 'lb2' | 'lb3', string> = { lb1: '', lb2: '', lb3: '' };

test.before(() => {
  set = new NetnsSet(runPrefix('s'));
  const sw = set.add('sw');
  set.exec(sw, 'ip', ['link', 'add', 'br0', 'type', 'bridge']);
  set.exec(sw, 'ip', ['link', 'set', 'br0', 'up']);
  (['lb1', 'lb2', 'lb3'] as const).forEach((name, i) => {
    const n = set.add(name);
    ns[name] = n;
    set.veth({ ns: n, name: 'eth0' }, { ns: sw, name: `p${i}` });
    set.exec(sw, 'ip', ['link', 'set', `p${i}`, 'master', 'br0', 'up']);
    set.exec(n, 'ip', ['addr', 'add', `10.82.0.${i + 1}/24`, 'dev', 'eth0']);
    set.exec(n, 'ip', ['link', 'set', 'eth0', 'up']);
  });
});

test.after.always(() => {
  set?.dispose();
});

interface Peer {
  child: ChildProcess;
  ask(cmd: string): Promise<Record<string, unknown>>;
  ready: Promise<Record<string, unknown>>;
}

function peer(name: keyof typeof ns, role: string, syncid: number): Peer {
  const child = set.spawn(ns[name], process.execPath, ['--import', 'tsx', helper, role, 'eth0', String(syncid)], {
    cwd,
  });
  let stderr = '';
  child.stderr?.on('data', (d) => {
    stderr += d;
  });
  const pending: ((o: Record<string, unknown>) => void)[] = [];
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (l) => pending.shift()?.(JSON.parse(l)));
  const next = () =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${name}: no answer; stderr ${stderr}`)), 15000);
      pending.push((o) => {
        clearTimeout(timer);
        resolve(o);
      });
    });
  const ready = next();
  return {
    child,
    ready,
    ask: (cmd) => {
      const p = next();
      child.stdin?.write(`${cmd}\n`);
      return p;
    },
  };
}

test.serial('the backup with the same syncid gains the master connections over multicast', async (t) => {
  const backup = peer('lb2', 'backup', 7);
  const other = peer('lb3', 'backup', 9);
  t.like(await backup.ready, { ready: true, daemons: [{ state: 'backup', mcastIfn: 'eth0', syncid: 7 }] });
  await other.ready;
  const master = peer('lb1', 'master', 7);
  t.like(await master.ready, { daemons: [{ state: 'master', mcastIfn: 'eth0', syncid: 7 }] });
  // the backups joined the sync group on their interface
  t.regex(set.exec(ns.lb2, 'ip', ['maddr', 'show', 'dev', 'eth0']), /224\.0\.0\.81/);

  // watch the segment from the backup's side
  const dump = set.spawn(ns.lb2, 'tcpdump', ['-i', 'eth0', '-n', '-v', '-l', '-c', '2', 'udp', 'port', '8848']);
  let wire = '';
  dump.stdout?.on('data', (d) => {
    wire += d;
  });
  await new Promise<void>((resolve) => {
    dump.stderr?.on('data', (d) => {
      if (String(d).includes('listening on')) resolve();
    });
  });
  const captured = new Promise((r) => dump.once('exit', r));

  // 50 connections: one full message (39 entries at MTU 1500) goes at once, the rest on flush
  const sent = await master.ask('conns 50');
  t.like(sent, { stats: { messages: 1, conns: 39 } });
  t.like(await master.ask('flush'), { stats: { messages: 2, conns: 50 } });
  await captured;
  // multicast to the sync group and port, TTL 1, from the master's interface address
  t.regex(wire, /ttl 1,/);
  t.regex(wire, /10\.82\.0\.1\.\d+ > 224\.0\.0\.81\.8848: UDP, length 1412/);
  const want = ((await master.ask('dump')).conns as string[]).filter((c) => c.endsWith('ESTABLISHED'));
  t.is(want.length, 50);

  let got: Record<string, unknown> = {};
  for (let i = 0; i < 100; i++) {
    got = await backup.ask('dump');
    if ((got.conns as string[]).length >= 50) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  t.deepEqual(got.conns, want);
  t.like(got.counters, { messages: 2, accepted: 2, installed: { created: 50 }, dropped: {} });

  const dropped = await other.ask('dump');
  t.deepEqual(dropped.conns, []);
  t.like(dropped.counters, { messages: 2, dropped: { syncid: 2 } });

  for (const p of [master, backup, other]) p.child.kill('SIGKILL');
});
