/**
 * Connection sync on a real segment: three director namespaces on one bridge, each daemon started from an ipvsadm
 * command line. lb1 runs the master sync daemon (syncid 7), lb2 a backup with syncid 7. Connections opened through
 * lb1's engine are multicast to the sync group and port and appear in lb2's connection table.
 * - with ipvsadm's defaults (224.0.0.81:8848, TTL 1) lb3, a backup with syncid 9, drops the messages as another
 *   syncid's;
 * - with --mcast-group 239.82.0.7 --mcast-port 9123 --mcast-ttl 2 on both ends the messages go there, and lb3, a
 *   backup with syncid 7 left on the default group and port, receives nothing.
 */
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import test, { type ExecutionContext } from 'ava';
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

function peer(name: keyof typeof ns, adm: string): Peer {
  const child = set.spawn(ns[name], process.execPath, ['--import', 'tsx', helper, ...adm.split(' ')], { cwd });
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

interface Scenario {
  /** the --mcast-group / --mcast-port / --mcast-ttl options of lb1 and lb2 ('' for ipvsadm's defaults) */
  opts: string;
  group: string;
  port: number;
  ttl: number;
  /** lb3's daemon */
  other: string;
  /** what lb3's backup counts */
  otherCounters: Record<string, unknown>;
}

async function syncOver(t: ExecutionContext, s: Scenario): Promise<void> {
  const start = (state: string, syncid: number) =>
    `--start-daemon ${state} --mcast-interface eth0 --syncid ${syncid}${s.opts ? ` ${s.opts}` : ''}`;
  const backup = peer('lb2', start('backup', 7));
  const other = peer('lb3', s.other);
  // what -L --daemon shows: the group, port and TTL in force, and the maxlen the kernel settles (lb2's MTU 1500 - 28
  // for the backup, 1500-byte datagrams for the master)
  const settled = { group: s.group, port: s.port, ttl: s.ttl };
  t.like(await backup.ready, {
    ready: true,
    daemons: [{ state: 'backup', mcastIfn: 'eth0', syncid: 7, maxLen: 1472, ...settled }],
  });
  await other.ready;
  const master = peer('lb1', start('master', 7));
  t.like(await master.ready, { daemons: [{ state: 'master', mcastIfn: 'eth0', syncid: 7, maxLen: 1472, ...settled }] });
  // the backup joined its sync group on its interface
  const group = s.group.replaceAll('.', '\\.');
  t.regex(set.exec(ns.lb2, 'ip', ['maddr', 'show', 'dev', 'eth0']), new RegExp(`inet +${group}\\b`));

  // watch the segment from the backup's side
  const dump = set.spawn(ns.lb2, 'tcpdump', ['-i', 'eth0', '-n', '-v', '-l', '-c', '2', 'udp', 'port', String(s.port)]);
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

  // 50 connections: one full message (40 entries of 36 bytes in 1472) goes at once, the rest on flush
  const sent = await master.ask('conns 50');
  t.like(sent, { stats: { messages: 1, conns: 40 } });
  t.like(await master.ask('flush'), { stats: { messages: 2, conns: 50 } });
  await captured;
  // multicast to the sync group and port with the TTL asked for, from the master's interface address
  t.deepEqual(
    [...wire.matchAll(/ttl (\d+),/g)].map((m) => Number(m[1])),
    [s.ttl, s.ttl],
  );
  t.regex(
    wire,
    new RegExp(
      `10\\.82\\.0\\.1\\.\\d+ > ${group}\\.${s.port}: UDP, length 1448\\n[^]*> ${group}\\.${s.port}: UDP, length 368`,
    ),
  );
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
  t.deepEqual(dropped.counters, s.otherCounters);

  for (const p of [master, backup, other]) p.child.kill('SIGKILL');
}

test.serial('the backup with the same syncid gains the master connections over multicast', async (t) => {
  await syncOver(t, {
    opts: '',
    group: '224.0.0.81',
    port: 8848,
    ttl: 1,
    other: '--start-daemon backup --mcast-interface eth0 --syncid 9',
    otherCounters: { messages: 2, accepted: 0, dropped: { syncid: 2 }, skipped: {}, installed: {} },
  });
});

test.serial(
  '--mcast-group, --mcast-port and --mcast-ttl: the messages go there, the default group gets none',
  async (t) => {
    await syncOver(t, {
      opts: '--mcast-group 239.82.0.7 --mcast-port 9123 --mcast-ttl 2',
      group: '239.82.0.7',
      port: 9123,
      ttl: 2,
      other: '--start-daemon backup --mcast-interface eth0 --syncid 7',
      otherCounters: { messages: 0, accepted: 0, dropped: {}, skipped: {}, installed: {} },
    });
  },
);
