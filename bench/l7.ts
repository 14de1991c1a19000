/**
 * `npm run bench:l7`: wrk against the same small nginx backend directly and through three HTTP proxies, side by
 * side in one run, on loopback:
 *   direct      nginx (Debian) with a generated config, its own prefix, pid and temp paths
 *   tierlb      `tierlb listeners` (node:cluster, N workers), mode http, keep-alive to the backend; the built
 *               product (`npm run build` first, then bin/tierlb.js: ./lib/product.ts)
 *   haproxy     haproxy, mode http, nbthread N, http-reuse always
 *   http-proxy  one process of http-proxy-3 with a keep-alive agent
 * Scenarios (each system measured in each run, the systems in one run started once):
 *   http        wrk -c CONNECTIONS through mode http, all four systems
 *   http-c1000  wrk -c 1000 (many connections), tierlb and haproxy
 *   tcp         wrk -c CONNECTIONS keep-alive through a mode tcp listener (the same nginx), tierlb (the Node
 *               relay), tierlb-splice (the same listener with `splice: on`: the pairs spliced in the kernel) and
 *               haproxy
 *   idle        RSS of all the proxy's processes (tierlb: the primary and its workers) before and after a separate
 *               client process opens N/2 keep-alive connections, has one request answered on each and holds them,
 *               then after a second client adds N/2 more: KiB per idle connection at the margin (the second half;
 *               the first also pays the process's one-off growth, reported beside it), 2 s after they opened and
 *               settled (after 12 s of idleness: what a node holding them keeps), tierlb and haproxy
 * For each load: requests/s, p99 latency (wrk --latency) and the proxy's CPU seconds per 10k requests (utime+stime of
 * the proxy's processes from /proc before and after the measured run). Each run is repeated (--runs, 3) and the
 * median of each figure is reported with its spread (min-max) and the load average before and after each run: the
 * machine may be shared, so read the ratios of one run and the spread before the absolute figures. Results in
 * bench/results/l7.json: {config, runs: [{load, rows}], median: rows, ratios}.
 *
 * Options (or env): --duration S (BENCH_DURATION, 10), --warmup S (BENCH_WARMUP, 2), --connections N
 * (BENCH_CONNECTIONS, 64), --threads N (wrk threads, 1), --workers N (tierlb workers and haproxy threads, BENCH_WORKERS,
 * 2), --systems direct,tierlb,tierlb-splice,haproxy,http-proxy, --scenarios http,http-c1000,tcp,idle, --runs N (3), --idle N
 * (idle connections, 8000), --quick (1 run of 3 s, 1 s warm-up, 1000 idle connections: for development), --out FILE.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { cpuSeconds, freePort, parseWrk, processTree, rssKiB, type WrkResult } from './lib/measure.js';
import { tierlbArgs } from './lib/product.js';
import { haproxyConfig, nginxConfig } from './lib/servers.js';

type System = 'direct' | 'tierlb' | 'tierlb-splice' | 'haproxy' | 'http-proxy';
const SYSTEMS: System[] = ['direct', 'tierlb', 'tierlb-splice', 'haproxy', 'http-proxy'];
type Scenario = 'http' | 'http-c1000' | 'tcp' | 'idle';
const SCENARIOS: Scenario[] = ['http', 'http-c1000', 'tcp', 'idle'];
/** the systems each scenario measures */
const SCENARIO_SYSTEMS: Record<Scenario, readonly System[]> = {
  http: ['direct', 'tierlb', 'haproxy', 'http-proxy'],
  'http-c1000': ['tierlb', 'haproxy'],
  tcp: ['tierlb', 'tierlb-splice', 'haproxy'],
  idle: ['tierlb', 'haproxy'],
};

export interface Row {
  scenario: Scenario;
  system: System;
  metric:
    | 'rps'
    | 'p99_ms'
    | 'cpu_s_per_10k'
    | 'rss_before_mib'
    | 'rss_after_mib'
    | 'kib_per_idle_conn_first'
    | 'kib_per_idle_conn'
    | 'kib_per_idle_conn_settled';
  value: number;
  unit: string;
  /** medians: the smallest and largest of the runs */
  min?: number;
  max?: number;
  /** wrk's socket errors and non-2xx answers (rps rows of a run; medians: of every run) */
  errors?: string[];
}

const REPO = new URL('..', import.meta.url).pathname;

const { values: opt } = parseArgs({
  options: {
    duration: { type: 'string', default: process.env.BENCH_DURATION },
    warmup: { type: 'string', default: process.env.BENCH_WARMUP },
    connections: { type: 'string', default: process.env.BENCH_CONNECTIONS ?? '64' },
    threads: { type: 'string', default: process.env.BENCH_WRK_THREADS ?? '1' },
    workers: { type: 'string', default: process.env.BENCH_WORKERS ?? '2' },
    systems: { type: 'string', default: process.env.BENCH_SYSTEMS ?? SYSTEMS.join(',') },
    scenarios: { type: 'string', default: process.env.BENCH_SCENARIOS ?? SCENARIOS.join(',') },
    runs: { type: 'string', default: process.env.BENCH_RUNS },
    idle: { type: 'string', default: process.env.BENCH_IDLE },
    quick: { type: 'boolean', default: false },
    out: { type: 'string', default: join(REPO, 'bench/results/l7.json') },
  },
});
const QUICK = opt.quick;
const DURATION = Number(opt.duration ?? (QUICK ? 3 : 10));
const WARMUP = Number(opt.warmup ?? (QUICK ? 1 : 2));
const RUNS = Number(opt.runs ?? (QUICK ? 1 : 3));
const IDLE = Number(opt.idle ?? (QUICK ? 1000 : 8000));
const CONNECTIONS = Number(opt.connections);
const WRK_THREADS = Number(opt.threads);
const WORKERS = Number(opt.workers);
const wanted = opt.systems.split(',').map((s) => s.trim()) as System[];
for (const s of wanted) if (!SYSTEMS.includes(s)) throw new Error(`unknown system ${s} (${SYSTEMS.join(', ')})`);
const scenarios = opt.scenarios.split(',').map((s) => s.trim()) as Scenario[];
for (const s of scenarios)
  if (!SCENARIOS.includes(s)) throw new Error(`unknown scenario ${s} (${SCENARIOS.join(', ')})`);
if (!(DURATION > 0 && DURATION <= 600)) throw new Error('--duration must be in (0, 600] seconds');
if (!(RUNS >= 1 && RUNS <= 20)) throw new Error('--runs must be in [1, 20]');
if (!(IDLE >= 1 && IDLE <= 8000)) throw new Error('--idle must be in [1, 8000] (haproxy needs 2 fds per connection)');

const BODY = 'hello from nginx\n';

// ---- processes ----

const children = new Set<ChildProcess>();
const dir = mkdtempSync(join(tmpdir(), 'tierlb-bench-l7-'));

function cleanup(): void {
  for (const c of children) {
    try {
      // every child is its own process group leader: take its workers with it
      if (c.pid) process.kill(-c.pid, 'SIGKILL');
    } catch {}
  }
  children.clear();
  rmSync(dir, { recursive: true, force: true });
}
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    cleanup();
    process.exit(130);
  });
}

function start(name: string, cmd: string, args: string[]): ChildProcess {
  const child = spawn(cmd, args, { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  children.add(child);
  let log = '';
  const keep = (d: Buffer) => {
    log = (log + d.toString()).slice(-4000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  child.on('exit', (code, sig) => {
    children.delete(child);
    if (!stopping.has(child)) process.stderr.write(`bench: ${name} exited (${code ?? sig}):\n${log}\n`);
  });
  return child;
}

const stopping = new Set<ChildProcess>();
async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  stopping.add(child);
  const gone = new Promise<void>((r) => child.once('exit', () => r()));
  try {
    process.kill(-child.pid!, 'SIGTERM');
  } catch {}
  const t = setTimeout(() => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {}
  }, 3000);
  await gone;
  clearTimeout(t);
}

async function waitHttp(port: number, child: ChildProcess, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`exited before answering on ${port}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.setTimeout(1000);
      s.once('connect', () => s.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
      let got = '';
      s.on('data', (d) => {
        got += d;
      });
      s.once('close', () => resolve(/^HTTP\/1\.[01] 200/.test(got)));
      s.once('error', () => resolve(false));
      s.once('timeout', () => s.destroy());
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing answers 200 on 127.0.0.1:${port}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

// ---- wrk ----

function wrk(port: number, seconds: number, connections: number): Promise<WrkResult> {
  const threads = connections >= 500 ? Math.max(WRK_THREADS, 2) : WRK_THREADS;
  const args = [`-t${threads}`, `-c${connections}`, `-d${seconds}s`, '--latency', `http://127.0.0.1:${port}/`];
  return new Promise((resolve, reject) => {
    const child = spawn('wrk', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      out += d;
    });
    const kill = setTimeout(() => child.kill('SIGKILL'), (seconds + 30) * 1000);
    child.on('exit', (code) => {
      clearTimeout(kill);
      if (code !== 0) return reject(new Error(`wrk exited ${code}:\n${out}`));
      try {
        resolve(parseWrk(out));
      } catch (e) {
        reject(e);
      }
    });
  });
}

// ---- the systems ----

interface Running {
  child: ChildProcess;
  /** mode http */
  port: number;
  /** mode tcp (tierlb, haproxy) */
  tcpPort?: number;
}

async function startNginx(): Promise<Running> {
  const port = await freePort();
  const child = start('nginx', 'nginx', nginxConfig(join(dir, 'nginx'), [{ port, body: BODY }]));
  await waitHttp(port, child);
  return { port, child };
}

/** `splice`: the mode tcp listener with `splice: on` (the tierlb-splice system) */
async function startTierlb(backend: number, splice = false): Promise<Running> {
  const port = await freePort();
  const tcpPort = await freePort();
  const file = join(dir, 'tierlb-listeners.yaml');
  writeFileSync(
    file,
    `listeners:
  workers: ${WORKERS}
  control: ${join(dir, 'tierlb-listeners.sock')}
  stats: { enabled: false }
  listen:
    - name: bench
      bind: 127.0.0.1:${port}
      mode: http
      balance: roundrobin
      timeout: { http_keep_alive: 60s, client: 60s }
      servers:
        - { name: nginx, address: 127.0.0.1:${backend} }
    - name: bench_tcp
      bind: 127.0.0.1:${tcpPort}
      mode: tcp
      balance: roundrobin
      splice: ${splice ? 'on' : 'off'}
      servers:
        - { name: nginx, address: 127.0.0.1:${backend} }
`,
  );
  const child = start('tierlb listeners', process.execPath, tierlbArgs(['listeners', '--config', file]));
  await waitHttp(port, child, 30_000);
  await waitHttp(tcpPort, child, 30_000);
  return { port, tcpPort, child };
}

async function startHaproxy(backend: number): Promise<Running> {
  const port = await freePort();
  const tcpPort = await freePort();
  const args = haproxyConfig(join(dir, 'haproxy.cfg'), {
    port,
    tcpPort,
    threads: WORKERS,
    balance: 'roundrobin',
    servers: [{ name: 'nginx', port: backend }],
    maxconn: Math.min(IDLE + 1500, 9500), // 2 fds each: within this machine's limit of 20000
  });
  const child = start('haproxy', 'haproxy', args);
  await waitHttp(port, child);
  await waitHttp(tcpPort, child);
  return { port, tcpPort, child };
}

async function startHttpProxy(backend: number): Promise<Running> {
  const port = await freePort();
  const child = start('http-proxy', process.execPath, [
    join(REPO, 'bench/l7-http-proxy.mjs'),
    String(port),
    `http://127.0.0.1:${backend}`,
  ]);
  await waitHttp(port, child);
  return { port, child };
}

// ---- the measurements ----

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const round = (v: number, digits: number) => Math.round(v * 10 ** digits) / 10 ** digits;

async function load(
  scenario: Scenario,
  system: System,
  port: number,
  pid: number,
  connections: number,
): Promise<Row[]> {
  if (WARMUP > 0) await wrk(port, WARMUP, connections);
  const pids = processTree(pid);
  const before = cpuSeconds(pids);
  const r = await wrk(port, DURATION, connections);
  const used = cpuSeconds(pids) - before;
  const cpuPer10k = r.requests ? (used / r.requests) * 10_000 : Number.NaN;
  const of = system === 'direct' ? 'backend nginx' : 'proxy processes';
  process.stderr.write(
    `bench: ${scenario.padEnd(10)} ${system.padEnd(10)} ${r.rps.toFixed(0).padStart(8)} req/s  ` +
      `p99 ${r.p99ms.toFixed(2)} ms  ${cpuPer10k.toFixed(3)} cpu-s/10k (${of}, ${pids.length} processes)` +
      `${r.errors.length ? `  ${r.errors.join(', ')}` : ''}\n`,
  );
  return [
    {
      scenario,
      system,
      metric: 'rps',
      value: round(r.rps, 2),
      unit: 'req/s',
      ...(r.errors.length ? { errors: r.errors } : {}),
    },
    { scenario, system, metric: 'p99_ms', value: round(r.p99ms, 3), unit: 'ms' },
    { scenario, system, metric: 'cpu_s_per_10k', value: round(cpuPer10k, 4), unit: `s cpu per 10k requests (${of})` },
  ];
}

/** an idle client holding `n` keep-alive connections to `port`, each answered once */
async function holdIdle(port: number, n: number): Promise<{ client: ChildProcess; ok: number; failed: number }> {
  const client = spawn(process.execPath, [join(REPO, 'bench/l7-idle-client.mjs'), String(port), String(n)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  children.add(client);
  const ready = await new Promise<string>((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error(`idle client: no answer on ${n} connections in 60 s`)), 60_000);
    client.stdout!.on('data', (d) => {
      out += d;
      const m = /ready (\d+) (\d+)/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve(out);
      }
    });
  });
  const [, ok, failed] = /ready (\d+) (\d+)/.exec(ready)!.map(Number);
  return { client, ok: ok!, failed: failed! };
}

/** how long idle connections sit before the settled figures are read: tierlb's memory trim (src/listeners/
 * memory-trim.ts) gives back the garbage of a burst of connections within ~8 s of the process going quiet */
const SETTLE_MS = 12_000;

/**
 * RSS of the proxy's processes before and after IDLE/2 keep-alive connections that each had one answer, then after
 * IDLE/2 more: the second step is the figure (KiB per connection at the margin), the first also carries the one-off
 * growth of the process (a Node heap's young generation grows to its maximum, tens of MiB, while the connections
 * open), which a few thousand connections cannot amortise. Each point is read twice: 2 s after its connections
 * opened (what a burst costs) and after SETTLE_MS more of idleness (what a node holding them keeps); the
 * before point is read settled. The settled margin is `kib_per_idle_conn_settled`.
 */
async function idle(system: System, port: number, pid: number): Promise<Row[]> {
  await sleep(SETTLE_MS);
  const rss = () => rssKiB(processTree(pid));
  const before = rss();
  const first = await holdIdle(port, Math.floor(IDLE / 2));
  await sleep(2000);
  const mid = rss();
  await sleep(SETTLE_MS);
  const midSettled = rss();
  const second = await holdIdle(port, IDLE - Math.floor(IDLE / 2));
  await sleep(2000);
  const after = rss();
  await sleep(SETTLE_MS);
  const afterSettled = rss();
  for (const c of [first.client, second.client]) {
    c.stdin!.end();
    c.kill('SIGTERM');
    children.delete(c);
  }
  const firstPer = first.ok ? (mid - before) / first.ok : Number.NaN;
  const perConn = second.ok ? (after - midSettled) / second.ok : Number.NaN;
  const settledPer = second.ok ? (afterSettled - midSettled) / second.ok : Number.NaN;
  const mib = (k: number) => (k / 1024).toFixed(1);
  process.stderr.write(
    `bench: idle       ${system.padEnd(10)} ${first.ok} + ${second.ok} connections (${first.failed + second.failed} ` +
      `failed): RSS ${mib(before)} → ${mib(mid)} (settled ${mib(midSettled)}) → ${mib(after)} (settled ` +
      `${mib(afterSettled)}) MiB; KiB per connection at the margin ${perConn.toFixed(2)}, settled ` +
      `${settledPer.toFixed(2)} (the first ${first.ok}: ${firstPer.toFixed(2)})\n`,
  );
  return [
    { scenario: 'idle', system, metric: 'rss_before_mib', value: round(before / 1024, 1), unit: 'MiB' },
    {
      scenario: 'idle',
      system,
      metric: 'rss_after_mib',
      value: round(after / 1024, 1),
      unit: `MiB (${first.ok + second.ok} idle)`,
    },
    {
      scenario: 'idle',
      system,
      metric: 'kib_per_idle_conn_first',
      value: round(firstPer, 2),
      unit: `KiB per connection, the first ${first.ok} (with the process's one-off growth)`,
    },
    {
      scenario: 'idle',
      system,
      metric: 'kib_per_idle_conn',
      value: round(perConn, 2),
      unit: `KiB per connection, ${second.ok} more (at the margin, 2 s after they opened)`,
    },
    {
      scenario: 'idle',
      system,
      metric: 'kib_per_idle_conn_settled',
      value: round(settledPer, 2),
      unit: `KiB per connection, ${second.ok} more (at the margin, both points after ${SETTLE_MS / 1000} s idle)`,
    },
  ];
}

async function oneRun(nginx: Running, skipped: Set<string>): Promise<Row[]> {
  const rows: Row[] = [];
  const wants = (sc: Scenario, sys: System) => scenarios.includes(sc) && SCENARIO_SYSTEMS[sc].includes(sys);
  for (const system of wanted) {
    if (system === 'direct') {
      if (wants('http', system))
        rows.push(...(await load('http', 'direct', nginx.port, nginx.child.pid!, CONNECTIONS)));
      continue;
    }
    if (!SCENARIOS.some((sc) => wants(sc, system))) continue;
    let proxy: Running;
    try {
      proxy =
        system === 'tierlb' || system === 'tierlb-splice'
          ? await startTierlb(nginx.port, system === 'tierlb-splice')
          : system === 'haproxy'
            ? await startHaproxy(nginx.port)
            : await startHttpProxy(nginx.port);
    } catch (e) {
      skipped.add(`${system}: ${(e as Error).message.split('\n')[0]}`);
      process.stderr.write(`bench: ${system} skipped: ${(e as Error).message}\n`);
      for (const c of [...children]) if (c !== nginx.child) await stop(c);
      continue;
    }
    try {
      const pid = proxy.child.pid!;
      // idle first, on the freshly started processes: after the loads their heaps have grown and take the idle
      // connections in space already paid for (0-1 KiB each), which says nothing about what a connection holds
      if (wants('idle', system)) rows.push(...(await idle(system, proxy.port, pid)));
      if (wants('http', system)) rows.push(...(await load('http', system, proxy.port, pid, CONNECTIONS)));
      if (wants('http-c1000', system)) rows.push(...(await load('http-c1000', system, proxy.port, pid, 1000)));
      if (wants('tcp', system) && proxy.tcpPort)
        rows.push(...(await load('tcp', system, proxy.tcpPort, pid, CONNECTIONS)));
    } finally {
      await stop(proxy.child);
    }
  }
  return rows;
}

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function medians(runs: Row[][]): Row[] {
  const out: Row[] = [];
  for (const r of runs[0] ?? []) {
    const same = runs.flatMap((rs) =>
      rs.filter((x) => x.scenario === r.scenario && x.system === r.system && x.metric === r.metric),
    );
    const vs = same.map((x) => x.value).filter((v) => Number.isFinite(v));
    const errors = same.flatMap((x, i) => (x.errors ?? []).map((e) => `run ${i + 1}: ${e}`));
    out.push({
      ...r,
      value: round(median(vs), 4),
      min: Math.min(...vs),
      max: Math.max(...vs),
      ...(errors.length ? { errors } : { errors: undefined }),
    });
  }
  return out;
}

function get(rows: Row[], scenario: Scenario, system: System, metric: Row['metric']): number | undefined {
  return rows.find((r) => r.scenario === scenario && r.system === system && r.metric === metric)?.value;
}

/** tierlb against haproxy (and http-proxy), in each scenario, from the given rows */
function ratios(rows: Row[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const sc of SCENARIOS)
    for (const other of ['haproxy', 'http-proxy'] as const) {
      const metrics: Row['metric'][] =
        sc === 'idle' ? ['kib_per_idle_conn', 'kib_per_idle_conn_settled'] : ['rps', 'p99_ms', 'cpu_s_per_10k'];
      for (const m of metrics) {
        for (const ours of ['tierlb', 'tierlb-splice'] as const) {
          const t = get(rows, sc, ours, m);
          const o = get(rows, sc, other, m);
          if (t !== undefined && o !== undefined && o !== 0) out[`${sc} ${m} ${ours}/${other}`] = round(t / o, 3);
        }
      }
    }
  return out;
}

function table(rows: Row[]): string {
  const head = [
    'scenario',
    'system',
    'req/s',
    'p99 ms',
    'cpu s/10k req',
    'KiB/idle conn',
    'settled',
    'spread (req/s or KiB)',
  ];
  const keys = [...new Set(rows.map((r) => `${r.scenario}\t${r.system}`))];
  const body = keys.map((k) => {
    const [sc, sys] = k.split('\t') as [Scenario, System];
    const f = (m: Row['metric'], d: number) => {
      const v = get(rows, sc, sys, m);
      return v === undefined ? '' : v.toFixed(d);
    };
    const main = rows.find(
      (r) => r.scenario === sc && r.system === sys && r.metric === (sc === 'idle' ? 'kib_per_idle_conn' : 'rps'),
    );
    const spread = main?.min !== undefined ? `${main.min}-${main.max}` : '';
    const kib = [f('kib_per_idle_conn', 2), f('kib_per_idle_conn_settled', 2)];
    return [sc, sys, f('rps', 0), f('p99_ms', 2), f('cpu_s_per_10k', 3), ...kib, spread];
  });
  const all = [head, ...body];
  const w = head.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
  return all
    .map((r) =>
      r
        .map((c, i) => (i < 2 || i === 7 ? c.padEnd(w[i]!) : c.padStart(w[i]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

async function main(): Promise<number> {
  process.stderr.write(
    `bench:l7 ${RUNS} run(s), ${DURATION}s per load (+${WARMUP}s warm-up), wrk -t${WRK_THREADS} -c${CONNECTIONS} ` +
      `(and -c1000), ${WORKERS} tierlb workers / haproxy threads, ${IDLE} idle connections, loopback\n`,
  );
  const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  process.stderr.write(
    `bench: load average ${loadavg()} (the cores are shared with wrk and the backend: compare rows of one run)\n`,
  );
  const nginx = await startNginx();
  const runs: { load_before: string; load_after: string; rows: Row[] }[] = [];
  const skipped = new Set<string>();
  for (let i = 0; i < RUNS; i++) {
    const load_before = loadavg();
    process.stderr.write(`bench: run ${i + 1}/${RUNS}, load average ${load_before}\n`);
    const rows = await oneRun(nginx, skipped);
    runs.push({ load_before, load_after: loadavg(), rows });
  }
  await stop(nginx.child);

  const median = medians(runs.map((r) => r.rows));
  const result = {
    config: {
      runs: RUNS,
      duration_s: DURATION,
      warmup_s: WARMUP,
      connections: CONNECTIONS,
      wrk_threads: WRK_THREADS,
      workers: WORKERS,
      idle_connections: IDLE,
      cpus: readFileSync('/proc/cpuinfo', 'utf8').match(/^processor/gm)?.length ?? 0,
      date: new Date().toISOString(),
    },
    runs: runs.map((r) => ({ ...r, ratios: ratios(r.rows) })),
    median,
    ratios: ratios(median),
    skipped: [...skipped],
  };
  mkdirSync(dirname(opt.out), { recursive: true });
  writeFileSync(opt.out, `${JSON.stringify(result, null, 2)}\n`);

  process.stdout.write(`medians of ${RUNS} run(s):\n${table(median)}\n\n`);
  for (const [k, v] of Object.entries(result.ratios)) process.stdout.write(`${k}: ${v}x (median)\n`);
  for (const [i, r] of result.runs.entries())
    process.stdout.write(
      `run ${i + 1} (load ${r.load_before} → ${r.load_after}): ` +
        `${Object.entries(r.ratios)
          .filter(([k]) => k.includes('haproxy'))
          .map(([k, v]) => `${k.replace('/haproxy', '')} ${v}x`)
          .join(', ')}\n`,
    );
  for (const r of median)
    if (r.errors) process.stdout.write(`errors (wrk) ${r.scenario} ${r.system}: ${r.errors.join('; ')}\n`);
  for (const s of skipped) process.stdout.write(`skipped ${s}\n`);
  process.stdout.write(`\nload average at the end ${loadavg()}; wrote ${opt.out}\n`);
  return median.length ? 0 : 1;
}

main().then(
  (code) => {
    process.exitCode = code;
    cleanup();
  },
  (e) => {
    process.stderr.write(`bench:l7: ${(e as Error).stack ?? e}\n`);
    cleanup();
    process.exitCode = 1;
  },
);
