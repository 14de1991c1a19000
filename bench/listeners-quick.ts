/**
 * A quick A/B micro benchmark for the listeners' hot path (not `npm run bench:l7`, which is the full comparison):
 * one nginx backend on a generated config, then rounds of wrk against each system in turn so that every system is
 * measured in the same minute on a shared, noisy machine. Systems: direct (nginx), tierlb (`tierlb listeners`,
 * N workers, built: ./lib/product.ts), http-proxy (one process of http-proxy-3 with a keep-alive agent), haproxy
 * (nbthread N), tierlb-central (tierlb with TIERLB_LISTENERS_CENTRAL=1: every pick through the primary). Prints req/s and p99 per run and the median per system.
 *
 *   node --import tsx bench/listeners-quick.ts [--seconds 5] [--rounds 2] [--connections 16] [--workers 2]
 *     [--systems direct,tierlb,http-proxy,haproxy] [--balance roundrobin] [--servers 1] [--prof DIR]
 *     [--node-flags '--flag ...' (system tierlb-flags: tierlb with node, and so every worker, started with them)]
 *
 * --prof DIR starts tierlb and http-proxy with --cpu-prof (tierlb's workers inherit it) and writes the .cpuprofile
 * files to DIR. BENCH_TRACE_GC=1 starts them with --trace-gc instead, their output on this one's.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { cpuSeconds, freePort, parseWrk, processTree } from './lib/measure.js';
import { tierlbArgs } from './lib/product.js';
import { haproxyConfig, nginxConfig } from './lib/servers.js';

const REPO = new URL('..', import.meta.url).pathname;
const { values: opt } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '2' },
    connections: { type: 'string', default: '16' },
    workers: { type: 'string', default: '2' },
    systems: { type: 'string', default: 'direct,tierlb,http-proxy,haproxy' },
    balance: { type: 'string', default: 'roundrobin' },
    servers: { type: 'string', default: '1' },
    prof: { type: 'string' },
    'node-flags': { type: 'string', default: '' },
  },
});
const SECONDS = Math.min(60, Number(opt.seconds));
const WORKERS = Number(opt.workers);
const SERVERS = Number(opt.servers);
const dir = mkdtempSync(join(tmpdir(), 'tierlb-lq-'));
const children = new Set<ChildProcess>();

function cleanup(): void {
  for (const c of children) {
    try {
      if (c.pid) process.kill(-c.pid, 'SIGKILL');
    } catch {}
  }
  rmSync(dir, { recursive: true, force: true });
}
process.on('exit', cleanup);
process.once('SIGINT', () => process.exit(130));

function start(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): ChildProcess {
  const c = spawn(cmd, args, {
    cwd: REPO,
    env,
    stdio: ['ignore', process.env.BENCH_TRACE_GC ? 'inherit' : 'ignore', 'pipe'],
    detached: true,
  });
  let err = '';
  c.stderr?.on('data', (d) => {
    err = (err + d).slice(-2000);
  });
  c.on('exit', (code) => {
    if (children.has(c)) process.stderr.write(`${cmd} exited ${code}: ${err}\n`);
    children.delete(c);
  });
  children.add(c);
  return c;
}

function stop(c: ChildProcess): Promise<void> {
  children.delete(c);
  return new Promise((resolve) => {
    if (c.exitCode !== null) return resolve();
    c.once('exit', () => resolve());
    try {
      // the primary only: it drains its workers, which then exit normally (and write their --cpu-prof)
      process.kill(c.pid!, 'SIGINT');
    } catch {}
    setTimeout(() => {
      try {
        process.kill(-c.pid!, 'SIGKILL');
      } catch {}
    }, 4000).unref();
  });
}

async function waitHttp(port: number): Promise<void> {
  for (let i = 0; i < 150; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      let got = '';
      s.once('connect', () => s.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
      s.on('data', (d) => {
        got += d;
      });
      s.once('close', () => resolve(got.startsWith('HTTP/1.1 200')));
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`nothing answers on ${port}`);
}

let nginxChild: ChildProcess | undefined;
async function nginx(): Promise<number[]> {
  const ports = await Promise.all(Array.from({ length: SERVERS }, () => freePort()));
  nginxChild = start(
    'nginx',
    nginxConfig(
      join(dir, 'nginx'),
      ports.map((port, i) => ({ port, body: `s${i}\n` })),
    ),
  );
  await waitHttp(ports[0]!);
  return ports;
}

async function tierlb(backends: number[], central = false, flags: string[] = []): Promise<[number, ChildProcess]> {
  const port = await freePort();
  const file = join(dir, 'l.yaml');
  writeFileSync(
    file,
    `listeners:
  workers: ${WORKERS}
  control: ${join(dir, 'l.sock')}
  stats: { enabled: false }
  listen:
    - name: bench
      bind: 127.0.0.1:${port}
      mode: http
      balance: ${opt.balance}
      servers:
${backends.map((b, i) => `        - { name: s${i}, address: 127.0.0.1:${b} }`).join('\n')}
`,
  );
  const prof = [
    ...flags,
    ...(opt.prof ? ['--cpu-prof', `--cpu-prof-dir=${opt.prof}`] : process.env.BENCH_TRACE_GC ? ['--trace-gc'] : []),
  ];
  const env = { ...process.env, TIERLB_LISTENERS_CENTRAL: central ? '1' : '0' };
  const c = start(process.execPath, [...prof, ...tierlbArgs(['listeners', '--config', file])], env);
  await waitHttp(port);
  return [port, c];
}

async function httpProxy(backends: number[]): Promise<[number, ChildProcess]> {
  const port = await freePort();
  const prof = opt.prof ? ['--cpu-prof', `--cpu-prof-dir=${opt.prof}`] : [];
  const c = start(process.execPath, [
    ...prof,
    'bench/l7-http-proxy.mjs',
    String(port),
    `http://127.0.0.1:${backends[0]}`,
  ]);
  await waitHttp(port);
  return [port, c];
}

async function haproxy(backends: number[]): Promise<[number, ChildProcess]> {
  const port = await freePort();
  const c = start(
    'haproxy',
    haproxyConfig(join(dir, 'h.cfg'), {
      port,
      threads: WORKERS,
      balance: opt.balance,
      servers: backends.map((b, i) => ({ name: `s${i}`, port: b })),
    }),
  );
  await waitHttp(port);
  return [port, c];
}

function wrk(port: number, seconds = SECONDS): Promise<{ rps: number; p99: number; errors: string }> {
  return new Promise((resolve, reject) => {
    const c = spawn('wrk', ['-t1', `-c${opt.connections}`, `-d${seconds}s`, '--latency', `http://127.0.0.1:${port}/`]);
    let out = '';
    c.stdout.on('data', (d) => {
      out += d;
    });
    c.on('exit', (code) => {
      if (code !== 0) return reject(new Error(out));
      try {
        const r = parseWrk(out);
        resolve({ rps: r.rps, p99: r.p99ms, errors: r.errors.join('; ') });
      } catch (e) {
        reject(e);
      }
    });
  });
}

const backends = await nginx();
const systems = opt.systems.split(',');
const starters: Record<string, (b: number[]) => Promise<[number, ChildProcess | null]>> = {
  direct: async (b) => [b[0]!, null],
  tierlb: (b) => tierlb(b),
  // the same code with every pick through the primary (the design before the shared memory)
  'tierlb-central': (b) => tierlb(b, true),
  // the same, node (and so every worker) started with --node-flags
  'tierlb-flags': (b) => tierlb(b, false, opt['node-flags'].split(' ').filter(Boolean)),
  'http-proxy': httpProxy,
  haproxy,
};
const results: Record<string, { rps: number; p99: number; cpu: number }[]> = {};
for (let r = 0; r < Number(opt.rounds); r++) {
  for (const s of systems) {
    const [port, child] = await starters[s]!(backends);
    await wrk(port, 1).catch(() => null); // warm-up (JIT, keep-alive pools)
    const pids = child?.pid ? processTree(child.pid) : [];
    const t0 = cpuSeconds(pids);
    const res = await wrk(port);
    // CPU ms per 1000 requests
    const cpu = pids.length ? ((cpuSeconds(pids) - t0) * 1000 * 1000) / (res.rps * SECONDS) : Number.NaN;
    process.stdout.write(
      `round ${r + 1} ${s.padEnd(14)} ${res.rps.toFixed(0).padStart(6)} req/s  p99 ${res.p99.toFixed(2).padStart(6)} ms  ` +
        `cpu ${cpu.toFixed(1)} ms/1k req ${res.errors}\n`,
    );
    (results[s] ??= []).push({ ...res, cpu });
    if (child) await stop(child);
  }
}
const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
for (const s of systems) {
  const rs = results[s]!;
  process.stdout.write(
    `median ${s.padEnd(14)} ${median(rs.map((x) => x.rps)).toFixed(0)} req/s  p99 ${median(rs.map((x) => x.p99)).toFixed(2)} ms  ` +
      `cpu ${median(rs.map((x) => x.cpu)).toFixed(1)} ms/1k req\n`,
  );
}
// nginx (SIGINT = fast shutdown) explicitly: the exit hook's group kill alone left masters behind
if (nginxChild) await stop(nginxChild);
process.exit(0);
