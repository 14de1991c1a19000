/** Helpers for the listeners end-to-end tests: backends that say who they are, a running primary, HTTP calls. */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { controlRequest } from '../src/listeners/control.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** ports freePort handed out in this test file: the kernel may give a closed ephemeral port again at once */
const issued = new Set<number>();

/** A free TCP port on `host`, never one this test file was given before (two listeners of one config got the same
 * port from two calls in a row once: "already bound by listen[3]"). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (;;) {
    const p = await new Promise<number>((resolve, reject) => {
      const s = net.createServer();
      s.once('error', reject);
      s.listen(0, host, () => {
        const port = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(port));
      });
    });
    if (issued.has(p)) continue;
    issued.add(p);
    return p;
  }
}

export interface HttpBackend {
  name: string;
  host: string;
  port: number;
  address: string;
  hits: number;
  /** requests in flight now */
  active: number;
  delay: number;
  healthy: boolean;
  lastHeaders?: http.IncomingHttpHeaders;
  server: http.Server;
  close(): Promise<void>;
}

/** An HTTP server answering its name; `/health` answers 200 (503 when !healthy); `?delay=ms` or `.delay` slows it. */
export async function httpBackend(name: string, host = '127.0.0.1', port = 0): Promise<HttpBackend> {
  const b = { name, host, hits: 0, active: 0, delay: 0, healthy: true } as HttpBackend;
  const server = http.createServer((req, res) => {
    if (req.url === '/health') {
      res.writeHead(b.healthy ? 200 : 503).end(b.healthy ? 'ok' : 'sick');
      return;
    }
    b.hits++;
    b.active++;
    b.lastHeaders = req.headers;
    const m = /delay=(\d+)/.exec(req.url ?? '');
    const delay = m ? Number(m[1]) : b.delay;
    req.resume();
    req.on('end', () => {
      setTimeout(() => {
        b.active--;
        res.writeHead(200, { 'content-type': 'text/plain', 'x-server': name });
        res.end(name);
      }, delay);
    });
  });
  server.keepAliveTimeout = 30_000;
  server.on('upgrade', (req, socket) => {
    b.hits++;
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nx-server: ${name}\r\n\r\n`,
    );
    socket.on('data', (d) => socket.write(`${name}:${d}`));
    socket.on('error', () => {});
    void req;
  });
  await new Promise<void>((r) => server.listen(port, host, () => r()));
  b.port = (server.address() as net.AddressInfo).port;
  b.address = `${host}:${b.port}`;
  b.server = server;
  const sockets = new Set<net.Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  b.close = () =>
    new Promise<void>((r) => {
      server.close(() => r());
      for (const s of sockets) s.destroy();
    });
  return b;
}

export interface TcpBackend {
  name: string;
  port: number;
  address: string;
  /** what arrived first on each connection (to see PROXY headers) */
  firstBytes: Buffer[];
  conns: number;
  close(): Promise<void>;
}

/** A TCP server that greets with its name and echoes lines back prefixed with its name; supports half-close. */
export async function tcpBackend(
  name: string,
  host = '127.0.0.1',
  opts: { greet?: boolean } = {},
): Promise<TcpBackend> {
  const b = { name, firstBytes: [] as Buffer[], conns: 0 } as TcpBackend;
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    b.conns++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    let first = true;
    let got = '';
    if (opts.greet) s.write(`hello from ${name}\n`);
    s.on('data', (d: Buffer) => {
      if (first) b.firstBytes.push(d);
      first = false;
      got += d.toString('latin1');
    });
    // half-close: after the client's FIN, answer with everything received, then close our side
    s.on('end', () => s.end(`${name} got ${got.length} bytes`));
  });
  await new Promise<void>((r) => server.listen(0, host, () => r()));
  b.port = (server.address() as net.AddressInfo).port;
  b.address = `${host}:${b.port}`;
  b.close = () =>
    new Promise<void>((r) => {
      server.close(() => r());
      for (const s of sockets) s.destroy();
    });
  return b;
}

export interface Running {
  proc: ChildProcess;
  socket: string;
  configFile: string;
  dir: string;
  stderr: () => string;
  stats(format?: 'json' | 'csv' | 'table'): Promise<string>;
  statsJson(): Promise<Record<string, string | number>[]>;
  reload(): Promise<string>;
  workerPids(): Promise<number[]>;
  writeConfig(yaml: string): void;
  stop(): Promise<void>;
}

/**
 * `tierlb listeners` with `workers` workers (one by default) and one listener `name` (mode `mode`, more keys of its
 * own in `extra`, e.g. `timeout: { client: 1s }`) in front of `backend`, which is made to listen on 127.0.0.1 first.
 */
export async function oneListener(
  backend: net.Server,
  name: string,
  mode: 'tcp' | 'http',
  extra = '',
  workers = 1,
): Promise<{ port: number; run: Running }> {
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', () => r()));
  const port = await freePort();
  const run = await startListeners(`listeners:
  workers: ${workers}
  stats: { enabled: false }
  listen:
    - name: ${name}
      bind: 127.0.0.1:${port}
      mode: ${mode}
${extra ? `      ${extra}\n` : ''}      servers:
        - { name: a, address: 127.0.0.1:${(backend.address() as net.AddressInfo).port} }
`);
  return { port, run };
}

/** Start `tierlb listeners` (primary + workers) from the sources on a config; resolves once it is ready. */
export async function startListeners(
  yaml: string,
  extraArgs: string[] = [],
  env: Record<string, string> = {},
): Promise<Running> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tierlb-l7-'));
  const configFile = path.join(dir, 'listeners.yaml');
  const socket = path.join(dir, 'control.sock');
  fs.writeFileSync(configFile, yaml);
  const proc = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      path.join(ROOT, 'test/listeners-entry.ts'),
      'listeners',
      '--config',
      configFile,
      '--socket',
      socket,
      ...extraArgs,
    ],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TIERLB_LOG_LEVEL: 'info', ...env } },
  );
  let err = '';
  let out = '';
  proc.stderr!.on('data', (d) => (err += d));
  proc.stdout!.on('data', (d) => (out += d));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const deadline = Date.now() + 30_000;
  while (!out.includes('ready')) {
    if (proc.exitCode !== null || Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`listeners did not start (exit ${proc.exitCode}):\n${err}`);
    }
    await sleep(50);
  }
  const r: Running = {
    proc,
    socket,
    configFile,
    dir,
    stderr: () => err,
    stats: (f = 'table') => controlRequest(socket, f === 'table' ? 'stats' : `stats ${f}`),
    statsJson: async () => JSON.parse(await controlRequest(socket, 'stats json')),
    reload: () => controlRequest(socket, 'reload'),
    workerPids: async () =>
      (await controlRequest(socket, 'workers'))
        .split('\n')
        .filter((l) => l && !l.includes('draining'))
        .map((l) => Number(l.split(' ')[0])),
    writeConfig: (y) => fs.writeFileSync(configFile, y),
    stop: async () => {
      if (proc.exitCode === null) proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 8000);
      await exited;
      clearTimeout(t);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  return r;
}

export interface Reply {
  status: number;
  body: string;
  headers: http.IncomingHttpHeaders;
}

/** One HTTP request; rejects on a transport error. */
export function request(
  url: string,
  opts: {
    agent?: http.Agent | false;
    headers?: Record<string, string>;
    method?: string;
    timeout?: number;
    localAddress?: string;
  } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      {
        agent: opts.agent ?? false,
        headers: opts.headers,
        method: opts.method ?? 'GET',
        localAddress: opts.localAddress,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
        res.on('error', reject);
      },
    );
    req.setTimeout(opts.timeout ?? 20_000, () => req.destroy(new Error('client timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** Count answers by body. */
export function tally(bodies: string[]): Record<string, number> {
  const t: Record<string, number> = {};
  for (const b of bodies) t[b] = (t[b] ?? 0) + 1;
  return t;
}

/** Wait until `fn` is true (polling), at most `ms`. */
export async function until(fn: () => boolean | Promise<boolean>, ms = 10_000, step = 50): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn()) return true;
    await sleep(step);
  }
  return false;
}

export interface LoadResult {
  ok: number;
  fail: number;
  errors: string[];
  /** per answer body */
  bodies: Record<string, number>;
  /** time (ms since start) of each failure */
  failAt: number[];
}

/** Keep `concurrency` clients busy on `url` until stop() (keep-alive agent unless keepAlive: false). */
export function load(url: string, opts: { concurrency?: number; keepAlive?: boolean } = {}) {
  const agent = opts.keepAlive === false ? false : new http.Agent({ keepAlive: true, maxSockets: 64 });
  const res: LoadResult = { ok: 0, fail: 0, errors: [], bodies: {}, failAt: [] };
  const t0 = Date.now();
  let stopping = false;
  const clients = Array.from({ length: opts.concurrency ?? 4 }, async () => {
    while (!stopping) {
      try {
        const r = await request(url, { agent, timeout: 10_000 });
        if (r.status === 200) {
          res.ok++;
          res.bodies[r.body] = (res.bodies[r.body] ?? 0) + 1;
        } else {
          res.fail++;
          res.failAt.push(Date.now() - t0);
          res.errors.push(`HTTP ${r.status}`);
        }
      } catch (e) {
        res.fail++;
        res.failAt.push(Date.now() - t0);
        res.errors.push(String((e as Error).message));
      }
    }
  });
  return {
    res,
    since: () => Date.now() - t0,
    stop: async () => {
      stopping = true;
      await Promise.all(clients);
      if (agent) agent.destroy();
      return res;
    },
  };
}

/** `n` bytes that differ at every offset modulo a prime, so a reused or reordered buffer shows in a relayed copy */
export function pattern(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed + (i >> 13)) % 251;
  return b;
}

export const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
