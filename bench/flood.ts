/**
 * `npm run bench:flood`: the director under a full-speed SYN flood, on the netns topology of
 * test/netns-director-topo.ts (DR to rs1, TCP VIP:80 answered "ok" by a python acceptor). For the fast path off and
 * on: FLOOD_SYNS SYNs (default 1,000,000) from random sources and ports by trafgen at the generator's full speed,
 * while a legit client makes a request (connect, read "ok") every 20 ms and another keeps one connection open and
 * sends a request on it every 20 ms (an established flow: in the kernel with the fast path on). Reports per run:
 *   legit_answered        fraction of the legit client's new-connection requests answered
 *   established_answered  fraction of the requests on the established connection answered
 *   rss_peak_mib          the director process's peak RSS (sampled every 100 ms)
 *   table_size_peak       connection table entries at the peak (sampled, and after the flood: a busy worker may
 *                         not answer a sample); table_bytes_peak, its estimate
 *   bytes_per_entry       the estimate's bytes per entry (CONN_ENTRY_BYTES, measured by bench:conn-bytes)
 *   offered_pps           the generator's rate; queue_dropped, the kernel's queue-full drops; martian, bad.martian
 * The director runs with its defaults (memory defenses on, conn_table_bytes 256 MiB); FLOOD_TABLE_BYTES sets a
 * bound (e.g. 67108864) to watch the bound hold. Writes bench/results/flood.json. The machine is shared and the
 * generator runs on it: compare within one run.
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
  DIRECTOR_ENTRY,
  RS1,
  startDirector,
  stopDirector,
  type Topo,
  VIP,
} from '../test/netns-director-topo.js';

const FLOOD_SYNS = Number(process.env.FLOOD_SYNS ?? 1_000_000);
const TABLE_BYTES = process.env.FLOOD_TABLE_BYTES;
const LEGIT_SECONDS = Number(process.env.FLOOD_LEGIT_SECONDS ?? 12);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Row {
  fastpath: 'off' | 'on';
  metric: string;
  value: number;
  unit: string;
}

const ACCEPTOR = `
import socket, threading
def serve(c):
    try:
        while True:
            d = c.recv(64)
            if not d: break
            c.sendall(b'ok')
    except OSError: pass
    c.close()
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('${VIP}', 80)); s.listen(4096)
print('ready', flush=True)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
`;

/** New connections: connect, ask, read "ok", close, every 20 ms; prints "tried ok". */
const LEGIT = (src: string) => `
import socket, time
end = time.time() + ${LEGIT_SECONDS}
tried = ok = 0
while time.time() < end:
    tried += 1
    s = socket.socket(); s.settimeout(1.0); s.bind(('${src}', 0))
    try:
        s.connect(('${VIP}', 80)); s.sendall(b'q')
        if s.recv(8) == b'ok': ok += 1
    except OSError: pass
    s.close(); time.sleep(0.02)
print(tried, ok, flush=True)
`;

/** One established connection asking every 20 ms; prints "tried ok". */
const ESTABLISHED = (src: string) => `
import socket, time
s = socket.socket(); s.settimeout(1.0); s.bind(('${src}', 0)); s.connect(('${VIP}', 80))
end = time.time() + ${LEGIT_SECONDS}
tried = ok = 0
while time.time() < end:
    tried += 1
    try:
        s.sendall(b'q')
        if s.recv(8) == b'ok': ok += 1
    except socket.timeout: pass
    except OSError: break
    time.sleep(0.02)
print(tried, ok, flush=True)
`;

function synConf(t: Topo): string {
  return `{
  eth(da=${t.macs.director}, sa=${t.macs.client}, type=0x0800),
  ipv4(saddr=drnd(), daddr=${VIP}, ttl=64, proto=6),
  tcp(sp=drnd(), dp=80, seq=drnd(), syn, win=65535)
}
`;
}

function output(p: import('node:child_process').ChildProcess): Promise<string> {
  let out = '';
  p.stdout?.on('data', (d) => {
    out += d.toString();
  });
  return new Promise((resolve) => p.once('exit', () => resolve(out.trim())));
}

/** The director's node process: the child of `ip netns exec` or the process itself. */
function rssKiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

function directorPid(t: Topo, spawned: number): number {
  const out = execFileSync('pgrep', ['-f', DIRECTOR_ENTRY], { encoding: 'utf8' }).trim().split('\n').map(Number);
  // our own run's process: the one whose socket argument is this topology's
  for (const pid of out) {
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(t.socket)) return pid;
    } catch {}
  }
  return spawned;
}

async function run(t: Topo, fastpath: 'off' | 'on', confPath: string, src: string): Promise<Row[]> {
  const rows: Row[] = [];
  const row = (metric: string, value: number, unit: string) => rows.push({ fastpath, metric, value, unit });
  const args = ['--fastpath', fastpath];
  let cfg = '';
  if (TABLE_BYTES) {
    cfg = join(t.dir, 'director.yaml');
    writeFileSync(cfg, `director:\n  sysctl:\n    conn_table_bytes: ${TABLE_BYTES}\n`);
    args.push('--config', cfg);
  }
  const d = await startDirector(t, args);
  try {
    await adm(t, ['-A', '-t', `${VIP}:80`, '-s', 'rr']);
    await adm(t, ['-a', '-t', `${VIP}:80`, '-r', RS1, '-g']);
    const pid = directorPid(t, d.child.pid ?? 0);
    let rssPeak = 0;
    let sizePeak = 0;
    let bytesPeak = 0;
    let sampling = true;
    let samples = 0;
    const sampler = (async () => {
      while (sampling) {
        rssPeak = Math.max(rssPeak, rssKiB(pid));
        try {
          const st = JSON.parse(await request(t.socket, { op: 'stats' }, 2000)) as DatapathStats;
          samples++;
          if (st.ipvs && st.ipvs.size > sizePeak) {
            sizePeak = st.ipvs.size;
            bytesPeak = st.ipvs.tableBytes;
          }
        } catch {}
        await sleep(100);
      }
    })();
    const est = output(t.set.spawn(t.client, '/usr/bin/python3', ['-c', ESTABLISHED(src)]));
    const legit = output(t.set.spawn(t.client, '/usr/bin/python3', ['-c', LEGIT(src)]));
    await sleep(1000);
    const start = process.hrtime.bigint();
    t.set.exec(
      t.client,
      'trafgen',
      [
        '--dev',
        'eth0',
        '--conf',
        confPath,
        '-P',
        '1',
        '-n',
        String(FLOOD_SYNS),
        '-C',
        '--no-sock-mem',
        '--notouch-irq',
      ],
      { allowFail: true },
    );
    const secs = Number(process.hrtime.bigint() - start) / 1e9;
    const [tried, ok] = (await legit).split(/\s+/).map(Number);
    const [etried, eok] = (await est).split(/\s+/).map(Number);
    sampling = false;
    await sampler;
    const st = JSON.parse(await request(t.socket, { op: 'stats' })) as DatapathStats;
    // the worker may not answer a stats request while the queue is full: the table after the flood counts too
    if ((st.ipvs?.size ?? 0) > sizePeak) {
      sizePeak = st.ipvs?.size ?? 0;
      bytesPeak = st.ipvs?.tableBytes ?? 0;
    }
    row('offered_pps', Math.round(FLOOD_SYNS / secs), 'packets/s');
    row('legit_answered', +(ok / Math.max(1, tried)).toFixed(4), 'fraction');
    row('legit_tried', tried, 'requests');
    row('established_answered', +(eok / Math.max(1, etried)).toFixed(4), 'fraction');
    row('rss_peak_mib', +(rssPeak / 1024).toFixed(1), 'MiB');
    row('table_size_peak', sizePeak, 'entries');
    row('table_bytes_peak', bytesPeak, 'bytes (estimate)');
    row('bytes_per_entry', st.ipvs?.bytesPerEntry ?? 0, 'bytes');
    row('table_size_after', st.ipvs?.size ?? 0, 'entries');
    row('table_max', st.ipvs?.maxConns ?? 0, 'entries');
    row('stats_samples', samples, 'samples');
    row('queue_dropped', st.kernel.queueDropped, 'packets');
    row('martian', st.bad.martian ?? 0, 'packets');
    row('defense_dropped', st.ipvs?.defenseDropped ?? 0, 'entries');
    process.stderr.write(`fastpath ${fastpath}: ${rows.map((r) => `${r.metric}=${r.value}`).join(' ')}\n`);
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
  const t = buildTopo('fl');
  const rows: Row[] = [];
  try {
    const confPath = join(t.dir, 'syn.cfg');
    writeFileSync(confPath, synConf(t));
    for (const k of [
      'net.ipv4.ip_forward=1',
      'net.ipv4.conf.all.send_redirects=0',
      'net.ipv4.conf.eth0.send_redirects=0',
    ])
      t.set.exec(t.director, 'sysctl', ['-qw', k]);
    const acc = t.set.spawn(t.rs1, '/usr/bin/python3', ['-c', ACCEPTOR]);
    let out = '';
    acc.stdout?.on('data', (d) => {
      out += d.toString();
    });
    for (let i = 0; i < 100 && !out.includes('ready'); i++) await sleep(50);
    // one legit source per run, so no run meets the TIME_WAIT entries another left on the real server
    const sources = { off: '10.77.1.31', on: '10.77.1.32' } as const;
    for (const fp of ['off', 'on'] as const) {
      t.set.exec(t.client, 'ip', ['addr', 'add', `${sources[fp]}/24`, 'dev', 'eth0']);
      rows.push(...(await run(t, fp, confPath, sources[fp])));
    }
    acc.kill('SIGKILL');
  } finally {
    t.dispose();
  }
  const file = join(dirname(fileURLToPath(import.meta.url)), 'results', 'flood.json');
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(
    file,
    `${JSON.stringify({ date: new Date().toISOString(), syns: FLOOD_SYNS, tableBytes: TABLE_BYTES ?? 'default', rows }, null, 2)}\n`,
  );
  for (const metric of [...new Set(rows.map((r) => r.metric))]) {
    const cells = rows.filter((r) => r.metric === metric).map((r) => `fastpath ${r.fastpath} ${r.value}`);
    process.stdout.write(`${metric}: ${cells.join(', ')}\n`);
  }
  process.stdout.write(`wrote ${file}\n`);
}

main().catch((e) => {
  process.stderr.write(`bench:flood: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
