/**
 * `tierlb adm --start-daemon … --mcast-group G --mcast-port P --mcast-ttl T --sync-maxlen N` end to end on the
 * loopback: the command line as the director's worker answers it (WorkerHa.adm, then the ipvsadm runner), the
 * daemon's datagrams as a raw socket sees them (destination group and port, TTL), the backup that joined the group,
 * and `-L --daemon` as ipvsadm 1.31 prints it from a Linux >= 4.3 kernel.
 */
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import test from 'ava';
import { WorkerHa } from '../src/director/worker-ha.js';
import { startFromAdm } from '../src/ha/sync/daemon.js';
import { parseCommand } from '../src/l4/adm/parse.js';
import { handleAdmRequest } from '../src/l4/adm/server.js';
import { Forwarder } from '../src/l4/datapath/forward.js';
import { Engine } from '../src/l4/engine.js';

const parse = (line: string) => {
  const ce = parseCommand(line.split(' '), { out: () => {}, err: () => {} });
  if (!ce) throw new Error(`no command: ${line}`);
  return ce;
};

test('parse → daemon options: every sync option reaches the daemon, the ones not given stay unset', (t) => {
  const line =
    '--start-daemon master --mcast-interface eth1 --syncid 7 --mcast-group 239.1.2.3 --mcast-port 9000 ' +
    '--mcast-ttl 4 --sync-maxlen 1200';
  t.deepEqual(startFromAdm(parse(line).daemon), {
    state: 'master',
    mcastIfn: 'eth1',
    syncid: 7,
    maxLen: 1200,
    group: '239.1.2.3',
    port: 9000,
    ttl: 4,
  });
  // ipvsadm's defaults: eth0, syncid 0; group, port, TTL and maxlen are the kernel's to settle
  t.deepEqual(startFromAdm(parse('--start-daemon backup').daemon), { state: 'backup', mcastIfn: 'eth0', syncid: 0 });
  // an IPv6 group is parsed (ipvsadm accepts it) in inet_ntop form; the daemon refuses it (below)
  t.like(startFromAdm(parse('--start-daemon backup --mcast-group FF02:0::1:2').daemon), { group: 'ff02::1:2' });
});

/** Datagrams to `group` seen on the loopback by a raw UDP socket: IP TTL, destination port, payload length. */
function capture(group: string) {
  const raw = createRequire(import.meta.url)('raw-socket');
  const sock = raw.createSocket({ addressFamily: raw.AddressFamily.IPv4, protocol: 17 });
  const seen: { ttl: number; src: string; dport: number; len: number }[] = [];
  sock.on('message', (b: Buffer) => {
    if (b.subarray(16, 20).join('.') !== group) return;
    const ihl = (b[0] & 15) * 4;
    seen.push({
      ttl: b[8],
      src: b.subarray(12, 16).join('.'),
      dport: b.readUInt16BE(ihl + 2),
      len: b.length - ihl - 8,
    });
  });
  return { seen, close: () => sock.close() };
}

function director() {
  const engine = new Engine();
  const id = { kind: 'tcp', family: 4, addr: '10.83.0.100', port: 80 } as const;
  engine.table.addService({ id, sched: 'rr', flags: 0, timeout: 0, netmask: 0xffffffff });
  engine.table.addDest(id, { addr: '10.83.1.11', port: 80, fwd: 'route', weight: 1, uThreshold: 0, lThreshold: 0 });
  const ha = new WorkerHa(engine, new Forwarder(engine, { verdict: () => {}, sendRaw: () => true }));
  // what the data-path worker does with an admin-socket line (src/l4/datapath/worker.ts)
  const adm = async (line: string) => {
    const req = JSON.stringify({ argv: line.split(' ') });
    return JSON.parse((await ha.adm(req)) ?? handleAdmRequest(req, engine)) as {
      code: number;
      stdout: string;
      stderr: string;
    };
  };
  return { engine, ha, adm };
}

test('adm --start-daemon with a group, port and TTL: the master sends there, the backup joined and installs', async (t) => {
  const { engine, ha, adm } = director();
  const group = `239.83.${Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`;
  const port = 20000 + Math.floor(Math.random() * 20000);
  const wire = capture(group);
  t.teardown(() => wire.close());
  t.teardown(() => ha.sync.stopAll());
  const opts = `--mcast-interface lo --syncid 4 --mcast-group ${group} --mcast-port ${port}`;
  t.deepEqual(await adm(`--start-daemon backup ${opts}`), { code: 0, stdout: '', stderr: '' });
  t.deepEqual(await adm(`--start-daemon master ${opts} --mcast-ttl 3 --sync-maxlen 200`), {
    code: 0,
    stdout: '',
    stderr: '',
  });
  // the backup joined the group on lo
  t.regex(execFileSync('ip', ['maddr', 'show', 'dev', 'lo'], { encoding: 'utf8' }), new RegExp(`inet +${group}\\b`));
  // the kernel's settled values: maxlen as given for the master, lo's MTU (65536, clamped to 65535) less 28 for the
  // backup; the backup's TTL is the default
  t.is(
    (await adm('-L --daemon')).stdout,
    `master sync daemon (mcast=lo, syncid=4, maxlen=200, group=${group}, port=${port}, ttl=3)\n` +
      `backup sync daemon (mcast=lo, syncid=4, maxlen=65507, group=${group}, port=${port}, ttl=1)\n`,
  );

  const master = ha.sync.master;
  if (!master) throw new Error('no master');
  // 6 connections of 36 bytes each: 5 fill a 200-byte message (8 + 5 × 36 = 188), the 6th goes on flush
  for (let i = 0; i < 6; i++)
    master.packet({
      protocol: 6,
      family: 4,
      caddr: '192.0.2.9',
      cport: 40000 + i,
      vaddr: '10.83.0.100',
      vport: 80,
      daddr: '10.83.1.11',
      dport: 80,
      flags: 0,
      state: 1,
      timeoutMs: 900_000,
      fwmark: 0,
      inpkts: 3,
      controlledBy: null,
    });
  master.flush();
  for (let i = 0; i < 100 && engine.connections().length < 6; i++) await new Promise((r) => setTimeout(r, 20));
  t.deepEqual(
    engine
      .connections()
      .map((c) => c.cport)
      .sort(),
    [40000, 40001, 40002, 40003, 40004, 40005],
  );
  t.deepEqual(ha.sync.backup?.counters.installed, { created: 6 });
  t.deepEqual(wire.seen, [
    { ttl: 3, src: '127.0.0.1', dport: port, len: 188 },
    { ttl: 3, src: '127.0.0.1', dport: port, len: 44 },
  ]);

  t.deepEqual(await adm('--stop-daemon master'), { code: 0, stdout: '', stderr: '' });
  t.is(
    (await adm('-L --daemon')).stdout,
    `backup sync daemon (mcast=lo, syncid=4, maxlen=65507, group=${group}, port=${port}, ttl=1)\n`,
  );
});

test('adm --start-daemon: defaults as the kernel settles them; an IPv6 group is refused as ipvsadm reports it', async (t) => {
  const { ha, adm } = director();
  t.teardown(() => ha.sync.stopAll());
  t.deepEqual(await adm('--start-daemon master --mcast-interface lo --mcast-group ff02::1:2'), {
    code: 255,
    stdout: '',
    stderr: 'Operation not supported with specified address family\n',
  });
  t.is((await adm('-L --daemon')).stdout, '');
  t.like(await adm('--start-daemon master --mcast-interface lo --syncid 2'), { code: 0 });
  t.is(
    (await adm('-L --daemon')).stdout,
    'master sync daemon (mcast=lo, syncid=2, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n',
  );
  t.deepEqual(await adm('--start-daemon master --mcast-interface lo'), {
    code: 255,
    stdout: '',
    stderr: 'Daemon has already run\n',
  });
  // a bad option never reaches the daemon: ipvsadm's parse error
  t.deepEqual(await adm('--start-daemon backup --mcast-interface lo --mcast-group 10.0.0.1'), {
    code: 2,
    stdout: '',
    stderr: "invalid IPv4 mcast-group `10.0.0.1'\n",
  });
});
