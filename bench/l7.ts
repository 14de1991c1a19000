/**
 * `npm run bench:l7`: wrk against the same small nginx backend directly and through three HTTP proxies, side by
 * side in one run, on loopback:
 *   direct      nginx (Debian) with a generated config, its own prefix, pid and temp paths
 *   tierlb      `tierlb listeners` (node:cluster, N workers), mode http, keep-alive to the backend
 *   haproxy     haproxy 2.6, mode http, nbthread N, http-reuse always
 *   http-proxy  one process of http-proxy-3 with a keep-alive agent
 * For each: requests/s, p99 latency (wrk --latency) and the proxy's CPU seconds per 10k requests (utime+stime of the
 * proxy's processes — the cluster primary and its workers — from /proc before and after the measured run). The table,
 * the ratios tierlb/http-proxy and tierlb/haproxy, and bench/results/l7.json (rows {system, metric, value, unit}).
 *
 * Options (or env): --duration S (BENCH_DURATION, 10), --warmup S (BENCH_WARMUP, 2), --connections N
 * (BENCH_CONNECTIONS, 64), --threads N (wrk threads, 1), --workers N (tierlb workers and haproxy threads, BENCH_WORKERS,
 * 2), --systems direct,tierlb,haproxy,http-proxy, --out FILE.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { cpuSeconds, freePort, parseWrk, processTree, type WrkResult } from './lib/measure.js';
import { haproxyConfig, nginxConfig } from './lib/servers.js';

type System = 'direct' | 'tierlb' | 'haproxy' | 'http-proxy';
const SYSTEMS: System[] = ['direct', 'tierlb', 'haproxy', 'http-proxy'];

export interface Row {
  system: System;
  metric: 'rps' | 'p99_ms' | 'cpu_s_per_10k';
  value: number;
  unit: string;
}

const REPO = new URL('..', import.meta.url).pathname;

const { values: opt } = parseArgs({
  options: {
    duration: { type: 'string', default: process.env.BENCH_DURATION ?? '10' },
    warmup: { type: 'string', default: process.env.BENCH_WARMUP ?? '2' },
    connections: { type: 'string', default: process.env.BENCH_CONNECTIONS ?? '64' },
    threads: { type: 'string', default: process.env.BENCH_WRK_THREADS ?? '1' },
    workers: { type: 'string', default: process.env.BENCH_WORKERS ?? '2' },
    systems: { type: 'string', default: process.env.BENCH_SYSTEMS ?? SYSTEMS.join(',') },
    out: { type: 'string', default: join(REPO, 'bench/results/l7.json') },
  },
});
const DURATION = Number(opt.duration);
const WARMUP = Number(opt.warmup);
const CONNECTIONS = Number(opt.connections);
const WRK_THREADS = Number(opt.threads);
const WORKERS = Number(opt.workers);
const wanted = opt.systems.split(',').map((s) => s.trim()) as System[];
for (const s of wanted) if (!SYSTEMS.includes(s)) throw new Error(`unknown system ${s} (${SYSTEMS.join(', ')})`);
if (!(DURATION > 0 && DURATION <= 600)) throw new Error('--duration must be in (0, 600] seconds');

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

function wrk(port: number, seconds: number): Promise<WrkResult> {
  const args = [`-t${WRK_THREADS}`, `-c${CONNECTIONS}`, `-d${seconds}s`, '--latency', `http://127.0.0.1:${port}/`];
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

async function startNginx(): Promise<{ port: number; child: ChildProcess }> {
  const port = await freePort();
  const child = start('nginx', 'nginx', nginxConfig(join(dir, 'nginx'), [{ port, body: BODY }]));
  await waitHttp(port, child);
  return { port, child };
}

async function startTierlb(backend: number): Promise<{ port: number; child: ChildProcess }> {
  const port = await freePort();
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
      servers:
        - { name: nginx, address: 127.0.0.1:${backend} }
`,
  );
  const child = start('tierlb listeners', process.execPath, [
    '--import',
    'tsx',
    join(REPO, 'bench/l7-tierlb.ts'),
    'listeners',
    '--config',
    file,
  ]);
  await waitHttp(port, child, 30_000);
  return { port, child };
}

async function startHaproxy(backend: number): Promise<{ port: number; child: ChildProcess }> {
  const port = await freePort();
  const args = haproxyConfig(join(dir, 'haproxy.cfg'), {
    port,
    threads: WORKERS,
    balance: 'roundrobin',
    servers: [{ name: 'nginx', port: backend }],
  });
  const child = start('haproxy', 'haproxy', args);
  await waitHttp(port, child);
  return { port, child };
}

async function startHttpProxy(backend: number): Promise<{ port: number; child: ChildProcess }> {
  const port = await freePort();
  const child = start('http-proxy', process.execPath, [
    join(REPO, 'bench/l7-http-proxy.mjs'),
    String(port),
    `http://127.0.0.1:${backend}`,
  ]);
  await waitHttp(port, child);
  return { port, child };
}

// ---- the run ----

interface Measured {
  system: System;
  wrk: WrkResult;
  cpuPer10k: number;
  cpuOf: string;
}

async function measure(system: System, port: number, pid: number, cpuOf: string): Promise<Measured> {
  if (WARMUP > 0) await wrk(port, WARMUP);
  const pids = processTree(pid);
  const before = cpuSeconds(pids);
  const r = await wrk(port, DURATION);
  const used = cpuSeconds(pids) - before;
  const m = { system, wrk: r, cpuPer10k: r.requests ? (used / r.requests) * 10_000 : Number.NaN, cpuOf };
  process.stderr.write(
    `bench: ${system.padEnd(10)} ${r.rps.toFixed(0).padStart(8)} req/s  p99 ${r.p99ms.toFixed(2)} ms  ` +
      `${m.cpuPer10k.toFixed(3)} cpu-s/10k (${cpuOf}, ${pids.length} processes)${r.errors.length ? `  ${r.errors.join(', ')}` : ''}\n`,
  );
  return m;
}

function table(ms: Measured[]): string {
  const head = ['system', 'req/s', 'p99 ms', 'cpu s/10k req', 'cpu of', 'errors'];
  const rows = ms.map((m) => [
    m.system,
    m.wrk.rps.toFixed(0),
    m.wrk.p99ms.toFixed(2),
    m.cpuPer10k.toFixed(3),
    m.cpuOf,
    m.wrk.errors.join('; ') || '-',
  ]);
  const all = [head, ...rows];
  const w = head.map((_, i) => Math.max(...all.map((r) => r[i].length)));
  return all
    .map((r) =>
      r
        .map((c, i) => (i === 0 || i >= 4 ? c.padEnd(w[i]) : c.padStart(w[i])))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

function ratios(ms: Measured[]): string[] {
  const by = new Map(ms.map((m) => [m.system, m]));
  const t = by.get('tierlb');
  if (!t) return ['(no tierlb row: no ratios)'];
  const out: string[] = [];
  for (const other of ['http-proxy', 'haproxy'] as const) {
    const o = by.get(other);
    if (!o) continue;
    out.push(
      `tierlb/${other}: req/s ${(t.wrk.rps / o.wrk.rps).toFixed(2)}x, p99 ${(t.wrk.p99ms / o.wrk.p99ms).toFixed(2)}x, ` +
        `cpu per request ${(t.cpuPer10k / o.cpuPer10k).toFixed(2)}x`,
    );
  }
  return out;
}

async function main(): Promise<number> {
  process.stderr.write(
    `bench:l7 ${DURATION}s per system (+${WARMUP}s warm-up), wrk -t${WRK_THREADS} -c${CONNECTIONS}, ` +
      `${WORKERS} tierlb workers / haproxy threads, loopback\n`,
  );
  const load = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  process.stderr.write(
    `bench: load average ${load()} (2 cores are shared with wrk and the backend: compare rows of one run)\n`,
  );
  const nginx = await startNginx();
  const results: Measured[] = [];
  const skipped: string[] = [];
  for (const system of wanted) {
    if (system === 'direct') {
      results.push(await measure('direct', nginx.port, nginx.child.pid!, 'backend nginx'));
      continue;
    }
    let proxy: { port: number; child: ChildProcess };
    try {
      proxy =
        system === 'tierlb'
          ? await startTierlb(nginx.port)
          : system === 'haproxy'
            ? await startHaproxy(nginx.port)
            : await startHttpProxy(nginx.port);
    } catch (e) {
      skipped.push(`${system}: ${(e as Error).message.split('\n')[0]}`);
      process.stderr.write(`bench: ${system} skipped: ${(e as Error).message}\n`);
      for (const c of [...children]) if (c !== nginx.child) await stop(c);
      continue;
    }
    try {
      results.push(await measure(system, proxy.port, proxy.child.pid!, 'proxy'));
    } finally {
      await stop(proxy.child);
    }
  }
  await stop(nginx.child);

  const rows: Row[] = results.flatMap((m) => [
    { system: m.system, metric: 'rps', value: Math.round(m.wrk.rps * 100) / 100, unit: 'req/s' },
    { system: m.system, metric: 'p99_ms', value: Math.round(m.wrk.p99ms * 1000) / 1000, unit: 'ms' },
    {
      system: m.system,
      metric: 'cpu_s_per_10k',
      value: Math.round(m.cpuPer10k * 10_000) / 10_000,
      unit:
        m.system === 'direct' ? 's cpu per 10k requests (backend nginx)' : 's cpu per 10k requests (proxy processes)',
    },
  ]);
  mkdirSync(dirname(opt.out), { recursive: true });
  writeFileSync(opt.out, `${JSON.stringify(rows, null, 2)}\n`);

  process.stdout.write(`${table(results)}\n\n`);
  for (const line of ratios(results)) process.stdout.write(`${line}\n`);
  for (const s of skipped) process.stdout.write(`skipped ${s}\n`);
  process.stdout.write(`\nload average at the end ${load()}; wrote ${opt.out}\n`);
  return results.length ? 0 : 1;
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
