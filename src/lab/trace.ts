/**
 * The trace analysis (pure): given the frames captured at every hop of the lab and what the client got back, follow
 * one request through the flow of source article 004 and say, hop by hop, what changed — the packet-capture analysis
 * of the source articles, automated. The verdicts are what `lab demo` and the tests hold the flow to:
 *   - the director rewrote only the destination MAC (to an LB node's), the IP destination stayed the VIP;
 *   - the listener's connection to the backend crossed the underlay as VXLAN with the lab's VNI;
 *   - the reply left the LB node with the VIP as source, reached the client from the LB node's MAC, and no packet of
 *     it passed a director.
 */
import { type Frame, TCP_SYN, tcpFlagNames } from './pcap.js';

export interface CapturePoint {
  host: string;
  ifname: string;
  role: 'client' | 'director' | 'lb' | 'hypervisor' | 'backend' | 'router';
  frames: Frame[];
}

export interface TraceContext {
  vip: string;
  port: number;
  listener: string;
  mode: 'http' | 'tcp';
  vni: number;
  vxlanPort: number;
  clients: { name: string; ip: string; mac: string }[];
  directors: { name: string; ip: string; mac: string }[];
  lbNodes: { name: string; ip: string; mac: string; underlay: string; overlay: string }[];
  hypervisors: { name: string; underlay: string }[];
  backends: { name: string; ip: string; port: number }[];
  /** MAC → host name, to print names beside MACs */
  macNames: Record<string, string>;
  /** an ecmp lab: the router between the clients (its eth1) and the front (its eth0) */
  router?: { name: string; frontMac: string; clientMac: string };
}

/** What the client got for one request (from curl -w / the body). */
export interface ClientAnswer {
  clientPort?: number;
  backend?: string;
  /** the LB node's overlay address, as the backend saw it */
  from?: string;
  ok: boolean;
}

export interface Hop {
  n: number;
  where: string;
  dir: 'in' | 'out' | '-';
  packets: number;
  l2: string;
  l3: string;
  note: string;
  ok: boolean;
}

export interface Verdict {
  name: 'request' | 'mac-rewrite' | 'listener' | 'vxlan' | 'backend' | 'reply-bypass' | 'answer';
  ok: boolean;
  detail: string;
}

export interface FlowTrace {
  client: string;
  clientIp: string;
  clientPort: number;
  director?: string;
  lbNode?: string;
  backend?: string;
  hops: Hop[];
  verdicts: Verdict[];
}

type Tuple = { src: string; sport: number; dst: string; dport: number };

const isTuple = (f: Frame, t: Tuple) =>
  f.ip?.src === t.src && f.ip.dst === t.dst && f.tcp?.sport === t.sport && f.tcp.dport === t.dport;
const rev = (t: Tuple): Tuple => ({ src: t.dst, sport: t.dport, dst: t.src, dport: t.sport });
const ep = (ip: string, port: number) => `${ip}:${port}`;

/** The client's connections to VIP:port, in the order their SYNs left. */
export function clientFlows(
  points: CapturePoint[],
  ctx: TraceContext,
): { client: string; ip: string; port: number; ts: number }[] {
  const out: { client: string; ip: string; port: number; ts: number }[] = [];
  for (const p of points.filter((x) => x.role === 'client')) {
    const c = ctx.clients.find((x) => x.name === p.host);
    if (!c) continue;
    const seen = new Set<number>();
    for (const f of p.frames) {
      if (!f.tcp || !f.ip || f.ip.src !== c.ip || f.ip.dst !== ctx.vip || f.tcp.dport !== ctx.port) continue;
      if (!(f.tcp.flags & TCP_SYN) || seen.has(f.tcp.sport)) continue;
      seen.add(f.tcp.sport);
      out.push({ client: c.name, ip: c.ip, port: f.tcp.sport, ts: f.ts });
    }
  }
  return out.sort((a, b) => a.ts - b.ts);
}

function describeTcp(f: Frame | undefined): string {
  if (!f?.ip || !f.tcp) return '-';
  return `${ep(f.ip.src, f.tcp.sport)} → ${ep(f.ip.dst, f.tcp.dport)} ${tcpFlagNames(f.tcp.flags)} ttl ${f.ip.ttl}`;
}

/** Follow one client connection through every capture point. */
export function traceFlow(
  points: CapturePoint[],
  ctx: TraceContext,
  flow: { client: string; ip: string; port: number },
  answer?: ClientAnswer,
): FlowTrace {
  const req: Tuple = { src: flow.ip, sport: flow.port, dst: ctx.vip, dport: ctx.port };
  const rep = rev(req);
  const name = (m: string) => ctx.macNames[m] ?? m;
  const l2 = (f?: Frame) => (f ? `${name(f.src)} → ${name(f.dst)}` : '-');
  const hops: Hop[] = [];
  const verdicts: Verdict[] = [];
  const hop = (where: string, dir: Hop['dir'], frames: Frame[], l3: string, note: string, ok = frames.length > 0) => {
    hops.push({ n: hops.length + 1, where, dir, packets: frames.length, l2: l2(frames[0]), l3, note, ok });
  };
  const at = (host: string, ifname: string) => points.find((p) => p.host === host && p.ifname === ifname);
  const ft: FlowTrace = { client: flow.client, clientIp: flow.ip, clientPort: flow.port, hops, verdicts };

  // 1. the client sends to the VIP
  const client = ctx.clients.find((c) => c.name === flow.client)!;
  const cp = at(client.name, 'eth0');
  const cReq = cp?.frames.filter((f) => isTuple(f, req) && f.src === client.mac) ?? [];
  const firstHopMac = cReq[0]?.dst;
  hop(
    `${client.name} eth0`,
    'out',
    cReq,
    describeTcp(cReq[0]),
    `the client sends to the VIP; ARP resolved ${ctx.vip} to ${firstHopMac ? name(firstHopMac) : '?'}`,
  );
  verdicts.push({
    name: 'request',
    ok: cReq.length > 0,
    detail: `${cReq.length} packet(s) ${client.name} → ${ep(ctx.vip, ctx.port)}`,
  });
  // ecmp: the router forwards it to the director its multipath hash picks
  const rt = ctx.router;
  if (rt) {
    const rOut = at(rt.name, 'eth0')?.frames.filter((f) => isTuple(f, req) && f.src === rt.frontMac) ?? [];
    hop(
      `${rt.name} eth0`,
      'out',
      rOut,
      describeTcp(rOut[0]),
      `the router forwards it by ECMP (hash of addresses and ports) to ${rOut[0] ? name(rOut[0].dst) : '?'}`,
    );
  }

  // 2./3. the director: in with its own MAC as destination, out with an LB node's
  const lbMacs = new Map(ctx.lbNodes.map((l) => [l.mac, l]));
  let lb: TraceContext['lbNodes'][number] | undefined;
  for (const d of ctx.directors) {
    const p = at(d.name, 'eth0');
    const din = p?.frames.filter((f) => isTuple(f, req) && f.dst === d.mac) ?? [];
    if (!din.length) continue;
    ft.director = d.name;
    const dout = p?.frames.filter((f) => isTuple(f, req) && f.src === d.mac && f.dst !== d.mac) ?? [];
    hop(
      `${d.name} eth0`,
      'in',
      din,
      describeTcp(din[0]),
      `the director receives it: fwmark → NFQUEUE → scheduler picks an LB node`,
    );
    lb = dout[0] ? lbMacs.get(dout[0].dst) : undefined;
    const sameIp = dout.length > 0 && dout.every((f) => f.ip?.dst === ctx.vip && f.ip.src === flow.ip);
    hop(
      `${d.name} eth0`,
      'out',
      dout,
      describeTcp(dout[0]),
      lb
        ? `DR: destination MAC rewritten ${name(d.mac)} → ${lb.name}, IP destination still the VIP`
        : 'nothing forwarded to an LB node',
      dout.length > 0 && !!lb && sameIp,
    );
    verdicts.push({
      name: 'mac-rewrite',
      ok: !!lb && sameIp,
      detail: lb
        ? `dst MAC ${d.mac} (${d.name}) → ${lb.mac} (${lb.name}); IP ${flow.ip} → ${ctx.vip} unchanged in ${dout.length} packet(s); ttl ${din[0].ip?.ttl} → ${dout[0].ip?.ttl}`
        : `${d.name} received ${din.length} packet(s) but none left towards an LB node`,
    });
    break;
  }
  if (!ft.director) {
    hop('directors eth0', 'in', [], '-', 'no director received the request');
    verdicts.push({ name: 'mac-rewrite', ok: false, detail: 'no director received the request' });
  }

  // 4. the LB node's listener
  if (!lb) {
    // no director hop seen: find the LB node that got it anyway (tells what went wrong)
    lb = ctx.lbNodes.find((l) => at(l.name, 'eth0')?.frames.some((f) => isTuple(f, req) && f.dst === l.mac));
  }
  ft.lbNode = lb?.name;
  const lbIn = lb ? (at(lb.name, 'eth0')?.frames.filter((f) => isTuple(f, req) && f.dst === lb!.mac) ?? []) : [];
  const lbAccepts = lb
    ? (at(lb.name, 'eth0')?.frames.some((f) => isTuple(f, rep) && !!(f.tcp!.flags & TCP_SYN)) ?? false)
    : false;
  hop(
    `${lb?.name ?? 'LB node'} eth0`,
    'in',
    lbIn,
    describeTcp(lbIn[0]),
    lb
      ? `the listener ${ctx.listener} on ${ep(ctx.vip, ctx.port)} (VIP on lo) ${lbAccepts ? 'accepts (SYN,ACK from the VIP)' : 'did not accept'}`
      : 'no LB node received it',
    lbIn.length > 0 && lbAccepts,
  );
  verdicts.push({
    name: 'listener',
    ok: lbIn.length > 0 && lbAccepts,
    detail: lb ? `${lb.name}: ${lbIn.length} packet(s) in, ${lbAccepts ? 'accepted' : 'not accepted'}` : 'no LB node',
  });

  // 5.–9. the listener's connection to a backend, over the overlay
  let inner: Tuple | undefined;
  const ul = lb ? at(lb.name, 'eth1') : undefined;
  if (lb && ul && lbIn.length) {
    const t0 = lbIn[0].ts;
    const backends = new Map(ctx.backends.map((b) => [b.ip, b]));
    const want = answer?.backend ? ctx.backends.find((b) => b.name === answer.backend) : undefined;
    const cand = ul.frames.filter((f) => {
      const i = f.vxlan?.inner;
      if (!i?.ip || !i.tcp || i.ip.src !== lb!.overlay || f.ts < t0) return false;
      const b = backends.get(i.ip.dst);
      if (!b || i.tcp.dport !== b.port || (want && b !== want)) return false;
      // an HTTP request for '/' (the health checks ask for /health), or a new TCP connection
      if (ctx.mode === 'http') return i.tcp.payload > 0 && !/^[A-Z]+ \/health/.test(i.tcp.head ?? '');
      return !!(i.tcp.flags & TCP_SYN);
    });
    const f = cand[0]?.vxlan?.inner;
    if (f?.ip && f.tcp) inner = { src: f.ip.src, sport: f.tcp.sport, dst: f.ip.dst, dport: f.tcp.dport };
  }
  const be = inner ? ctx.backends.find((b) => b.ip === inner!.dst) : undefined;
  ft.backend = be?.name;
  const innerOf = (f: Frame, t: Tuple) => !!f.vxlan && isTuple(f.vxlan.inner, t);
  const vx = (f?: Frame) =>
    f?.vxlan && f.ip && f.udp
      ? `${f.ip.src} → ${f.ip.dst} UDP ${f.udp.dport} VNI ${f.vxlan.vni} [${describeTcp(f.vxlan.inner).replace(/ ttl \d+$/, '')}]`
      : '-';
  if (inner && lb && be) {
    const ulOut = ul!.frames.filter((f) => innerOf(f, inner!));
    const vnis = [...new Set(ulOut.map((f) => f.vxlan!.vni))];
    const ports = [...new Set(ulOut.map((f) => f.udp!.dport))];
    const hvName = ctx.hypervisors.find((h) => h.underlay === ulOut[0]?.ip?.dst)?.name;
    hop(
      `${lb.name} eth1`,
      'out',
      ulOut,
      vx(ulOut[0]),
      `the listener's connection to ${be.name} (${ep(be.ip, be.port)}), VXLAN-encapsulated on the underlay`,
      vnis.length === 1 && vnis[0] === ctx.vni,
    );
    verdicts.push({
      name: 'vxlan',
      ok: ulOut.length > 0 && vnis.length === 1 && vnis[0] === ctx.vni && ports.every((p) => p === ctx.vxlanPort),
      detail: `${ulOut.length} packet(s) UDP ${ports.join(',')} VNI ${vnis.join(',')} ${lb.underlay} → ${ulOut[0]?.ip?.dst ?? '?'}${hvName ? ` (${hvName})` : ''}`,
    });
    if (hvName) {
      const hvIn = at(hvName, 'eth0')?.frames.filter((f) => innerOf(f, inner!) && f.ip?.dst === ulOut[0].ip!.dst) ?? [];
      hop(
        `${hvName} eth0`,
        'in',
        hvIn,
        vx(hvIn[0]),
        `the hypervisor decapsulates VNI ${ctx.vni} into its bridge br${ctx.vni}`,
      );
    }
    const bp = at(be.name, 'eth0');
    const bIn = bp?.frames.filter((f) => isTuple(f, inner!)) ?? [];
    const bOut = bp?.frames.filter((f) => isTuple(f, rev(inner!))) ?? [];
    hop(
      `${be.name} eth0`,
      'in',
      bIn,
      describeTcp(bIn[0]),
      "the backend receives the listener's connection (plain TCP, no VXLAN header)",
    );
    hop(`${be.name} eth0`, 'out', bOut, describeTcp(bOut[0]), 'the backend answers the LB node');
    verdicts.push({
      name: 'backend',
      ok: bIn.length > 0 && bOut.length > 0,
      detail: `${be.name}: ${bIn.length} in, ${bOut.length} out`,
    });
    const ulIn = ul!.frames.filter((f) => innerOf(f, rev(inner!)));
    hop(`${lb.name} eth1`, 'in', ulIn, vx(ulIn[0]), 'the answer comes back over the overlay');
  } else {
    hop(`${lb?.name ?? 'LB node'} eth1`, 'out', [], '-', 'no listener connection to a backend found on the underlay');
    verdicts.push({ name: 'vxlan', ok: false, detail: "no VXLAN packet of the listener's connection on the underlay" });
    verdicts.push({ name: 'backend', ok: false, detail: 'no backend reached' });
  }

  // 10.–12. the reply: from the VIP, straight from the LB node to the client
  const lbOut = lb ? (at(lb.name, 'eth0')?.frames.filter((f) => isTuple(f, rep) && f.src === lb!.mac) ?? []) : [];
  hop(
    `${lb?.name ?? 'LB node'} eth0`,
    'out',
    lbOut,
    describeTcp(lbOut[0]),
    `the LB node answers the client directly, source ${ctx.vip}`,
  );
  const cIn = cp?.frames.filter((f) => isTuple(f, rep) && f.dst === client.mac) ?? [];
  const fromMacs = [...new Set(cIn.map((f) => f.src))];
  hop(
    `${client.name} eth0`,
    'in',
    cIn,
    describeTcp(cIn[0]),
    rt
      ? `the reply arrives through the router (${fromMacs.map(name).join(', ') || '?'}), not through a director`
      : `the reply arrives from ${fromMacs.map(name).join(', ') || '?'}'s MAC, not a director's`,
  );
  const atDirectors = ctx.directors.reduce(
    (n, d) => n + (at(d.name, 'eth0')?.frames.filter((f) => isTuple(f, rep)).length ?? 0),
    0,
  );
  hops.push({
    n: hops.length + 1,
    where: `${ctx.directors.map((d) => d.name).join('+')} eth0`,
    dir: '-',
    packets: atDirectors,
    l2: '-',
    l3: `${ep(ctx.vip, ctx.port)} → ${ep(flow.ip, flow.port)}`,
    note:
      atDirectors === 0
        ? 'no packet of the reply passed a director (direct routing)'
        : 'reply packets passed a director!',
    ok: atDirectors === 0,
  });
  const bypass =
    !!lb &&
    lbOut.length > 0 &&
    cIn.length > 0 &&
    fromMacs.length === 1 &&
    fromMacs[0] === (rt ? rt.clientMac : lb.mac) &&
    cIn.every((f) => f.ip?.src === ctx.vip) &&
    atDirectors === 0;
  verdicts.push({
    name: 'reply-bypass',
    ok: bypass,
    detail: `${cIn.length} reply packet(s) at ${client.name} from ${ctx.vip} via ${fromMacs.map(name).join(', ') || 'nobody'}; ${atDirectors} at the directors`,
  });
  if (answer) {
    const lbByOverlay = ctx.lbNodes.find((l) => l.overlay === answer.from)?.name;
    const agree =
      answer.ok && (!answer.backend || answer.backend === ft.backend) && (!answer.from || lbByOverlay === ft.lbNode);
    verdicts.push({
      name: 'answer',
      ok: agree,
      detail: answer.ok
        ? `the client got an answer from ${answer.backend ?? '?'} via ${lbByOverlay ?? answer.from ?? '?'}${agree ? ', as traced' : `, the trace says ${ft.backend ?? '?'} via ${ft.lbNode ?? '?'}`}`
        : 'the client got no answer',
    });
  }
  return ft;
}

export const traceOk = (t: FlowTrace) => t.verdicts.every((v) => v.ok);

function table(rows: string[][]): string[] {
  const w = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i])))
      .join('  ')
      .trimEnd(),
  );
}

/** The per-hop table of one traced request, for a person to read. */
export function formatTrace(t: FlowTrace, ctx: TraceContext): string {
  const lines: string[] = [];
  lines.push(
    `request ${t.client} ${ep(t.clientIp, t.clientPort)} → ${ep(ctx.vip, ctx.port)} (listener ${ctx.listener}): director ${t.director ?? '?'} → LB node ${t.lbNode ?? '?'} → backend ${t.backend ?? '?'}`,
  );
  const rows = [['#', 'where', 'dir', 'pkts', 'ethernet', 'ip / transport', 'what it shows']];
  for (const h of t.hops)
    rows.push([`${h.ok ? ' ' : '!'}${h.n}`, h.where, h.dir, String(h.packets), h.l2, h.l3, h.note]);
  lines.push(...table(rows));
  lines.push('verdicts:');
  for (const v of t.verdicts) lines.push(`  ${v.ok ? '✓' : '✗'} ${v.name.padEnd(12)} ${v.detail}`);
  const macs = Object.entries(ctx.macNames)
    .filter(([m]) => t.hops.some((h) => h.l2.includes(ctx.macNames[m])))
    .map(([m, n]) => `${n}=${m}`);
  if (macs.length) lines.push(`MACs: ${[...new Set(macs)].join('  ')}`);
  return lines.join('\n');
}

/** One line per traced request. */
export function formatTraceSummary(ts: FlowTrace[]): string {
  const rows = [['request', 'director', 'LB node', 'backend', 'mac-rewrite', 'vxlan', 'reply-bypass', 'ok']];
  for (const t of ts) {
    const v = (n: Verdict['name']) => (t.verdicts.find((x) => x.name === n)?.ok ? 'yes' : 'NO');
    rows.push([
      `${t.client}:${t.clientPort}`,
      t.director ?? '-',
      t.lbNode ?? '-',
      t.backend ?? '-',
      v('mac-rewrite'),
      v('vxlan'),
      v('reply-bypass'),
      traceOk(t) ? '✓' : '✗',
    ]);
  }
  return table(rows).join('\n');
}
