/**
 * The demo's failover step (VRRP lab): while a keep-alive HTTP connection sends a request every 0.1 s and a slow
 * download runs, the master director's link is cut (its port on the front switch goes down). The backup director
 * takes the VIP (VRRP) and, having received the master's connections over the sync protocol, forwards the
 * established connections to the same LB nodes: both continue on their own TCP connections. What is measured: when
 * the backup held the VIP, the longest gap between two keep-alive answers, the download's longest stall and whether
 * it arrived byte for byte.
 */
import { spawn } from 'node:child_process';
import { LabError } from './errors.js';
import { admList, nsRun, vipHolders } from './lab.js';
import { directorSocket, hostsOf, type LabPlan, masterDirector } from './plan.js';
import { patternSha256 } from './proc.js';

/**
 * The client, run with `node -e` in the client's namespace: args VIP, port, download bytes, download rate (bytes/s).
 * One keep-alive connection (an agent with one socket) sends GET / every 100 ms until the download has ended; the
 * download of /big?bytes=N is read at the given rate (the socket paused in between, as curl --limit-rate does). Prints
 * `{"started":true}` once both run, then one JSON line with what it saw.
 */
export const FAILOVER_CLIENT_JS = `
const http = require('node:http'), net = require('node:net'), crypto = require('node:crypto');
const [vip, port, bytes, rate] = process.argv.slice(1).map((x, i) => (i ? Number(x) : x));
const t0 = Date.now(), now = () => Date.now() - t0;
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const sockets = new Set();
const ka = { sent: 0, ok: 0, errors: [], sockets: 0, gapMs: 0, gapEndMs: 0, last: -1 };
const dl = { bytes: 0, ok: false, sha256: '', stallMs: 0, stallEndMs: 0, error: null, ms: 0 };
let dlDone = false, started = false;
const maybeStarted = () => {
  if (!started && ka.ok >= 3 && dl.bytes > 0) { started = true; console.log(JSON.stringify({ started: true, atMs: now() })); }
};
function finish() {
  if (!dlDone || ka.pending) return;
  delete ka.last; delete ka.pending;
  console.log(JSON.stringify({ ka, dl }));
  process.exit(0);
}
function kaOne() {
  if (dlDone) return finish();
  const sent = now();
  ka.sent++; ka.pending = true;
  const req = http.get({ host: vip, port, path: '/?keepalive=' + ka.sent, agent }, (res) => {
    res.resume();
    res.on('end', () => {
      const t = now();
      ka.pending = false;
      if (res.statusCode === 200) ka.ok++; else ka.errors.push('HTTP ' + res.statusCode);
      if (ka.last >= 0 && t - ka.last > ka.gapMs) { ka.gapMs = t - ka.last; ka.gapEndMs = t; }
      ka.last = t;
      maybeStarted();
      setTimeout(kaOne, Math.max(0, 100 - (t - sent)));
    });
  });
  req.on('socket', (s) => { if (!sockets.has(s)) { sockets.add(s); ka.sockets = sockets.size; } });
  let timedOut = false;
  req.setTimeout(30000, () => { timedOut = true; req.destroy(); });
  req.on('error', (e) => { ka.pending = false; ka.errors.push(timedOut ? 'no answer in 30 s' : e.message); setTimeout(kaOne, 100); });
}
kaOne();
// the download on a plain socket, read at the rate: paused between reads, so the rest waits in the server's socket
// (the client's receive buffer is small), as with curl --limit-rate
const h = crypto.createHash('sha256');
const dlStart = now();
const sock = net.connect({ host: vip, port }, () => sock.write('GET /big?bytes=' + bytes + ' HTTP/1.1\\r\\nHost: ' + vip + '\\r\\nConnection: close\\r\\n\\r\\n'));
let head = Buffer.alloc(0), status = 0, waiting = now();
const end = (err) => {
  if (dlDone) return;
  const t = now();
  if (t - waiting > dl.stallMs) { dl.stallMs = t - waiting; dl.stallEndMs = t; }
  if (err) dl.error = err; else { dl.sha256 = h.digest('hex'); dl.ok = status === 200 && dl.bytes === bytes; }
  dl.ms = now() - dlStart; dlDone = true; sock.destroy(); finish();
};
sock.setTimeout(30000, () => end('download stalled for 30 s'));
sock.on('error', (e) => end(e.message));
sock.on('end', () => end(dl.bytes === bytes ? null : 'closed after ' + dl.bytes + ' bytes'));
sock.on('data', (b) => {
  const t = now();
  if (t - waiting > dl.stallMs) { dl.stallMs = t - waiting; dl.stallEndMs = t; }
  if (!status) {
    head = Buffer.concat([head, b]);
    const i = head.indexOf('\\r\\n\\r\\n');
    if (i < 0) return;
    status = Number(head.subarray(9, 12).toString());
    b = head.subarray(i + 4);
  }
  dl.bytes += b.length; h.update(b);
  maybeStarted();
  if (dl.bytes >= bytes) return end(null);
  const wait = (dl.bytes / rate) * 1000 - (t - dlStart);
  if (wait > 0) { sock.pause(); setTimeout(() => { waiting = now(); sock.resume(); }, wait); }
  else waiting = t;
});
`;

export interface FailoverClientResult {
  ka: { sent: number; ok: number; errors: string[]; sockets: number; gapMs: number; gapEndMs: number };
  dl: {
    bytes: number;
    ok: boolean;
    sha256: string;
    stallMs: number;
    stallEndMs: number;
    error: string | null;
    ms: number;
  };
}

export interface FailoverResult {
  master: string;
  backup: string;
  /** established connections in the backup's table just before the cut (received over the sync protocol) */
  syncedBefore: number;
  /** ms from the cut until the backup held the VIP (undefined: it never did) */
  vipMovedMs?: number;
  /** the client's times are relative to its start; the cut's, in the same frame */
  cutAtMs: number;
  client: FailoverClientResult;
  /** the expected download */
  bytes: number;
  byteExact: boolean;
  problems: string[];
}

/** the client's tcp_rmem during the step: at most 32 KiB of the download waits in its buffer (0.25 s at 128 KiB/s) */
const RMEM = '4096 16384 32768';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const conns = async (plan: LabPlan, dir: string) => {
  try {
    const table = await admList(directorSocket(plan, dir), ['-L', '-n', '-c']);
    return table.split('\n').filter((l) => / ESTABLISHED /.test(l)).length;
  } catch {
    return 0;
  }
};

/**
 * Run the failover: start the client, cut the master's switch port once both flows run, wait for the client's
 * verdict, put the port back. `bytes` at `rate` bytes/s sets how long the download runs (the cut comes ~3 s in).
 */
export async function failover(
  plan: LabPlan,
  o: { bytes?: number; rate?: number; cutAfterMs?: number; log?: (s: string) => void } = {},
): Promise<FailoverResult> {
  const bytes = o.bytes ?? 1280 * 1024;
  const rate = o.rate ?? 128 * 1024;
  const c = plan.cfg;
  const http = c.listeners.find((l) => l.mode === 'http');
  if (!http) throw new LabError('ELAB_NO_LISTENER', 'the failover step needs an http listener in lab.listeners');
  const held = vipHolders(plan);
  const master = held[0] ?? masterDirector(plan);
  const backup = c.directors.find((d) => d.name !== master)?.name;
  if (!backup) throw new LabError('ELAB_NO_HOST', 'the failover step needs two directors');
  const client = hostsOf(plan, 'client')[0];
  const sw = hostsOf(plan, 'switch')[0];
  const port = `f-${master}`;
  // a small receive buffer in the client's namespace while the step runs: the download stays on the wire (paced by
  // the reader), not in the client's buffer, so the cut really interrupts it
  const rmem = (await nsRun(client.ns, 'sysctl', ['-n', 'net.ipv4.tcp_rmem'])).stdout.trim().split(/\s+/).join(' ');
  await nsRun(client.ns, 'sysctl', ['-qw', `net.ipv4.tcp_rmem=${RMEM}`]);
  const child = spawn(
    'ip',
    [
      'netns',
      'exec',
      client.ns,
      process.execPath,
      '-e',
      FAILOVER_CLIENT_JS,
      c.vip,
      String(http.port),
      String(bytes),
      String(rate),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let buf = '';
  let err = '';
  const lines: string[] = [];
  let onLine: (() => void) | null = null;
  child.stdout.on('data', (d) => {
    buf += d;
    let i = buf.indexOf('\n');
    while (i >= 0) {
      lines.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
      i = buf.indexOf('\n');
      onLine?.();
    }
  });
  child.stderr.on('data', (d) => {
    err += d;
  });
  const exited = new Promise<number>((r) => child.once('close', (code) => r(code ?? -1)));
  const nextLine = async (timeoutMs: number): Promise<string | undefined> => {
    const deadline = Date.now() + timeoutMs;
    while (!lines.length && Date.now() < deadline && child.exitCode === null) {
      await new Promise<void>((r) => {
        onLine = r;
        setTimeout(r, 100);
      });
      onLine = null;
    }
    return lines.shift();
  };
  const ip = (args: string[]) =>
    new Promise<void>((r) => spawn('ip', args, { stdio: 'ignore' }).once('close', () => r()));
  let cutAtMs = -1;
  try {
    const first = await nextLine(15_000);
    if (!first?.includes('"started"'))
      throw new LabError('ELAB_FAILOVER', `the failover client did not start: ${first ?? ''}${err.trim()}`);
    // the client's clock: its times count from its own start
    const startedAt = (JSON.parse(first) as { atMs: number }).atMs;
    const seen = Date.now();
    // the sync master sends what it queued at least every 2 s (as the kernel's): cut after that
    await sleep(o.cutAfterMs ?? 3000);
    const syncedBefore = await conns(plan, backup);
    o.log?.(`cutting ${master}'s link (${port} on the front switch down)`);
    cutAtMs = startedAt + (Date.now() - seen);
    const cut = Date.now();
    await ip(['-n', sw.ns, 'link', 'set', port, 'down']);
    let vipMovedMs: number | undefined;
    while (Date.now() - cut < 20_000 && child.exitCode === null) {
      if (vipHolders(plan).includes(backup)) {
        vipMovedMs = Date.now() - cut;
        break;
      }
      await sleep(100);
    }
    const last = await nextLine((bytes / rate) * 1000 + 60_000);
    await exited;
    if (!last) throw new LabError('ELAB_FAILOVER', `the failover client gave no result: ${err.trim()}`);
    const client2 = JSON.parse(last) as FailoverClientResult;
    const byteExact = client2.dl.ok && client2.dl.sha256 === patternSha256(bytes);
    const problems: string[] = [];
    if (client2.ka.sockets !== 1 || client2.ka.errors.length)
      problems.push(
        `the keep-alive connection broke: ${client2.ka.sockets} connections, errors: ${client2.ka.errors.join('; ') || 'none'}`,
      );
    if (!byteExact)
      problems.push(
        `the download did not complete byte for byte: ${client2.dl.bytes}/${bytes} bytes${client2.dl.error ? `, ${client2.dl.error}` : ''}`,
      );
    if (vipMovedMs === undefined) problems.push(`${backup} did not take the VIP within 20 s`);
    return { master, backup, syncedBefore, vipMovedMs, cutAtMs, client: client2, bytes, byteExact, problems };
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    if (cutAtMs >= 0) await ip(['-n', sw.ns, 'link', 'set', port, 'up']);
    if (rmem) await nsRun(client.ns, 'sysctl', ['-qw', `net.ipv4.tcp_rmem=${rmem}`]);
  }
}

/** The step's report, for the demo. */
export function formatFailover(r: FailoverResult): string[] {
  const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  const k = r.client.ka;
  const d = r.client.dl;
  return [
    `  before the cut: ${r.backup} held ${r.syncedBefore} connection(s) received from ${r.master} over the sync protocol`,
    `  ${r.backup} held the VIP ${r.vipMovedMs === undefined ? 'never (20 s)' : `${s(r.vipMovedMs)} after the cut`}`,
    `  keep-alive: ${k.ok}/${k.sent} requests answered on ${k.sockets} connection(s)${k.errors.length ? `, errors: ${k.errors.join('; ')}` : ''}; longest gap between answers ${s(k.gapMs)} (ended ${s(k.gapEndMs - r.cutAtMs)} after the cut)`,
    `  download: ${d.bytes}/${r.bytes} bytes ${r.byteExact ? 'byte-exact' : 'NOT byte-exact'} in ${s(d.ms)}; longest stall ${s(d.stallMs)}${d.error ? `; ${d.error}` : ''}`,
    `failover gap: ${s(Math.max(k.gapMs, d.stallMs))} (keep-alive ${s(k.gapMs)}, download ${s(d.stallMs)}); ${r.problems.length ? 'connections BROKEN' : 'both connections survived'}`,
  ];
}
