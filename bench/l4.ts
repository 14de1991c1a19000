/**
 * `npm run bench:l4`: packets/s and new connections/s through the director, side by side with kernel-only forwarding
 * (the same fwmark policy route, marked by a static mangle rule, no userspace) as the limit. Traffic stays inside
 * the run's namespaces; every run is bounded in packet count and time. Writes bench/results/l4.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from '../src/director/client.js';
import type { DatapathStats } from '../src/director/datapath.js';
import { adm, buildTopo, RS1, startDirector, stopDirector, type Topo, VIP } from '../test/netns-director-topo.js';

const PPS_PACKETS = Number(process.env.L4_BENCH_PACKETS ?? 200_000);
/** the director's --max-queue-len */
const QUEUE_MAXLEN = process.env.L4_QUEUE_MAXLEN ?? '8192';
const PPS_SECONDS = 4;
const CONN_SECONDS = 3;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Row {
  system: 'tierlb' | 'kernel-only';
  metric: 'pps' | 'new_conns_per_s';
  value: number;
  unit: string;
}

/** UDP receiver on rs1 (VIP:9000, DR) counting datagrams; prints "count seconds" from first to last packet. */
const RECEIVER = `
import socket, time, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
s.bind(('${VIP}', 9000)); s.settimeout(1.0)
print('ready', flush=True)
n = 0; first = last = None
deadline = time.time() + ${PPS_SECONDS + 6}
while time.time() < deadline:
    try: s.recv(64)
    except socket.timeout:
        if n: break
        continue
    last = time.time()
    if first is None: first = last
    n += 1
print(n, (last - first) if n > 1 else 0, flush=True)
`;

/** Sends PPS_PACKETS small UDP datagrams as fast as one Python thread can, for at most PPS_SECONDS. */
const SENDER = `
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(('${VIP}', 9000))
b = b'x' * 18
end = time.time() + ${PPS_SECONDS}
n = 0
while n < ${PPS_PACKETS}:
    for _ in range(1000):
        try: s.send(b)
        except OSError: pass
    n += 1000
    if time.time() > end: break
print(n, flush=True)
`;

/** TCP accept loop on rs1 (VIP:80). */
const ACCEPTOR = `
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('${VIP}', 80)); s.listen(4096)
print('ready', flush=True)
while True:
    c, _ = s.accept(); c.close()
`;

/** Opens and resets connections from 4 threads for CONN_SECONDS; prints completed handshakes per second. */
const CONNECTOR = `
import socket, struct, threading, time
end = time.time() + ${CONN_SECONDS}
counts = [0] * 4
def run(i):
    while time.time() < end:
        s = socket.socket(); s.settimeout(1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        try:
            s.connect(('${VIP}', 80)); counts[i] += 1
        except OSError: pass
        s.close()
t0 = time.time()
ts = [threading.Thread(target=run, args=(i,)) for i in range(4)]
[t.start() for t in ts]; [t.join() for t in ts]
print(sum(counts) / (time.time() - t0), flush=True)
`;

/** TCP counters of the connect test's two ends (nstat, absolute, history untouched). */
function tcpCounters(t: Topo): Record<string, number> {
  const read = (ns: string, prefix: string, names: string[]) => {
    const out = t.set.exec(ns, 'nstat', ['-asz', ...names], { allowFail: true });
    const r: Record<string, number> = {};
    for (const m of out.matchAll(/^(\w+)\s+(\d+)/gm)) r[`${prefix}.${m[1]}`] = Number(m[2]);
    return r;
  };
  return {
    ...read(t.rs1, 'rs1', ['TcpExtListenOverflows']),
    ...read(t.client, 'client', ['TcpExtTCPSynRetrans']),
  };
}

async function waitReady(p: import('node:child_process').ChildProcess): Promise<() => string> {
  let out = '';
  p.stdout?.on('data', (d) => {
    out += d.toString();
  });
  for (let i = 0; i < 100 && !out.includes('ready'); i++) await sleep(50);
  return () => out;
}

async function measure(t: Topo, system: Row['system']): Promise<Row[]> {
  const recv = t.set.spawn(t.rs1, '/usr/bin/python3', ['-c', RECEIVER]);
  const got = await waitReady(recv);
  t.set.exec(t.client, '/usr/bin/python3', ['-c', SENDER]);
  await new Promise((r) => recv.once('exit', r));
  const [n, secs] = got().replace('ready', '').trim().split(/\s+/).map(Number);
  const pps = secs > 0 ? n / secs : 0;
  const acc = t.set.spawn(t.rs1, '/usr/bin/python3', ['-c', ACCEPTOR]);
  await waitReady(acc);
  const before = tcpCounters(t);
  const cps = Number(t.set.exec(t.client, '/usr/bin/python3', ['-c', CONNECTOR]).trim());
  const after = tcpCounters(t);
  acc.kill('SIGKILL');
  process.stderr.write(`${system}: ${Math.round(pps)} pkt/s (${n} received), ${Math.round(cps)} new conn/s\n`);
  // what else caps a connect loop: the real server's accept backlog, SYNs the client had to send again
  const delta = Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - (before[k] ?? 0)]));
  process.stderr.write(`${system}: during the connect test ${JSON.stringify(delta)}\n`);
  return [
    { system, metric: 'pps', value: Math.round(pps), unit: 'packets/s' },
    { system, metric: 'new_conns_per_s', value: Math.round(cps), unit: 'connections/s' },
  ];
}

/** Static kernel-only DR: the same mark and policy route tierlb would install, set by a mangle rule. */
function kernelOnly(t: Topo, on: boolean): void {
  const ex = (args: string[]) => t.set.exec(t.director, args[0], args.slice(1), { allowFail: !on });
  const op = on ? '-A' : '-D';
  for (const [proto, port] of [
    ['udp', '9000'],
    ['tcp', '80'],
  ])
    ex([
      'iptables-nft',
      '-t',
      'mangle',
      op,
      'PREROUTING',
      '-d',
      VIP,
      '-p',
      proto,
      '--dport',
      port,
      '-j',
      'MARK',
      '--set-mark',
      '0x544c0100',
    ]);
  if (on) {
    ex(['ip', 'rule', 'add', 'pref', '1000', 'lookup', 'local']);
    ex(['ip', 'rule', 'del', 'pref', '0', 'lookup', 'local']);
    ex(['ip', 'rule', 'add', 'pref', '500', 'fwmark', '0x544c0100', 'lookup', '31000']);
    ex(['ip', 'route', 'add', 'default', 'via', RS1, 'dev', 'eth0', 'onlink', 'table', '31000']);
  } else {
    ex(['ip', 'rule', 'del', 'pref', '500', 'fwmark', '0x544c0100', 'lookup', '31000']);
    ex(['ip', 'route', 'flush', 'table', '31000']);
    ex(['ip', 'rule', 'add', 'pref', '0', 'lookup', 'local']);
    ex(['ip', 'rule', 'del', 'pref', '1000', 'lookup', 'local']);
  }
}

async function main(): Promise<void> {
  const t = buildTopo('b');
  const rows: Row[] = [];
  try {
    for (const k of [
      'net.ipv4.ip_forward=1',
      'net.ipv4.conf.all.send_redirects=0',
      'net.ipv4.conf.eth0.send_redirects=0',
    ])
      t.set.exec(t.director, 'sysctl', ['-qw', k]);
    kernelOnly(t, true);
    rows.push(...(await measure(t, 'kernel-only')));
    kernelOnly(t, false);

    const d = await startDirector(t, ['--max-queue-len', QUEUE_MAXLEN]);
    try {
      for (const [flag, svc] of [
        ['-u', `${VIP}:9000`],
        ['-t', `${VIP}:80`],
      ]) {
        await adm(t, ['-A', flag, svc, '-s', 'rr']);
        await adm(t, ['-a', flag, svc, '-r', RS1, '-g']);
      }
      rows.push(...(await measure(t, 'tierlb')));
      const st = JSON.parse(await request(t.socket, { op: 'stats' })) as DatapathStats;
      process.stderr.write(
        `tierlb: ${st.packets} packets handled, dropped ${st.dropped}, kernel queue ${JSON.stringify({ ...st.kernel, queues: undefined })}\n`,
      );
    } finally {
      await stopDirector(d.child);
    }
  } finally {
    t.dispose();
  }
  const out = join(dirname(fileURLToPath(import.meta.url)), 'results', 'l4.json');
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(rows, null, 2)}\n`);
  for (const metric of ['pps', 'new_conns_per_s'] as const) {
    const a = rows.find((r) => r.system === 'tierlb' && r.metric === metric)?.value ?? 0;
    const b = rows.find((r) => r.system === 'kernel-only' && r.metric === metric)?.value ?? 0;
    process.stdout.write(`${metric}: tierlb ${a}, kernel-only ${b}, ratio ${b ? (a / b).toFixed(2) : 'n/a'}\n`);
  }
  process.stdout.write(`wrote ${out}\n`);
}

main().catch((e) => {
  process.stderr.write(`bench:l4: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
