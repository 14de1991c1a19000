/** What the HTTP benchmarks (bench/l7.ts, bench/listeners-quick.ts) measure with: free ports, wrk's output, CPU time. */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';

const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** The process and all its descendants (cluster workers, haproxy's master/worker). */
export function processTree(root: number): number[] {
  const parent = new Map<number, number>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      parent.set(Number(d), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {}
  }
  const tree = [root];
  for (let i = 0; i < tree.length; i++) for (const [pid, ppid] of parent) if (ppid === tree[i]) tree.push(pid);
  return tree;
}

/** utime + stime of the processes, in seconds (all threads of each process are included). */
export function cpuSeconds(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(f[11]) + Number(f[12]); // fields 14 and 15 of proc(5)
    } catch {}
  }
  return ticks / CLK_TCK;
}

export interface WrkResult {
  requests: number;
  seconds: number;
  rps: number;
  p99ms: number;
  errors: string[];
}

function toMs(v: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(v.trim());
  if (!m) throw new Error(`cannot read wrk latency '${v}'`);
  const n = Number(m[1]);
  return m[2] === 'us' ? n / 1000 : m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : n * 60_000;
}

export function parseWrk(out: string): WrkResult {
  const req = /(\d+) requests in ([\d.]+)(us|ms|s|m)/.exec(out);
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  const p99 = /^\s*99(?:\.000)?%\s+(\S+)/m.exec(out);
  if (!req || !rps || !p99) throw new Error(`cannot read wrk output:\n${out}`);
  const errors: string[] = [];
  const sock = /Socket errors: (.*)/.exec(out);
  if (sock) errors.push(`socket errors: ${sock[1]}`);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  if (non2xx) errors.push(`${non2xx[1]} non-2xx/3xx responses`);
  return {
    requests: Number(req[1]),
    seconds: toMs(`${req[2]}${req[3]}`) / 1000,
    rps: Number(rps[1]),
    p99ms: toMs(p99[1]),
    errors,
  };
}

/** resident memory (VmRSS) of the processes, in KiB */
export function rssKiB(pids: number[]): number {
  let kib = 0;
  for (const pid of pids) {
    try {
      const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m) kib += Number(m[1]);
    } catch {}
  }
  return kib;
}
