/**
 * `npm run bench:l4`: the director's data paths side by side, in one run, on the netns topology of
 * test/netns-director-topo.ts (DR to rs1):
 *   kernel-only      a static mangle mark + the same policy route tierlb installs (no userspace; the limit)
 *   tierlb-nfqueue   tierlb with --fastpath off: every packet through NFQUEUE and the engine (up to 16 queued
 *                    packets per recvmmsg)
 *   tierlb-nfqueue-recv1  the same with one packet per receive call (TIERLB_NFQ_BATCH=1, the receive before
 *                    recvmmsg): the batch receive's gain, in the same run
 *   tierlb-fastpath  tierlb with --fastpath on: established flows forwarded by the tc BPF program
 * Floods come from trafgen (Debian netsniff-ng, AF_PACKET) in the client namespace, one UDP flow to VIP:9000, so the
 * generator is not the bottleneck of the paths under test; delivery is counted at the real server (a raw-table DROP
 * rule's counter, so the receiver costs nothing). Metrics:
 *   full_rate_delivered   delivered / offered of FULL_RATE packets at the generator's full speed, and the pps seen
 *   burst_N_loss          loss of a burst of N packets at full speed (10k, 50k, 200k)
 *   paced_GAP_loss        loss of PACED packets sent with trafgen -t GAP
 *   cpu_us_per_pkt        whole-machine busy CPU per delivered packet during the full-rate flood, minus a null
 *                         baseline (the same flood dropped at the director's ingress), so the generator's cost cancels
 *   new_conns_per_s       TCP handshakes/s from a 4-thread connect loop (the SYN path)
 * Writes bench/results/l4.json (rows {system, metric, value, unit}) and prints ratios to kernel-only. The machine is
 * shared: CPU figures are noisy; compare within one run only.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from '../src/director/client.js';
import type { DatapathStats } from '../src/director/datapath.js';
import {
  adm,
  buildTopo,
  CLIENT,
  RS1,
  startDirector,
  stopDirector,
  type Topo,
  VIP,
} from '../test/netns-director-topo.js';

const FULL_RATE = Number(process.env.L4_BENCH_PACKETS ?? 500_000);
const BURSTS = [10_000, 50_000, 200_000];
const PACED = 50_000;
const GAPS = ['20us', '5us'];
const CONN_SECONDS = 3;
/** full-rate floods per system; the CPU figure is the lowest of them */
const CPU_RUNS = 3;
/** SYNs of the flood, and how long the download beside it runs */
const SYN_FLOOD = Number(process.env.L4_SYN_FLOOD ?? 1_000_000);
const DOWNLOAD_SECONDS = 5;
/** the director's --max-queue-len */
const QUEUE_MAXLEN = process.env.L4_QUEUE_MAXLEN ?? '8192';
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type System = 'kernel-only' | 'tierlb-nfqueue' | 'tierlb-nfqueue-recv1' | 'tierlb-fastpath' | 'null';

interface Row {
  system: System;
  metric: string;
  value: number;
  unit: string;
}

/** One UDP flow client:40000 → VIP:9000, 18 bytes of payload (a 60-byte frame). */
function trafgenConf(t: Topo): string {
  return `{
  eth(da=${t.macs.director}, sa=${t.macs.client}, type=0x0800),
  ipv4(saddr=${CLIENT}, daddr=${VIP}, ttl=64, proto=17),
  udp(sp=40000, dp=9000),
  fill(0x41, 18)
}
`;
}

let confPath = '';

/** trafgen from the client: `n` packets, at full speed or with a gap; returns the packets it sent. */
function flood(t: Topo, n: number, gap?: string): number {
  const args = [
    '--dev',
    'eth0',
    '--conf',
    confPath,
    '-P',
    '1',
    '-n',
    String(n),
    '-C',
    '--no-sock-mem',
    '--notouch-irq',
  ];
  if (gap) args.push('-t', gap);
  const out = t.set.exec(t.client, 'trafgen', args, { allowFail: true });
  const m = /(\d+) packets outgoing/.exec(out);
  return m ? Number(m[1]) : n;
}

/** Packets dropped (= delivered) by rs1's raw rule for VIP:9000 so far. */
function delivered(t: Topo): number {
  const out = t.set.exec(t.rs1, 'iptables-nft', ['-t', 'raw', '-L', 'PREROUTING', '-v', '-x', '-n']);
  const line = out.split('\n').find((l) => l.includes('DROP') && l.includes('dpt:9000'));
  return line ? Number(line.trim().split(/\s+/)[0]) : 0;
}

/** The counter once it stopped moving (queued packets drained). */
async function settled(t: Topo): Promise<number> {
  let last = -1;
  for (let i = 0; i < 50; i++) {
    await sleep(150);
    const n = delivered(t);
    if (n === last) return n;
    last = n;
  }
  return last;
}

/** Whole-machine busy and total jiffies from /proc/stat. */
function cpuJiffies(): { busy: number; total: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - f[3] - f[4], total };
}

/** Delivery of `n` packets; with `cpu`, the busy jiffies it took. */
async function run(
  t: Topo,
  n: number,
  gap?: string,
): Promise<{ offered: number; got: number; busy: number; secs: number }> {
  const before = await settled(t);
  const c0 = cpuJiffies();
  const start = process.hrtime.bigint();
  const offered = flood(t, n, gap);
  // the generator's own duration (packets still queued at the director are counted by settled(), not timed)
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  const got = (await settled(t)) - before;
  const c1 = cpuJiffies();
  return { offered, got, busy: c1.busy - c0.busy, secs };
}

/** TCP accept loop on rs1 (VIP:80) answering "ok"; VIP:9001 sends 64 KiB every 10 ms for DOWNLOAD_SECONDS. */
const ACCEPTOR = `
import socket, threading, time
def slow():
    d = socket.socket(); d.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    d.bind(('${VIP}', 9001)); d.listen(16)
    while True:
        c, _ = d.accept()
        end = time.time() + ${DOWNLOAD_SECONDS}
        try:
            while time.time() < end:
                c.sendall(b'd' * 65536); time.sleep(0.01)
        except OSError: pass
        c.close()
threading.Thread(target=slow, daemon=True).start()
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('${VIP}', 80)); s.listen(4096)
print('ready', flush=True)
while True:
    c, _ = s.accept()
    try: c.sendall(b'ok')
    except OSError: pass
    c.close()
`;

/** A legit client during the SYN flood: a request (connect, read "ok") every 20 ms for SECONDS; prints "tried ok". */
const LEGIT = (src: string, seconds: number) => `
import socket, time
end = time.time() + ${seconds}
tried = ok = 0
while time.time() < end:
    tried += 1
    s = socket.socket(); s.settimeout(1.0); s.bind(('${src}', 0))
    try:
        s.connect(('${VIP}', 80))
        if s.recv(8) == b'ok': ok += 1
    except OSError: pass
    s.close(); time.sleep(0.02)
print(tried, ok, flush=True)
`;

/** The paced download during the SYN flood; prints "bytes longest_gap_s". */
const DOWNLOAD = (src: string) => `
import socket, time
s = socket.socket(); s.settimeout(30); s.bind(('${src}', 0)); s.connect(('${VIP}', 9001))
last = time.time(); gap = 0.0; n = 0
while True:
    b = s.recv(1 << 20)
    now = time.time(); gap = max(gap, now - last); last = now
    if not b: break
    n += len(b)
print(n, round(gap, 3), flush=True)
`;

/** SYN flood: random sources and ports to VIP:80. */
function synConf(t: Topo): string {
  return `{
  eth(da=${t.macs.director}, sa=${t.macs.client}, type=0x0800),
  ipv4(saddr=drnd(), daddr=${VIP}, ttl=64, proto=6),
  tcp(sp=drnd(), dp=80, seq=drnd(), syn, win=65535)
}
`;
}

let synConfPath = '';

/** Collects a spawned process's stdout; resolves with it at exit. */
function output(p: import('node:child_process').ChildProcess): Promise<string> {
  let out = '';
  p.stdout?.on('data', (d) => {
    out += d.toString();
  });
  return new Promise((resolve) => p.once('exit', () => resolve(out.trim())));
}

/**
 * SYN_FLOOD SYNs at the generator's full speed while a legit client makes requests and another downloads: the
 * fraction of legit requests answered, and the download's longest gap between two reads (a stall when it is
 * hundreds of ms: its ACKs were lost at the director).
 */
async function synFlood(t: Topo, src: string, row: (m: string, v: number, u: string) => void): Promise<void> {
  const dl = output(t.set.spawn(t.client, '/usr/bin/python3', ['-c', DOWNLOAD(src)]));
  const legit = output(t.set.spawn(t.client, '/usr/bin/python3', ['-c', LEGIT(src, DOWNLOAD_SECONDS - 1)]));
  await sleep(500);
  const args = ['--dev', 'eth0', '--conf', synConfPath, '-P', '1', '-n', String(SYN_FLOOD), '-C'];
  const start = process.hrtime.bigint();
  t.set.exec(t.client, 'trafgen', [...args, '--no-sock-mem', '--notouch-irq'], { allowFail: true });
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  const [tried, ok] = (await legit).split(/\s+/).map(Number);
  const [bytes, gap] = (await dl).split(/\s+/).map(Number);
  row('syn_flood_offered_pps', Math.round(SYN_FLOOD / secs), 'packets/s');
  row('syn_flood_legit_answered', +(ok / Math.max(1, tried)).toFixed(4), 'fraction');
  row('syn_flood_download_longest_gap', gap, 's');
  row('syn_flood_download_mib', +(bytes / (1 << 20)).toFixed(1), 'MiB');
}

/**
 * Opens and resets connections from 4 threads for CONN_SECONDS from source address SRC (one per system, so no
 * system meets the TIME_WAIT entries another left on the real server); prints completed handshakes per second.
 */
const CONNECTOR = (src: string) => `
import socket, struct, threading, time
end = time.time() + ${CONN_SECONDS}
counts = [0] * 4
def run(i):
    while time.time() < end:
        s = socket.socket(); s.settimeout(1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        s.bind(('${src}', 0))
        try:
            s.connect(('${VIP}', 80)); counts[i] += 1
        except OSError: pass
        s.close()
t0 = time.time()
ts = [threading.Thread(target=run, args=(i,)) for i in range(4)]
[t.start() for t in ts]; [t.join() for t in ts]
print(sum(counts) / (time.time() - t0), flush=True)
`;

let nullBusyPerPkt = 0;
const CONNECT_SOURCES: Record<System, string> = {
  'kernel-only': '10.77.1.21',
  'tierlb-nfqueue': '10.77.1.22',
  'tierlb-fastpath': '10.77.1.23',
  null: '10.77.1.24',
  'tierlb-nfqueue-recv1': '10.77.1.25',
};

async function measure(t: Topo, system: System): Promise<Row[]> {
  const rows: Row[] = [];
  const row = (metric: string, value: number, unit: string) => rows.push({ system, metric, value, unit });
  // the flow exists before the measurements (its first packets open the connection)
  await run(t, 20);
  await sleep(300);
  for (const n of BURSTS) {
    const r = await run(t, n);
    row(`burst_${n / 1000}k_loss`, +(1 - r.got / r.offered).toFixed(4), 'fraction');
  }
  for (const gap of GAPS) {
    const r = await run(t, PACED, gap);
    row(`paced_${gap}_loss`, +(1 - r.got / r.offered).toFixed(4), 'fraction');
    row(`paced_${gap}_offered_pps`, Math.round(r.offered / r.secs), 'packets/s');
  }
  // three full-rate floods: delivery of the first (and the worst), CPU of the quietest (the machine is shared)
  const fulls = [];
  for (let i = 0; i < CPU_RUNS; i++) fulls.push(await run(t, FULL_RATE));
  const full = fulls[0];
  row('full_rate_delivered', +(full.got / full.offered).toFixed(4), 'fraction');
  row('full_rate_delivered_worst', +Math.min(...fulls.map((f) => f.got / f.offered)).toFixed(4), 'fraction');
  row('full_rate_delivered_pps', Math.round(full.got / full.secs), 'packets/s');
  const extra = Math.min(...fulls.map((f) => (f.busy - nullBusyPerPkt * f.offered) / Math.max(1, f.got)));
  row('cpu_us_per_pkt', +((extra / CLK_TCK) * 1e6).toFixed(3), 'µs/packet');

  const acc = t.set.spawn(t.rs1, '/usr/bin/python3', ['-c', ACCEPTOR]);
  let out = '';
  acc.stdout?.on('data', (d) => {
    out += d.toString();
  });
  for (let i = 0; i < 100 && !out.includes('ready'); i++) await sleep(50);
  const src = CONNECT_SOURCES[system];
  t.set.exec(t.client, 'ip', ['addr', 'add', `${src}/24`, 'dev', 'eth0']);
  const cps = Number(t.set.exec(t.client, '/usr/bin/python3', ['-c', CONNECTOR(src)]).trim());
  row('new_conns_per_s', Math.round(cps), 'connections/s');
  await synFlood(t, src, row);
  acc.kill('SIGKILL');
  process.stderr.write(`${system}: ${rows.map((r) => `${r.metric}=${r.value}`).join(' ')}\n`);
  return rows;
}

/** Static kernel-only DR: the same mark and policy route tierlb would install, set by a mangle rule. */
function kernelOnly(t: Topo, on: boolean): void {
  const ex = (args: string[]) => t.set.exec(t.director, args[0], args.slice(1), { allowFail: !on });
  const op = on ? '-A' : '-D';
  for (const [proto, port] of [
    ['udp', '9000'],
    ['tcp', '80'],
    ['tcp', '9001'],
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

/** The null baseline: the same flood dropped at the director's ingress (raw table), busy jiffies per packet. */
async function nullBaseline(t: Topo): Promise<number> {
  const rule = ['-t', 'raw', 'PREROUTING', '-d', VIP, '-p', 'udp', '--dport', '9000', '-j', 'DROP'];
  t.set.exec(t.director, 'iptables-nft', [rule[0], rule[1], '-I', ...rule.slice(2)]);
  try {
    let best = Number.POSITIVE_INFINITY;
    for (let i = 0; i < CPU_RUNS; i++) {
      await sleep(300);
      const c0 = cpuJiffies();
      const sent = flood(t, FULL_RATE);
      await sleep(300);
      const c1 = cpuJiffies();
      best = Math.min(best, (c1.busy - c0.busy) / Math.max(1, sent));
    }
    return best;
  } finally {
    t.set.exec(t.director, 'iptables-nft', [rule[0], rule[1], '-D', ...rule.slice(2)]);
  }
}

async function tierlb(t: Topo, system: System, fastpath: 'on' | 'off'): Promise<Row[]> {
  // the director inherits this process's environment
  if (system === 'tierlb-nfqueue-recv1') process.env.TIERLB_NFQ_BATCH = '1';
  else delete process.env.TIERLB_NFQ_BATCH;
  const d = await startDirector(t, ['--max-queue-len', QUEUE_MAXLEN, '--fastpath', fastpath]);
  try {
    for (const [flag, svc] of [
      ['-u', `${VIP}:9000`],
      ['-t', `${VIP}:80`],
      ['-t', `${VIP}:9001`],
    ]) {
      await adm(t, ['-A', flag, svc, '-s', 'rr']);
      await adm(t, ['-a', flag, svc, '-r', RS1, '-g']);
    }
    const rows = await measure(t, system);
    const st = JSON.parse(await request(t.socket, { op: 'stats' })) as DatapathStats;
    process.stderr.write(
      `${system}: ${st.packets} packets through NFQUEUE, kernel queue ${JSON.stringify({ ...st.kernel, queues: undefined })}, fast path ${JSON.stringify(st.fastpath?.counters ?? st.fastpath?.reason)}\n`,
    );
    return rows;
  } finally {
    await stopDirector(d.child);
  }
}

async function main(): Promise<void> {
  try {
    execFileSync('sh', ['-c', 'command -v trafgen'], { stdio: 'ignore' });
  } catch {
    throw new Error('trafgen not found: apt-get install netsniff-ng (scripts/install-deps.sh)');
  }
  const t = buildTopo('b');
  const rows: Row[] = [];
  try {
    confPath = join(t.dir, 'udp.cfg');
    writeFileSync(confPath, trafgenConf(t));
    synConfPath = join(t.dir, 'syn.cfg');
    writeFileSync(synConfPath, synConf(t));
    for (const k of [
      'net.ipv4.ip_forward=1',
      'net.ipv4.conf.all.send_redirects=0',
      'net.ipv4.conf.eth0.send_redirects=0',
    ])
      t.set.exec(t.director, 'sysctl', ['-qw', k]);
    // delivery is counted (and ended) at rs1's interface
    t.set.exec(t.rs1, 'iptables-nft', [
      '-t',
      'raw',
      '-A',
      'PREROUTING',
      '-d',
      VIP,
      '-p',
      'udp',
      '--dport',
      '9000',
      '-j',
      'DROP',
    ]);
    nullBusyPerPkt = await nullBaseline(t);
    rows.push({
      system: 'null',
      metric: 'cpu_us_per_pkt',
      value: +((nullBusyPerPkt / CLK_TCK) * 1e6).toFixed(3),
      unit: 'µs/packet',
    });
    kernelOnly(t, true);
    rows.push(...(await measure(t, 'kernel-only')));
    kernelOnly(t, false);
    rows.push(...(await tierlb(t, 'tierlb-nfqueue', 'off')));
    rows.push(...(await tierlb(t, 'tierlb-nfqueue-recv1', 'off')));
    rows.push(...(await tierlb(t, 'tierlb-fastpath', 'on')));
  } finally {
    t.dispose();
  }
  const out = join(dirname(fileURLToPath(import.meta.url)), 'results', 'l4.json');
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(rows, null, 2)}\n`);
  const metrics = [...new Set(rows.filter((r) => r.system === 'kernel-only').map((r) => r.metric))];
  for (const metric of metrics) {
    const k = rows.find((r) => r.system === 'kernel-only' && r.metric === metric)?.value ?? 0;
    const cells = (['tierlb-nfqueue', 'tierlb-nfqueue-recv1', 'tierlb-fastpath'] as const).map((s) => {
      const v = rows.find((r) => r.system === s && r.metric === metric)?.value ?? 0;
      return `${s} ${v}${metric.endsWith('loss') ? '' : ` (${k ? (v / k).toFixed(2) : 'n/a'}x)`}`;
    });
    process.stdout.write(`${metric}: kernel-only ${k}, ${cells.join(', ')}\n`);
  }
  process.stdout.write(`wrote ${out}\n`);
}

main().catch((e) => {
  process.stderr.write(`bench:l4: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
