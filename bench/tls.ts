/**
 * `npm run bench:tls`: TLS termination, tierlb vs haproxy 2.6, same certificate (ECDSA P-256, made with openssl for
 * the run), same nginx backend, tierlb workers = haproxy nbthread, loopback, one run:
 *   https_rps      wrk keep-alive over HTTPS (HTTP/1.1): requests/s, cpu s per 10k requests
 *   handshakes     wrk with `Connection: close`: every request a new connection with a full handshake (wrk keeps
 *                  no session), so requests/s = new TLS connections/s; cpu s per 1k handshakes
 *   h2_rps         h2load over TLS + ALPN h2 (-c connections, -m streams each): requests/s, cpu s per 10k requests
 * CPU is utime+stime of the proxy's processes (the cluster primary and its workers; haproxy's) from /proc before and
 * after each measured run. Writes bench/results/tls.json (rows {system, metric, value, unit} + ratios).
 *
 * Options (or env): --duration S (BENCH_DURATION, 8), --warmup S (BENCH_WARMUP, 1), --connections N (64),
 * --workers N (BENCH_WORKERS, 2), --systems tierlb,haproxy, --out FILE.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { cpuSeconds, freePort, parseWrk, processTree } from './lib/measure.js';
import { tierlbArgs } from './lib/product.js';
import { nginxConfig } from './lib/servers.js';

type System = 'tierlb' | 'haproxy';
type Metric = 'https_rps' | 'handshakes' | 'h2_rps';
const SYSTEMS: System[] = ['tierlb', 'haproxy'];
const REPO = new URL('..', import.meta.url).pathname;

const { values: opt } = parseArgs({
  options: {
    duration: { type: 'string', default: process.env.BENCH_DURATION ?? '8' },
    warmup: { type: 'string', default: process.env.BENCH_WARMUP ?? '1' },
    connections: { type: 'string', default: process.env.BENCH_CONNECTIONS ?? '64' },
    workers: { type: 'string', default: process.env.BENCH_WORKERS ?? '2' },
    systems: { type: 'string', default: process.env.BENCH_SYSTEMS ?? SYSTEMS.join(',') },
    out: { type: 'string', default: join(REPO, 'bench/results/tls.json') },
  },
});
const DURATION = Number(opt.duration);
const WARMUP = Number(opt.warmup);
const CONNECTIONS = Number(opt.connections);
const WORKERS = Number(opt.workers);
const wanted = opt.systems.split(',').map((s) => s.trim()) as System[];
for (const s of wanted) if (!SYSTEMS.includes(s)) throw new Error(`unknown system ${s} (${SYSTEMS.join(', ')})`);

const dir = mkdtempSync(join(tmpdir(), 'tierlb-bench-tls-'));
const children = new Set<ChildProcess>();
const stopping = new Set<ChildProcess>();

function cleanup(): void {
  for (const c of children) {
    try {
      if (c.pid) process.kill(-c.pid, 'SIGKILL');
    } catch {}
  }
  children.clear();
  rmSync(dir, { recursive: true, force: true });
}
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM'] as const)
  process.once(sig, () => {
    cleanup();
    process.exit(130);
  });

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

async function waitPort(port: number, child: ChildProcess, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`exited before listening on ${port}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > end) throw new Error(`nothing listens on ${port}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** run a load generator, its output */
function load(cmd: string, args: string[], seconds: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const kill = setTimeout(() => child.kill('SIGKILL'), (seconds + 30) * 1000);
    child.on('exit', (code) => {
      clearTimeout(kill);
      if (code !== 0) reject(new Error(`${cmd} exited ${code}:\n${out}`));
      else resolve(out);
    });
  });
}

interface Result {
  rate: number;
  count: number;
  errors: string;
}

async function wrk(port: number, seconds: number, close: boolean): Promise<Result> {
  const args = ['-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, '--latency'];
  if (close) args.push('-H', 'Connection: close');
  const r = parseWrk(await load('wrk', [...args, `https://127.0.0.1:${port}/`], seconds));
  return { rate: r.rps, count: r.requests, errors: r.errors.join('; ') };
}

async function h2load(port: number, seconds: number): Promise<Result> {
  const c = Math.max(1, Math.floor(CONNECTIONS / 4));
  const out = await load('h2load', ['-t1', `-c${c}`, '-m10', `-D${seconds}`, `https://127.0.0.1:${port}/`], seconds);
  const fin = /finished in [\d.]+\w+, ([\d.]+) req\/s/.exec(out);
  const req = /requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored/.exec(out);
  const proto = /Application protocol: (\S+)/.exec(out)?.[1];
  if (!fin || !req) throw new Error(`cannot read h2load output:\n${out}`);
  if (proto !== 'h2') throw new Error(`h2load did not negotiate h2 (${proto}):\n${out}`);
  const failed = Number(req[3]) + Number(req[4]);
  return { rate: Number(fin[1]), count: Number(req[2]), errors: failed ? `${failed} failed/errored` : '' };
}

const RUNS: { metric: Metric; run: (port: number, s: number) => Promise<Result>; per: number; unit: string }[] = [
  { metric: 'https_rps', run: (p, s) => wrk(p, s, false), per: 10_000, unit: 'req/s' },
  { metric: 'handshakes', run: (p, s) => wrk(p, s, true), per: 1000, unit: 'handshakes/s' },
  { metric: 'h2_rps', run: h2load, per: 10_000, unit: 'req/s' },
];

// ---- the systems ----

function makeCert(): string {
  const key = join(dir, 'bench.key');
  const cert = join(dir, 'bench.crt');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '2',
      '-subj',
      '/CN=bench.test',
      '-addext',
      'subjectAltName=DNS:bench.test,IP:127.0.0.1',
    ],
    { stdio: 'ignore' },
  );
  // one PEM with the key inside: what haproxy's crt takes, and tierlb's `cert:` without `key:`
  const pem = join(dir, 'bench.pem');
  writeFileSync(pem, readFileSync(cert, 'utf8') + readFileSync(key, 'utf8'));
  return pem;
}

async function startTierlb(backend: number, pem: string): Promise<{ port: number; child: ChildProcess }> {
  const port = await freePort();
  const file = join(dir, 'tierlb.yaml');
  writeFileSync(
    file,
    `listeners:
  workers: ${WORKERS}
  control: ${join(dir, 'tierlb.sock')}
  stats: { enabled: false }
  listen:
    - name: bench
      bind: 127.0.0.1:${port}
      mode: http
      tls: { certs: [ { cert: ${pem} } ], alpn: [h2, http/1.1] }
      servers:
        - { name: nginx, address: 127.0.0.1:${backend} }
`,
  );
  const child = start('tierlb listeners', process.execPath, tierlbArgs(['listeners', '--config', file]));
  await waitPort(port, child);
  await new Promise((r) => setTimeout(r, 500));
  return { port, child };
}

async function startHaproxy(backend: number, pem: string): Promise<{ port: number; child: ChildProcess }> {
  const port = await freePort();
  const file = join(dir, 'haproxy.cfg');
  writeFileSync(
    file,
    `global
  nbthread ${WORKERS}
  maxconn 4000
  tune.ssl.default-dh-param 2048
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
  http-reuse always
listen bench
  bind 127.0.0.1:${port} ssl crt ${pem} alpn h2,http/1.1
  server nginx 127.0.0.1:${backend}
`,
  );
  const child = start('haproxy', 'haproxy', ['-f', file, '-db']);
  await waitPort(port, child);
  return { port, child };
}

// ---- the run ----

interface Row {
  system: System | 'ratio';
  metric: string;
  value: number;
  unit: string;
}

async function main(): Promise<number> {
  const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  process.stderr.write(
    `bench:tls ${DURATION}s per measure (+${WARMUP}s warm-up), ${CONNECTIONS} connections, ${WORKERS} tierlb ` +
      `workers / haproxy threads, loopback; load average ${loadavg()} (the cores are shared: compare rows of one run)\n`,
  );
  const pem = makeCert();
  const nginxPort = await freePort();
  const nginx = start('nginx', 'nginx', nginxConfig(join(dir, 'nginx'), [{ port: nginxPort, body: 'hello\n' }]));
  await waitPort(nginxPort, nginx);
  const rows: Row[] = [];
  const got = new Map<string, { rate: number; cpu: number }>();
  for (const system of wanted) {
    const p = system === 'tierlb' ? await startTierlb(nginxPort, pem) : await startHaproxy(nginxPort, pem);
    try {
      for (const m of RUNS) {
        if (WARMUP > 0) await m.run(p.port, WARMUP);
        const pids = processTree(p.child.pid!);
        const before = cpuSeconds(pids);
        const r = await m.run(p.port, DURATION);
        const cpu = r.count ? ((cpuSeconds(pids) - before) / r.count) * m.per : Number.NaN;
        got.set(`${system}/${m.metric}`, { rate: r.rate, cpu });
        rows.push({ system, metric: m.metric, value: Math.round(r.rate), unit: m.unit });
        rows.push({
          system,
          metric: `${m.metric}_cpu`,
          value: Math.round(cpu * 10_000) / 10_000,
          unit: `cpu s per ${m.per / 1000}k (proxy processes)`,
        });
        process.stderr.write(
          `bench: ${system.padEnd(8)} ${m.metric.padEnd(10)} ${r.rate.toFixed(0).padStart(8)} ${m.unit}  ` +
            `${cpu.toFixed(3)} cpu-s/${m.per / 1000}k${r.errors ? `  (${r.errors})` : ''}\n`,
        );
      }
    } finally {
      await stop(p.child);
    }
  }
  await stop(nginx);
  const lines: string[] = [];
  for (const m of RUNS) {
    const t = got.get(`tierlb/${m.metric}`);
    const h = got.get(`haproxy/${m.metric}`);
    if (!t || !h) continue;
    const rate = Math.round((t.rate / h.rate) * 100) / 100;
    const cpu = Math.round((t.cpu / h.cpu) * 100) / 100;
    rows.push({ system: 'ratio', metric: m.metric, value: rate, unit: 'tierlb / haproxy' });
    rows.push({ system: 'ratio', metric: `${m.metric}_cpu`, value: cpu, unit: 'tierlb / haproxy (cpu per unit)' });
    lines.push(`tierlb/haproxy ${m.metric}: ${rate}x the rate, ${cpu}x the cpu per unit`);
  }
  rows.push({ system: 'ratio', metric: 'loadavg_end', value: Number(loadavg().split(' ')[0]), unit: '1-min load' });
  mkdirSync(dirname(opt.out), { recursive: true });
  writeFileSync(opt.out, `${JSON.stringify(rows, null, 2)}\n`);
  for (const l of lines) process.stdout.write(`${l}\n`);
  process.stdout.write(`load average at the end ${loadavg()}; wrote ${opt.out}\n`);
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
    cleanup();
  },
  (e) => {
    process.stderr.write(`bench:tls: ${(e as Error).stack ?? e}\n`);
    cleanup();
    process.exitCode = 1;
  },
);
