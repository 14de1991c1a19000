/**
 * Processes of the lab: started detached inside a namespace (`ip netns exec` execs the command, so the pid is the
 * daemon's), with a pid file and a log under the lab's state dir; stopped by pid.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LabError } from './errors.js';
import type { ProcRecord } from './state.js';

const HERE = dirname(fileURLToPath(import.meta.url));
/** .ts when run from the sources (tsx), .js from dist/ */
const EXT = fileURLToPath(import.meta.url).endsWith('.ts') ? 'ts' : 'js';
/** the repository root (src/.. or dist/..): the working directory of the daemons, so `--import tsx` resolves */
export const REPO_ROOT = join(HERE, '..', '..');

/** argv that runs a module of this build (a path relative to src/ or dist/, without extension) with node. */
export function nodeModuleArgv(rel: string): string[] {
  const file = join(HERE, '..', `${rel}.${EXT}`);
  return EXT === 'ts' ? [process.execPath, '--import', 'tsx', file] : [process.execPath, file];
}

/**
 * argv of `tierlb ARGS` for this build: src/cli/entry.ts (or dist/cli/entry.js), named by path so the lab imports
 * nothing of the CLI.
 */
export function tierlbArgv(args: string[]): string[] {
  return [...nodeModuleArgv('cli/entry'), ...args];
}

/** Start argv inside ns, detached, stdout+stderr to the log; returns the pid (also written to <dir>/<id>.pid). */
export function spawnDetached(dir: string, id: string, host: string, ns: string, argv: string[]): ProcRecord {
  const log = join(dir, `${id}.log`);
  const fd = openSync(log, 'a');
  try {
    const child = spawn('ip', ['netns', 'exec', ns, ...argv], {
      cwd: REPO_ROOT,
      detached: true,
      stdio: ['ignore', fd, fd],
      env: { ...process.env, TIERLB_LOG_LEVEL: process.env.TIERLB_LOG_LEVEL ?? 'info' },
    });
    child.unref();
    if (!child.pid) throw new LabError('ELAB_COMMAND', `cannot start ${argv.join(' ')} in ${ns}`);
    writeFileSync(join(dir, `${id}.pid`), `${child.pid}\n`);
    return { id, host, ns, pid: child.pid, argv, log };
  } finally {
    closeSync(fd);
  }
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A process's command line ('' when it is gone). */
export function cmdlineOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
  } catch {
    return '';
  }
}

/**
 * Whether the recorded pid is still the process spawnDetached started, not a recycled pid of someone else's: its
 * command line is the recorded argv (`ip netns exec` execs it) or, in the instant before that exec, `ip netns exec NS
 * argv`.
 */
export function isOurProcess(p: Pick<ProcRecord, 'pid' | 'ns' | 'argv'>): boolean {
  const cmd = cmdlineOf(p.pid);
  return cmd !== '' && (cmd === p.argv.join(' ').trim() || cmd === ['ip', 'netns', 'exec', p.ns, ...p.argv].join(' '));
}

/** The last lines of a log, for error messages. */
export function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/**
 * The backend server, run with `node -e` in each backend namespace: HTTP on the HTTP ports and a TCP server on the
 * TCP ports, all saying who they are and who asked (the LB node's overlay address); HTTP `/big?bytes=N` sends N bytes
 * of a fixed pattern (the ecmp demo's long downloads).
 */
export const BACKEND_JS = `
const http = require('node:http'), net = require('node:net');
const [name, httpPorts, tcpPorts] = process.argv.slice(1);
let up = 0; const want = (httpPorts ? httpPorts.split(',').length : 0) + (tcpPorts ? tcpPorts.split(',').length : 0);
const ready = () => { if (++up === want) console.log('ready ' + name); };
for (const p of (httpPorts ? httpPorts.split(',') : [])) {
  http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (req.url === '/health') { res.end('ok\\n'); return; }
      if (req.url.startsWith('/big')) {
        // /big?bytes=N: N bytes of the pattern (k * 7) % 251, for long downloads checked byte for byte
        const n = Number(new URL(req.url, 'http://x').searchParams.get('bytes') || 262144);
        const b = Buffer.alloc(n);
        for (let k = 0; k < n; k++) b[k] = (k * 7) % 251;
        res.setHeader('x-backend', name);
        res.end(b);
        return;
      }
      res.setHeader('content-type', 'application/json');
      res.setHeader('x-backend', name);
      res.end(JSON.stringify({ backend: name, port: Number(p), from: req.socket.remoteAddress, xff: req.headers['x-forwarded-for'] || null }) + '\\n');
    });
  }).listen(Number(p), '0.0.0.0', ready);
}
for (const p of (tcpPorts ? tcpPorts.split(',') : [])) {
  net.createServer((s) => {
    s.on('error', () => {});
    s.end(JSON.stringify({ backend: name, port: Number(p), from: s.remoteAddress }) + '\\n');
  }).listen(Number(p), '0.0.0.0', ready);
}
`;

/** The sha256 of what a backend sends for `/big?bytes=N`: N bytes of the pattern (k * 7) % 251. */
export function patternSha256(bytes: number): string {
  const b = Buffer.alloc(bytes);
  for (let k = 0; k < bytes; k++) b[k] = (k * 7) % 251;
  return createHash('sha256').update(b).digest('hex');
}
