/**
 * `tierlb lab trace`: tcpdump on every hop of the lab (started before the traffic, stopped after), requests from a
 * client, then the pcaps are read (./pcap.ts) and each request followed hop by hop (./trace.ts).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LabError } from './errors.js';
import { nsRun, type Out } from './lab.js';
import { parsePcap } from './pcap.js';
import { hostsOf, type LabPlan, macFor, macNames } from './plan.js';
import {
  type CapturePoint,
  type ClientAnswer,
  clientFlows,
  type FlowTrace,
  formatTrace,
  formatTraceSummary,
  type TraceContext,
  traceFlow,
  traceOk,
} from './trace.js';

interface Capture {
  point: Omit<CapturePoint, 'frames'>;
  ns: string;
  file: string;
  child: ChildProcess;
  stderr: string;
}

/** Where tcpdump listens: each client's, director's, LB node's (front + underlay), hypervisor's and backend's links. */
export function capturePoints(
  plan: LabPlan,
): { host: string; ns: string; ifname: string; role: CapturePoint['role'] }[] {
  const out: { host: string; ns: string; ifname: string; role: CapturePoint['role'] }[] = [];
  for (const h of plan.hosts) {
    if (h.role === 'switch') continue;
    for (const l of h.links) out.push({ host: h.name, ns: h.ns, ifname: l.ifname, role: h.role });
  }
  return out;
}

export async function startCaptures(plan: LabPlan, dir: string): Promise<Capture[]> {
  const caps: Capture[] = [];
  for (const p of capturePoints(plan)) {
    const file = join(dir, `${p.host}-${p.ifname}.pcap`);
    const child = spawn(
      'ip',
      [
        'netns',
        'exec',
        p.ns,
        'tcpdump',
        '-i',
        p.ifname,
        '-Z',
        'root',
        '--immediate-mode',
        '-U',
        '-n',
        '-s',
        '256',
        '-w',
        file,
        'tcp or udp port 4789',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    const c: Capture = { point: { host: p.host, ifname: p.ifname, role: p.role }, ns: p.ns, file, child, stderr: '' };
    child.stderr?.on('data', (d) => {
      c.stderr += d;
    });
    caps.push(c);
  }
  const deadline = Date.now() + 10000;
  while (caps.some((c) => !c.stderr.includes('listening on'))) {
    const dead = caps.find((c) => c.child.exitCode !== null);
    if (dead || Date.now() > deadline) {
      await stopCaptures(caps);
      throw new LabError(
        'ELAB_COMMAND',
        `tcpdump did not start on ${dead ? `${dead.point.host} ${dead.point.ifname}: ${dead.stderr.trim()}` : 'every hop in 10 s'}`,
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return caps;
}

export async function stopCaptures(caps: Capture[]): Promise<void> {
  await Promise.all(
    caps.map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.child.exitCode !== null || c.child.signalCode !== null) return resolve();
          const t = setTimeout(() => {
            c.child.kill('SIGKILL');
          }, 3000);
          c.child.once('exit', () => {
            clearTimeout(t);
            resolve();
          });
          c.child.kill('SIGINT');
        }),
    ),
  );
}

export function traceContext(plan: LabPlan, port?: number): TraceContext {
  const c = plan.cfg;
  const l =
    (port ? c.listeners.find((x) => x.port === port) : c.listeners.find((x) => x.mode === 'http')) ?? c.listeners[0];
  if (port && l.port !== port)
    throw new LabError(
      'ELAB_NO_LISTENER',
      `no listener on port ${port} (ports: ${c.listeners.map((x) => x.port).join(', ')})`,
    );
  return {
    vip: c.vip,
    port: l.port,
    listener: l.name,
    mode: l.mode,
    vni: c.overlay.vni,
    vxlanPort: c.overlay.dstport,
    clients: c.clients.map((x) => ({
      name: x.name,
      ip: x.address,
      mac: macFor(c.ecmp ? 'client' : 'front', x.address),
    })),
    directors: c.directors.map((x) => ({ name: x.name, ip: x.address, mac: macFor('front', x.address) })),
    lbNodes: c.lbNodes.map((x) => ({
      name: x.name,
      ip: x.address,
      mac: macFor('front', x.address),
      underlay: x.underlay,
      overlay: x.overlay,
    })),
    hypervisors: c.hypervisors.map((h) => ({ name: h.name, underlay: h.underlay })),
    backends: c.backends.map((b) => ({ name: b.name, ip: b.address, port: l.backendPort })),
    macNames: Object.fromEntries(macNames(plan)),
    ...(c.ecmp
      ? {
          router: {
            name: c.ecmp.router.name,
            frontMac: macFor('front', c.ecmp.router.address),
            clientMac: macFor('client', c.ecmp.router.clientAddress),
          },
        }
      : {}),
  };
}

/** One request from a client to VIP:port; what came back (the backend names itself and its caller). */
export async function request(plan: LabPlan, ctx: TraceContext, client: string): Promise<ClientAnswer> {
  const ns = hostsOf(plan, 'client').find((h) => h.name === client)!.ns;
  if (ctx.mode === 'http') {
    const r = await nsRun(ns, 'curl', ['-s', '-m', '3', '-w', '\n%{local_port}', `http://${ctx.vip}:${ctx.port}/`]);
    const lines = r.stdout.trimEnd().split('\n');
    const lport = lines.pop();
    const body = lines.join('\n').trim();
    try {
      const j = JSON.parse(body) as { backend?: string; from?: string };
      return { ok: r.code === 0 && !!j.backend, backend: j.backend, from: j.from, clientPort: Number(lport) };
    } catch {
      return { ok: false, clientPort: Number(lport) || undefined };
    }
  }
  const r = await nsRun(ns, 'nc', ['-w', '3', '-N', ctx.vip, String(ctx.port)], 5000);
  try {
    const j = JSON.parse(r.stdout.trim()) as { backend?: string; from?: string };
    return { ok: r.code === 0 && !!j.backend, backend: j.backend, from: j.from };
  } catch {
    return { ok: false };
  }
}

export interface TraceResult {
  traces: FlowTrace[];
  answers: ClientAnswer[];
  ctx: TraceContext;
  ok: boolean;
  /** where the pcaps were kept (when asked) */
  kept?: string;
}

/** Capture, send `requests` requests one after another, stop, analyse. */
export async function traceRequests(
  plan: LabPlan,
  o: { requests: number; pcapDir?: string; port?: number; client?: string },
): Promise<TraceResult> {
  const ctx = traceContext(plan, o.port);
  const client = o.client ?? plan.cfg.clients[0].name;
  const dir = mkdtempSync(join(tmpdir(), `tierlb-trace-${plan.prefix}-`));
  try {
    const caps = await startCaptures(plan, dir);
    const answers: ClientAnswer[] = [];
    try {
      for (let i = 0; i < o.requests; i++) answers.push(await request(plan, ctx, client));
      await new Promise((r) => setTimeout(r, 300)); // the last FIN/ACKs
    } finally {
      await stopCaptures(caps);
    }
    const points: CapturePoint[] = caps.map((c) => {
      let frames: CapturePoint['frames'] = [];
      try {
        frames = parsePcap(readFileSync(c.file), [ctx.vxlanPort]).frames;
      } catch {}
      return { ...c.point, frames };
    });
    const flows = clientFlows(points, ctx).filter((f) => f.client === client);
    const traces = flows.map((f) => {
      const a =
        answers.find((x) => x.clientPort === f.port) ?? (ctx.mode === 'tcp' ? answers[flows.indexOf(f)] : undefined);
      return traceFlow(points, ctx, f, a);
    });
    let kept: string | undefined;
    if (o.pcapDir) {
      mkdirSync(o.pcapDir, { recursive: true });
      for (const c of caps) copyFileSync(c.file, join(o.pcapDir, `${c.point.host}-${c.point.ifname}.pcap`));
      kept = o.pcapDir;
    }
    const ok = traces.length === o.requests && answers.every((a) => a.ok) && traces.every(traceOk);
    return { traces, answers, ctx, ok, kept };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function formatTraceResult(r: TraceResult): string {
  const lines: string[] = [];
  if (r.traces.length) lines.push(formatTrace(r.traces[0], r.ctx));
  else lines.push(`no request of the client to ${r.ctx.vip}:${r.ctx.port} was captured`);
  if (r.traces.length > 1) lines.push('', `all ${r.traces.length} requests:`, formatTraceSummary(r.traces));
  const unanswered = r.answers.filter((a) => !a.ok).length;
  if (unanswered) lines.push(`${unanswered} of ${r.answers.length} request(s) got no answer`);
  if (r.kept) lines.push(`pcaps kept in ${r.kept} (one per host and interface; open with tshark -r or wireshark)`);
  return lines.join('\n');
}

export async function runTraceCommand(
  plan: LabPlan,
  o: { requests: number; pcapDir?: string; port?: number; out: Out },
): Promise<number> {
  const r = await traceRequests(plan, o);
  o.out(formatTraceResult(r));
  return r.ok ? 0 : 1;
}
