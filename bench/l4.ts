/**
 * `npm run bench:l4`: the L4 tier's data path side by side, in one run, in the run's own namespaces (client, director,
 * two real servers on a bridge; DR). Paths:
 *   null            the flood dropped at the director's ingress (tc): the generator's and the links' own cost
 *   kernel-only     a static mangle MARK + the same fwmark policy route tierlb installs, no userspace
 *   tierlb-nfqueue  the director with every packet through NFQUEUE (--fastpath off)
 *   tierlb-fastpath the director with established flows forwarded by its tc BPF program (--fastpath on)
 * Load: trafgen (AF_PACKET) from the client; delivery counted at rs1's interface (rx_packets), where a raw-table rule
 * drops the packets so the receiver costs nothing. Measured per path:
 *   1. one UDP flow: bursts of 10k/50k/200k packets at full speed, paced rates (-t GAP), and the generator's full rate:
 *      delivered / offered;
 *   2. CPU per delivered packet above the null path (busy ticks of the whole machine, /proc/stat), so the generator's
 *      cost cancels;
 *   3. new TCP connections/s through the VIP (SYN path) and the SYNs the clients had to send again;
 *   4. a SYN flood from random sources at full speed while legit clients open connections and one download runs:
 *      legit requests answered, and the longest stall of the download.
 * Writes bench/results/l4.json (rows {system, metric, value, unit}) and prints each figure's ratio to kernel-only.
 * Bounded: every send has a packet count and every wait a deadline. Needs root, trafgen (scripts/install-deps.sh).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from '../src/director/client.js';
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
import { haveTrafgen, synFloodConfig, trafgen, udpFlowConfig } from './lib/trafgen.js';

const env = (k: string, d: number) => Number(process.env[k] ?? d);
const BURSTS = [10_000, 50_000, 200_000];
const GAPS = ['20us', '10us', '5us'];
const PACED_PACKETS = env('L4_PACED_PACKETS', 100_000);
const FULL_PACKETS = env('L4_FULL_PACKETS', 400_000);
const SYN_FLOOD = env('L4_SYN_FLOOD', 1_000_000);
const CONN_SECONDS = 3;
const UDP_PORT = 9000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type System = 'null' | 'kernel-only' | 'tierlb-nfqueue' | 'tierlb-fastpath';
interface Row {
  system: System;
  metric: string;
  value: number;
  unit: string;
}

/** Whole-machine busy and total jiffies (/proc/stat 'cpu' line). */
function cpuTicks(): { busy: number; total: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = f;
  const busy = user + nice + system + irq + softirq + (steal ?? 0);
  return { busy, total: busy + idle + iowait };
}
const TICK_US = 1e6 / 100; // USER_HZ

function rxPackets(t: Topo, ns: string): number {
  return Number(t.set.exec(ns, 'cat', ['/sys/class/net/eth0/statistics/rx_packets']).trim());
}

/** Wait until rs1's counter stops moving (the queue and the links have drained). */
async function settle(t: Topo): Promise<number> {
  let last = rxPackets(t, t.rs1);
  for (let i = 0; i < 40; i++) {
    await sleep(150);
    const now = rxPackets(t, t.rs1);
    if (now === last) return now;
    last = now;
  }
  return last;
}

/** UDP flow: bursts, paced rates and the full rate, each delivered / offered; CPU of the full-rate run. */
async function udpSuite(t: Topo, system: System, dir: string): Promise<{ rows: Row[]; busyPerPacket: number }> {
  const rows: Row[] = [];
  const cfg = udpFlowConfig({
    srcMac: t.macs.client,
    dstMac: t.macs.director,
    src: CLIENT,
    dst: VIP,
    sport: 40000,
    dport: UDP_PORT,
    payload: 18,
  });
  const send = (count: number, gap?: string) => trafgen(t.client, dir, 'udp', cfg, { count, gap });
  send(1); // the flow's first packet: the director schedules it (and the fast path learns it)
  await sleep(300);
  await settle(t);
  const row = (metric: string, value: number, unit: string) => rows.push({ system, metric, value, unit });
  for (const n of BURSTS) {
    const before = await settle(t);
    send(n);
    const got = (await settle(t)) - before;
    row(`udp_burst_${n / 1000}k_delivered`, round3(got / n), 'fraction');
  }
  for (const gap of GAPS) {
    const before = await settle(t);
    const secs = send(PACED_PACKETS, gap);
    const got = (await settle(t)) - before;
    row(`udp_paced_${gap}_offered_pps`, Math.round(PACED_PACKETS / secs), 'packets/s');
    row(`udp_paced_${gap}_delivered`, round3(got / PACED_PACKETS), 'fraction');
  }
  const before = await settle(t);
  const c0 = cpuTicks();
  const secs = send(FULL_PACKETS);
  const got = (await settle(t)) - before;
  const c1 = cpuTicks();
  row('udp_full_offered_pps', Math.round(FULL_PACKETS / secs), 'packets/s');
  row('udp_full_delivered', round3(got / FULL_PACKETS), 'fraction');
  row('udp_full_delivered_pps', Math.round(got / secs), 'packets/s');
  const busyPerPacket = ((c1.busy - c0.busy) * TICK_US) / FULL_PACKETS; // µs of CPU per offered packet
  row('udp_full_cpu_us_per_offered_packet', round3(busyPerPacket), 'µs');
  process.stderr.write(`${system}: full rate ${Math.round(FULL_PACKETS / secs)} pkt/s offered, ${got} delivered\n`);
  return { rows, busyPerPacket: ((c1.busy - c0.busy) * TICK_US) / Math.max(got, 1) };
}

/** TCP accept loop on rs1 (VIP:80) serving '/' (small) and '/big' (a slow download), python3 only. */
const SERVER = `
import socket, threading
def serve(c):
    try:
        c.settimeout(30)
        req = b''
        while b'\\r\\n\\r\\n' not in req:
            d = c.recv(4096)
            if not d: return
            req += d
        if req.startswith(b'GET /big'):
            c.sendall(b'HTTP/1.0 200 OK\\r\\nContent-Length: %d\\r\\n\\r\\n' % (64 << 20))
            chunk = b'x' * 65536
            for _ in range(1024): c.sendall(chunk)
        else:
            c.sendall(b'HTTP/1.0 200 OK\\r\\nContent-Length: 3\\r\\n\\r\\nok\\n')
    except OSError: pass
    finally: c.close()
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('${VIP}', 80)); s.listen(4096)
print('ready', flush=True)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
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

/**
 * The legit side of the SYN flood: one download read at ~4 MB/s (its longest gap between reads is the stall) and
 * requests on new connections from 2 threads (1 s timeout each) until the flag file appears. Prints JSON.
 */
const LEGIT = (flag: string) => `
import json, os, socket, threading, time
res = {'ok': 0, 'tried': 0, 'stall': 0.0, 'bytes': 0}
stop = lambda: os.path.exists(${JSON.stringify(flag)})
def requests():
    while not stop():
        res['tried'] += 1
        try:
            s = socket.create_connection(('${VIP}', 80), timeout=1); s.settimeout(1)
            s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n'); d = b''
            while True:
                x = s.recv(4096)
                if not x: break
                d += x
            if d.endswith(b'ok\\n'): res['ok'] += 1
            s.close()
        except OSError: pass
def download():
    s = socket.create_connection(('${VIP}', 80), timeout=10); s.settimeout(10)
    s.sendall(b'GET /big HTTP/1.0\\r\\n\\r\\n')
    last = time.time()
    while not stop():
        try: d = s.recv(65536)
        except OSError: res['stall'] = max(res['stall'], time.time() - last); break
        if not d: break
        now = time.time(); res['stall'] = max(res['stall'], now - last); last = now
        res['bytes'] += len(d)
        time.sleep(len(d) / 4e6)
ts = [threading.Thread(target=requests) for _ in range(2)] + [threading.Thread(target=download)]
[t.start() for t in ts]; [t.join() for t in ts]
print(json.dumps(res), flush=True)
`;

async function waitReady(p: import('node:child_process').ChildProcess): Promise<void> {
  let out = '';
  p.stdout?.on('data', (d) => {
    out += d.toString();
  });
  for (let i = 0; i < 100 && !out.includes('ready'); i++) await sleep(50);
  if (!out.includes('ready')) throw new Error('the real server did not start');
}

function synRetrans(t: Topo): number {
  const out = t.set.exec(t.client, 'nstat', ['-asz', 'TcpExtTCPSynRetrans'], { allowFail: true });
  return Number(/TcpExtTCPSynRetrans\s+(\d+)/.exec(out)?.[1] ?? 0);
}

async function tcpSuite(t: Topo, system: System, dir: string): Promise<Row[]> {
  const rows: Row[] = [];
  const srv = t.set.spawn(t.rs1, '/usr/bin/python3', ['-c', SERVER]);
  try {
    await waitReady(srv);
    const r0 = synRetrans(t);
    const cps = Number(t.set.exec(t.client, '/usr/bin/python3', ['-c', CONNECTOR]).trim());
    rows.push({ system, metric: 'tcp_new_conns_per_s', value: Math.round(cps), unit: 'connections/s' });
    rows.push({ system, metric: 'tcp_syn_retransmits', value: synRetrans(t) - r0, unit: 'SYNs' });

    const flag = join(dir, `flood-done-${system}`);
    const legit = t.set.spawn(t.client, '/usr/bin/python3', ['-c', LEGIT(flag)]);
    let out = '';
    legit.stdout?.on('data', (d) => {
      out += d.toString();
    });
    await sleep(500); // the download is established before the flood
    const cfg = synFloodConfig({
      srcMac: t.macs.client,
      dstMac: t.macs.director,
      srcNet: '10.200',
      dst: VIP,
      dport: 80,
    });
    const secs = trafgen(t.client, dir, 'syn', cfg, { count: SYN_FLOOD, timeoutS: 120 });
    writeFileSync(flag, '');
    await new Promise((r) => legit.once('exit', r));
    const res = JSON.parse(out.trim() || '{"ok":0,"tried":0,"stall":0,"bytes":0}');
    rows.push({ system, metric: 'synflood_offered_pps', value: Math.round(SYN_FLOOD / secs), unit: 'packets/s' });
    rows.push({
      system,
      metric: 'synflood_legit_answered',
      value: round3(res.ok / Math.max(res.tried, 1)),
      unit: 'fraction',
    });
    rows.push({ system, metric: 'synflood_legit_requests', value: res.tried, unit: 'requests' });
    rows.push({ system, metric: 'synflood_download_longest_stall', value: round3(res.stall), unit: 's' });
    process.stderr.write(
      `${system}: SYN flood ${Math.round(SYN_FLOOD / secs)}/s: legit ${res.ok}/${res.tried}, download stall ${res.stall.toFixed(2)} s\n`,
    );
  } finally {
    srv.kill('SIGKILL');
  }
  return rows;
}

const round3 = (x: number) => Math.round(x * 1000) / 1000;

/** Static kernel-only DR: the mark and policy route tierlb would install, set by a mangle rule. */
function kernelOnly(t: Topo, on: boolean): void {
  const ex = (args: string[]) => t.set.exec(t.director, args[0], args.slice(1), { allowFail: !on });
  const op = on ? '-A' : '-D';
  for (const [proto, port] of [
    ['udp', String(UDP_PORT)],
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

/**
 * The null path: every IPv4 packet dropped at the director's tc ingress (a one-instruction classic BPF program in
 * direct-action mode returning TC_ACT_SHOT; the kernel here has no gact action module).
 */
function nullPath(t: Topo, on: boolean): void {
  if (on) {
    t.set.exec(t.director, 'tc', ['qdisc', 'add', 'dev', 'eth0', 'clsact']);
    t.set.exec(t.director, 'tc', [
      'filter',
      'add',
      'dev',
      'eth0',
      'ingress',
      'protocol',
      'ip',
      'bpf',
      'da',
      'bytecode',
      '1,6 0 0 2,',
    ]);
  } else {
    t.set.exec(t.director, 'tc', ['qdisc', 'del', 'dev', 'eth0', 'clsact'], { allowFail: true });
  }
}

async function withDirector(t: Topo, fastpath: 'on' | 'off', body: () => Promise<void>): Promise<boolean> {
  let d: Awaited<ReturnType<typeof startDirector>>;
  try {
    d = await startDirector(t, ['--fastpath', fastpath, '--max-queue-len', '8192']).catch((e) => {
      // a director without the fast path: the NFQUEUE-only row is what it runs anyway
      if (fastpath === 'off') return startDirector(t, ['--max-queue-len', '8192']);
      throw e;
    });
  } catch (e) {
    process.stderr.write(
      `tierlb --fastpath ${fastpath}: not run: ${(e as Error).message.split('\n')[0].slice(0, 300)}\n`,
    );
    return false;
  }
  try {
    for (const [flag, svc] of [
      ['-u', `${VIP}:${UDP_PORT}`],
      ['-t', `${VIP}:80`],
    ]) {
      await adm(t, ['-A', flag, svc, '-s', 'rr']);
      await adm(t, ['-a', flag, svc, '-r', RS1, '-g']);
    }
    await body();
    process.stderr.write(`tierlb --fastpath ${fastpath}: director stats ${await request(t.socket, { op: 'stats' })}\n`);
  } finally {
    await stopDirector(d.child);
  }
  return true;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench:l4 needs root (namespaces, trafgen)');
  if (!haveTrafgen()) throw new Error('trafgen is missing: apt-get install netsniff-ng (scripts/install-deps.sh)');
  const t = buildTopo('b');
  const dir = mkdtempSync(join(tmpdir(), 'tierlb-bench-l4-'));
  const rows: Row[] = [];
  const cpu: Partial<Record<System, number>> = {};
  try {
    for (const k of [
      'net.ipv4.ip_forward=1',
      'net.ipv4.conf.all.send_redirects=0',
      'net.ipv4.conf.eth0.send_redirects=0',
    ])
      t.set.exec(t.director, 'sysctl', ['-qw', k]);
    // the receiver costs nothing: counted at the interface, dropped before any socket
    t.set.exec(t.rs1, 'iptables-nft', [
      '-t',
      'raw',
      '-A',
      'PREROUTING',
      '-p',
      'udp',
      '--dport',
      String(UDP_PORT),
      '-j',
      'DROP',
    ]);

    nullPath(t, true);
    const nul = await udpSuite(t, 'null', dir);
    cpu.null = nul.rows.find((r) => r.metric === 'udp_full_cpu_us_per_offered_packet')?.value ?? 0;
    rows.push(...nul.rows.filter((r) => r.metric.startsWith('udp_full_') && r.metric.includes('offered')));
    rows.push(...nul.rows.filter((r) => r.metric === 'udp_full_cpu_us_per_offered_packet'));
    nullPath(t, false);

    kernelOnly(t, true);
    const k = await udpSuite(t, 'kernel-only', dir);
    rows.push(...k.rows, ...(await tcpSuite(t, 'kernel-only', dir)));
    cpu['kernel-only'] = k.busyPerPacket;
    kernelOnly(t, false);

    for (const [system, fp] of [
      ['tierlb-nfqueue', 'off'],
      ['tierlb-fastpath', 'on'],
    ] as const) {
      await withDirector(t, fp, async () => {
        const u = await udpSuite(t, system, dir);
        rows.push(...u.rows, ...(await tcpSuite(t, system, dir)));
        cpu[system] = u.busyPerPacket;
      });
    }
    for (const s of ['kernel-only', 'tierlb-nfqueue', 'tierlb-fastpath'] as const) {
      const v = cpu[s];
      if (v === undefined || cpu.null === undefined) continue;
      // CPU per delivered packet, less what the null path spent per packet offered (the generator and the links)
      rows.push({
        system: s,
        metric: 'udp_full_cpu_us_per_delivered_packet_above_null',
        value: round3(v - cpu.null),
        unit: 'µs',
      });
    }
  } finally {
    t.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
  const out = join(dirname(fileURLToPath(import.meta.url)), 'results', 'l4.json');
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(rows, null, 2)}\n`);
  const metrics = [...new Set(rows.filter((r) => r.system !== 'null').map((r) => r.metric))];
  const systems: System[] = ['kernel-only', 'tierlb-nfqueue', 'tierlb-fastpath'];
  const val = (s: System, m: string) => rows.find((r) => r.system === s && r.metric === m)?.value;
  process.stdout.write(
    `${'metric'.padEnd(52)} ${systems.map((s) => s.padStart(16)).join('')}   ratios to kernel-only\n`,
  );
  for (const m of metrics) {
    const base = val('kernel-only', m);
    const cells = systems.map((s) => String(val(s, m) ?? '-').padStart(16)).join('');
    const ratios = systems
      .slice(1)
      .map((s) => {
        const v = val(s, m);
        return v === undefined || !base ? '-' : (v / base).toFixed(2);
      })
      .join(' / ');
    process.stdout.write(`${m.padEnd(52)} ${cells}   ${ratios}\n`);
  }
  process.stdout.write(
    `null path: ${cpu.null?.toFixed(3)} µs CPU per offered packet (subtracted above)\nwrote ${out}\n`,
  );
}

main().catch((e) => {
  process.stderr.write(`bench:l4: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
