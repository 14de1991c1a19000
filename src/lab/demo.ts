/**
 * `tierlb demo` / `tierlb lab demo` (the README's main command): lab up → traffic with a progress bar → who served
 * how many requests (each LB node, each backend) → the trace of one request, hop by hop → lab down. Exit 0 only when
 * the flow really worked: every request answered, every LB node and every backend served some, and the trace shows
 * the MAC rewrite with the VIP kept, VXLAN with the lab's VNI on the underlay, and the reply bypassing the director.
 * With VRRP, a failover follows (./failover.ts): a keep-alive connection and a slow download continue through the
 * backup director while the master's link is cut (connection sync), and the gap is printed.
 */
import { type FailoverResult, failover, formatFailover } from './failover.js';
import { admList, labDown, labUp, loadLabConfig, type Out, planFor } from './lab.js';
import { directorSocket, type LabPlan, masterDirector } from './plan.js';
import type { ClientAnswer } from './trace.js';
import { formatTraceResult, request, type TraceResult, traceContext, traceRequests } from './trace-run.js';

export interface TrafficResult {
  /** per listener: answers in order */
  answers: { listener: string; port: number; answer: ClientAnswer }[];
}

/** A progress bar on stderr (a line per 10 % when stderr is not a terminal). */
export function progressBar(total: number, label: string, write: (s: string) => void, tty: boolean) {
  let lastTenth = -1;
  return (done: number) => {
    const frac = total ? done / total : 1;
    if (tty) {
      const w = 30;
      const full = Math.round(frac * w);
      write(`\r${label} [${'#'.repeat(full)}${'.'.repeat(w - full)}] ${done}/${total}${done === total ? '\n' : ''}`);
    } else {
      const tenth = Math.floor(frac * 10);
      if (tenth !== lastTenth) {
        lastTenth = tenth;
        write(`${label} ${done}/${total}\n`);
      }
    }
  };
}

/** `requests` requests spread over the listeners, `parallel` at a time, from the first client. */
export async function traffic(
  plan: LabPlan,
  requests: number,
  onProgress: (done: number) => void,
  parallel = 4,
): Promise<TrafficResult> {
  const ls = plan.cfg.listeners.map((l) => ({ l, ctx: traceContext(plan, l.port) }));
  const jobs = Array.from({ length: requests }, (_, i) => ls[i % ls.length]);
  const answers: TrafficResult['answers'] = [];
  let next = 0;
  let done = 0;
  const client = plan.cfg.clients[0].name;
  const worker = async () => {
    while (next < jobs.length) {
      const { l, ctx } = jobs[next++];
      const answer = await request(plan, ctx, client);
      answers.push({ listener: l.name, port: l.port, answer });
      onProgress(++done);
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, requests) }, worker));
  return { answers };
}

/** The "who served what" table: rows LB nodes then backends, a column per listener and the total. */
export function servedTable(
  plan: LabPlan,
  t: TrafficResult,
): { text: string; lbCounts: Map<string, number>; beCounts: Map<string, number> } {
  const c = plan.cfg;
  const lbByOverlay = new Map(c.lbNodes.map((l) => [l.overlay, l.name]));
  const count = (key: (a: ClientAnswer) => string | undefined, name: string, listener?: string) =>
    t.answers.filter((x) => x.answer.ok && (!listener || x.listener === listener) && key(x.answer) === name).length;
  const lbKey = (a: ClientAnswer) => (a.from ? lbByOverlay.get(a.from) : undefined);
  const beKey = (a: ClientAnswer) => a.backend;
  const head = ['', ...c.listeners.map((l) => `${l.name} :${l.port}`), 'total'];
  const rows: string[][] = [head];
  const lbCounts = new Map<string, number>();
  const beCounts = new Map<string, number>();
  for (const l of c.lbNodes) {
    const total = count(lbKey, l.name);
    lbCounts.set(l.name, total);
    rows.push([`LB node ${l.name}`, ...c.listeners.map((x) => String(count(lbKey, l.name, x.name))), String(total)]);
  }
  for (const b of c.backends) {
    const total = count(beKey, b.name);
    beCounts.set(b.name, total);
    rows.push([
      `backend ${b.name} (${b.hypervisor})`,
      ...c.listeners.map((x) => String(count(beKey, b.name, x.name))),
      String(total),
    ]);
  }
  const answered = t.answers.filter((a) => a.answer.ok).length;
  rows.push([
    'answered',
    ...c.listeners.map((x) => String(t.answers.filter((a) => a.listener === x.name && a.answer.ok).length)),
    `${answered}/${t.answers.length}`,
  ]);
  const w = head.map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const text = rows.map((r) => r.map((x, i) => (i === 0 ? x.padEnd(w[i]) : x.padStart(w[i]))).join('   ')).join('\n');
  return { text, lbCounts, beCounts };
}

export interface DemoOptions {
  configFile?: string;
  prefix?: string;
  stateDir?: string;
  requests?: number;
  /** leave the lab up afterwards */
  keep?: boolean;
  out?: Out;
  err?: (s: string) => void;
  tty?: boolean;
}

export interface DemoResult {
  ok: boolean;
  problems: string[];
  traffic?: TrafficResult;
  trace?: TraceResult;
  failover?: FailoverResult;
}

export async function demo(o: DemoOptions): Promise<DemoResult> {
  const line = o.out ?? ((s: string) => process.stdout.write(`${s}\n`));
  const out = (...lines: string[]) => {
    for (const l of lines) line(l);
  };
  const errw = o.err ?? ((s: string) => process.stderr.write(s));
  const tty = o.tty ?? !!process.stderr.isTTY;
  const problems: string[] = [];
  const res: DemoResult = { ok: false, problems };
  let plan: LabPlan | undefined;
  try {
    out('== 1. lab up: namespaces, overlay, fwmark rules, director(s), VRRP, listeners, backends');
    const up = await labUp({
      configFile: o.configFile,
      prefix: o.prefix,
      stateDir: o.stateDir,
      out,
      progress: (s) => errw(`${s}\n`),
    });
    plan = up.plan;
    const n = o.requests ?? 60;
    out(
      '',
      `== 2. traffic: ${n} requests from ${plan.cfg.clients[0].name} to ${plan.cfg.vip} (${plan.cfg.listeners.map((l) => `:${l.port} ${l.name}`).join(', ')})`,
    );
    const t = await traffic(plan, n, progressBar(n, 'requests', errw, tty));
    res.traffic = t;
    const served = servedTable(plan, t);
    out(
      '',
      '== 3. who served them (from each answer: the backend names itself and the LB node that called it)',
      served.text,
    );
    const unanswered = t.answers.filter((a) => !a.answer.ok).length;
    if (unanswered) problems.push(`${unanswered} of ${t.answers.length} requests got no answer`);
    for (const [lb, c] of served.lbCounts) if (!c) problems.push(`LB node ${lb} served no request`);
    for (const [be, c] of served.beCounts) if (!c) problems.push(`backend ${be} served no request`);
    const m = masterDirector(plan);
    try {
      const stats = await admList(directorSocket(plan, m), ['-L', '-n', '--stats']);
      out(
        '',
        `the director's own count (tierlb adm --socket ${directorSocket(plan, m)} -L -n --stats):`,
        stats.trimEnd(),
      );
    } catch (e) {
      out(`(director stats unavailable: ${(e as Error).message})`);
    }
    out('', '== 4. the trace of one request (tcpdump on every hop, read back and followed)');
    const tr = await traceRequests(plan, { requests: 1 });
    res.trace = tr;
    out(formatTraceResult(tr));
    if (!tr.ok)
      for (const t2 of tr.traces)
        for (const v of t2.verdicts) if (!v.ok) problems.push(`trace: ${v.name}: ${v.detail}`);
    if (!tr.traces.length) problems.push('trace: the request was not captured');
    explain(plan, tr, out);
    if (up.state.vipMode === 'vrrp' && plan.cfg.directors.length > 1) {
      const master = masterDirector(plan);
      out(
        '',
        `== 5. failover: a keep-alive connection (a request every 0.1 s) and a slow download run while ${master}'s link is cut`,
      );
      const f = await failover(plan, { log: (s) => out(`  ${s}`) });
      res.failover = f;
      out(...formatFailover(f));
      problems.push(...f.problems.map((p) => `failover: ${p}`));
    }
  } catch (e) {
    problems.push((e as Error).message);
  } finally {
    if (!o.keep) {
      // when up failed before returning, its prefix and state dir come from the config and the options, as in up
      const p = plan ?? planFor(await loadLabConfig(o.configFile), o);
      out('', '== 6. lab down');
      await labDown({ prefix: p.prefix, stateDir: p.cfg.stateDir, out });
    }
  }
  res.ok = problems.length === 0;
  out('', res.ok ? 'demo: the flow works ✓' : `demo FAILED:\n${problems.map((p) => `  ✗ ${p}`).join('\n')}`);
  return res;
}

/** The flow in words, with the names of this run. */
function explain(plan: LabPlan, tr: TraceResult, out: (...lines: string[]) => void): void {
  const t = tr.traces[0];
  if (!t) return;
  const c = plan.cfg;
  const lb = c.lbNodes.find((l) => l.name === t.lbNode);
  out(
    '',
    'what happened:',
    `  1. ${t.client} sent to the VIP ${c.vip}; the VRRP master ${t.director ?? '?'} answers ARP for it, so the frame went to its MAC.`,
    `  2. ${t.director ?? '?'}'s mangle rule marked port ${tr.ctx.port} with fwmark 0x${(plan.marks.find((m) => m.port === tr.ctx.port)?.mark ?? 0).toString(16)}; the director read it from NFQUEUE, its scheduler picked ${t.lbNode ?? '?'}, and the verdict's mark routed the unchanged IP packet to ${t.lbNode ?? '?'}'s MAC (direct routing).`,
    `  3. ${t.lbNode ?? '?'} holds ${c.vip} on lo (arp_ignore=1, arp_announce=2), so its listener ${tr.ctx.listener} accepted the connection and opened its own to ${t.backend ?? '?'} from ${lb?.overlay ?? '?'}.`,
    `  4. That connection crossed the underlay in VXLAN (UDP ${c.overlay.dstport}, VNI ${c.overlay.vni}) to the hypervisor of ${t.backend ?? '?'}, whose bridge delivered it.`,
    `  5. ${t.lbNode ?? '?'} answered ${t.client} itself, from ${c.vip}: the reply never passed the director.`,
  );
}

export async function runDemo(o: DemoOptions): Promise<number> {
  // an ecmp lab has its own demo: flows that survive director changes (src/lab/ecmp-demo.ts)
  const { loadLabConfig } = await import('./lab.js');
  if ((await loadLabConfig(o.configFile)).ecmp) {
    const { ecmpDemo } = await import('./ecmp-demo.js');
    return (await ecmpDemo(o)).ok ? 0 : 1;
  }
  const r = await demo(o);
  return r.ok ? 0 : 1;
}
