/** The lab's pcap reader and trace analysis, on synthetic captures (no kernel). */
import test from 'ava';
import { LAB_DEFAULTS } from '../src/lab/config-schema.js';
import { PcapError, parsePcap, TCP_ACK, TCP_PSH, TCP_SYN } from '../src/lab/pcap.js';
import { buildPlan, macFor } from '../src/lab/plan.js';
import { type CapturePoint, clientFlows, formatTrace, traceFlow, traceOk } from '../src/lab/trace.js';
import { traceContext } from '../src/lab/trace-run.js';
import { pcapFile, tcpFrame, vrrpFrame, vxlanFrame } from './lab-fixture.js';

const VIP = '10.77.1.100';

test('pcap: Ethernet/IPv4/TCP in both byte orders and resolutions', (t) => {
  const f = tcpFrame({
    srcMac: '02:01:0a:4d:01:0a',
    dstMac: '02:01:0a:4d:01:02',
    src: '10.77.1.10',
    dst: VIP,
    sport: 40000,
    dport: 80,
    flags: TCP_SYN,
    ttl: 61,
  });
  for (const opts of [{}, { bigEndian: true }, { nano: true }, { bigEndian: true, nano: true }]) {
    const { linktype, frames } = parsePcap(pcapFile([{ ts: 12.5, data: f }], opts));
    t.is(linktype, 1);
    t.is(frames.length, 1);
    t.like(frames[0], { src: '02:01:0a:4d:01:0a', dst: '02:01:0a:4d:01:02', ethertype: 0x800 });
    t.like(frames[0].ip, { src: '10.77.1.10', dst: VIP, proto: 6, ttl: 61 });
    t.like(frames[0].tcp, { sport: 40000, dport: 80, flags: TCP_SYN, payload: 0 });
    t.true(Math.abs(frames[0].ts - 12.5) < 1e-6);
  }
});

test('pcap: VXLAN carries a decoded inner frame; VRRP adverts; payload head; a truncated tail is dropped', (t) => {
  const inner = tcpFrame({
    srcMac: '02:03:ac:10:64:02',
    dstMac: '02:03:ac:10:64:0b',
    src: '172.16.100.2',
    dst: '172.16.100.11',
    sport: 5000,
    dport: 8080,
    flags: TCP_PSH | TCP_ACK,
    payload: 'GET / HTTP/1.1\r\n',
  });
  const vx = vxlanFrame(
    { srcMac: '02:02:0a:c8:00:16', dstMac: '02:02:0a:c8:00:01', src: '10.200.0.22', dst: '10.200.0.1', vni: 100 },
    inner,
  );
  const vr = vrrpFrame('02:01:0a:4d:01:02', '10.77.1.2', 51, 150, VIP);
  const file = pcapFile([
    { ts: 1, data: vx },
    { ts: 2, data: vr },
  ]);
  const { frames } = parsePcap(
    Buffer.concat([file, Buffer.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17])]),
  );
  t.is(frames.length, 2);
  t.like(frames[0].udp, { dport: 4789 });
  t.is(frames[0].vxlan?.vni, 100);
  t.like(frames[0].vxlan?.inner.ip, { src: '172.16.100.2', dst: '172.16.100.11' });
  t.like(frames[0].vxlan?.inner.tcp, { sport: 5000, dport: 8080, payload: 16 });
  t.is(frames[0].vxlan?.inner.tcp?.head, 'GET / HTTP/1.1\r\n');
  t.deepEqual(frames[1].vrrp, { version: 2, vrid: 51, priority: 150, addrs: [VIP] });
  t.throws(() => parsePcap(Buffer.alloc(40)), { instanceOf: PcapError });
});

// ---- one request through the lab, as the captures would show it ----

const plan = buildPlan(LAB_DEFAULTS);
const ctx = traceContext(plan);
const M = {
  client: macFor('front', '10.77.1.10'),
  dir1: macFor('front', '10.77.1.2'),
  lb2: macFor('front', '10.77.1.22'),
  lb2u: macFor('underlay', '10.200.0.22'),
  hv1u: macFor('underlay', '10.200.0.1'),
  lb2o: macFor('overlay', '172.16.100.2'),
  be1: macFor('overlay', '172.16.100.11'),
  be3: macFor('overlay', '172.16.100.13'),
};
const req = { src: '10.77.1.10', sport: 40000, dst: VIP, dport: 80 };
const rep = { src: VIP, sport: 80, dst: '10.77.1.10', dport: 40000 };
const inner = { src: '172.16.100.2', sport: 50000, dst: '172.16.100.11', dport: 8080 };
const innerRep = { src: inner.dst, sport: inner.dport, dst: inner.src, dport: inner.sport };

function scenario(o: { vni?: number; replyViaDirector?: boolean; natAtDirector?: boolean } = {}): CapturePoint[] {
  const vni = o.vni ?? 100;
  const f = (ts: number, data: number[]) => ({ ts, data });
  const cap = (
    host: string,
    ifname: string,
    role: CapturePoint['role'],
    frames: { ts: number; data: number[] }[],
  ): CapturePoint => ({
    host,
    ifname,
    role,
    frames: parsePcap(pcapFile(frames)).frames,
  });
  const syn = (srcMac: string, dstMac: string, ttl = 64, t2 = req) =>
    tcpFrame({ ...t2, srcMac, dstMac, flags: TCP_SYN, ttl });
  const synack = (srcMac: string, dstMac: string) => tcpFrame({ ...rep, srcMac, dstMac, flags: TCP_SYN | TCP_ACK });
  const vx = (ts: number, toHv: boolean, data: number[]) =>
    f(
      ts,
      vxlanFrame(
        toHv
          ? { srcMac: M.lb2u, dstMac: M.hv1u, src: '10.200.0.22', dst: '10.200.0.1', vni }
          : { srcMac: M.hv1u, dstMac: M.lb2u, src: '10.200.0.1', dst: '10.200.0.22', vni },
        data,
      ),
    );
  const healthCheck = tcpFrame({
    src: '172.16.100.2',
    sport: 50001,
    dst: '172.16.100.13',
    dport: 8080,
    srcMac: M.lb2o,
    dstMac: M.be3,
    flags: TCP_PSH | TCP_ACK,
    payload: 'GET /health HTTP/1.1\r\n',
  });
  const innerSyn = tcpFrame({ ...inner, srcMac: M.lb2o, dstMac: M.be1, flags: TCP_SYN });
  const innerGet = tcpFrame({
    ...inner,
    srcMac: M.lb2o,
    dstMac: M.be1,
    flags: TCP_PSH | TCP_ACK,
    payload: 'GET / HTTP/1.1\r\n',
  });
  const innerSynAck = tcpFrame({ ...innerRep, srcMac: M.be1, dstMac: M.lb2o, flags: TCP_SYN | TCP_ACK });
  const dirOut = o.natAtDirector
    ? tcpFrame({ ...req, dst: '10.77.1.22', srcMac: M.dir1, dstMac: M.lb2, flags: TCP_SYN, ttl: 63 })
    : syn(M.dir1, M.lb2, 63);
  const dirFrames = [f(1.001, syn(M.client, M.dir1)), f(1.002, dirOut)];
  if (o.replyViaDirector) dirFrames.push(f(1.0045, synack(M.lb2, M.dir1)));
  return [
    cap('client1', 'eth0', 'client', [f(1.0, syn(M.client, M.dir1)), f(1.005, synack(M.lb2, M.client))]),
    cap('dir1', 'eth0', 'director', dirFrames),
    cap('dir2', 'eth0', 'director', []),
    cap('lb2', 'eth0', 'lb', [f(1.003, syn(M.dir1, M.lb2, 63)), f(1.004, synack(M.lb2, M.client))]),
    cap('lb2', 'eth1', 'lb', [
      vx(1.0035, true, healthCheck),
      vx(1.006, true, innerSyn),
      vx(1.007, false, innerSynAck),
      vx(1.008, true, innerGet),
    ]),
    cap('hv1', 'eth0', 'hypervisor', [vx(1.0061, true, innerSyn), vx(1.0081, true, innerGet)]),
    cap('be1', 'eth0', 'backend', [f(1.0062, innerSyn), f(1.0065, innerSynAck)]),
  ];
}

const answer = { ok: true, backend: 'be1', from: '172.16.100.2', clientPort: 40000 };

test('trace: the whole flow — MAC rewrite with the VIP kept, VXLAN VNI 100, reply bypassing the director', (t) => {
  const points = scenario();
  const flows = clientFlows(points, ctx);
  t.deepEqual(
    flows.map((x) => x.port),
    [40000],
  );
  const tr = traceFlow(points, ctx, flows[0], answer);
  t.like(tr, { director: 'dir1', lbNode: 'lb2', backend: 'be1' });
  t.true(traceOk(tr), JSON.stringify(tr.verdicts, null, 1));
  t.deepEqual(
    tr.verdicts.map((v) => v.name),
    ['request', 'mac-rewrite', 'listener', 'vxlan', 'backend', 'reply-bypass', 'answer'],
  );
  const text = formatTrace(tr, ctx);
  t.regex(text, /DR: destination MAC rewritten dir1 → lb2, IP destination still the VIP/);
  t.regex(text, /UDP 4789 VNI 100 \[172\.16\.100\.2:50000 → 172\.16\.100\.11:8080 SYN\]/);
  t.regex(text, /no packet of the reply passed a director/);
  t.regex(text, /ttl 64 → 63/);
  t.true(
    tr.hops.every((h) => h.ok),
    text,
  );
});

test('trace: a reply through the director fails reply-bypass only', (t) => {
  const points = scenario({ replyViaDirector: true });
  const tr = traceFlow(points, ctx, clientFlows(points, ctx)[0], answer);
  t.deepEqual(
    tr.verdicts.filter((v) => !v.ok).map((v) => v.name),
    ['reply-bypass'],
  );
});

test('trace: the wrong VNI fails vxlan only', (t) => {
  const points = scenario({ vni: 200 });
  const tr = traceFlow(points, ctx, clientFlows(points, ctx)[0], answer);
  t.deepEqual(
    tr.verdicts.filter((v) => !v.ok).map((v) => v.name),
    ['vxlan'],
  );
});

test('trace: a rewritten IP destination at the director is not DR', (t) => {
  const points = scenario({ natAtDirector: true });
  const tr = traceFlow(points, ctx, clientFlows(points, ctx)[0], answer);
  t.true(tr.verdicts.some((v) => v.name === 'mac-rewrite' && !v.ok));
});

test('trace: an answer that disagrees with the capture fails "answer"', (t) => {
  const points = scenario();
  const tr = traceFlow(points, ctx, clientFlows(points, ctx)[0], { ...answer, from: '172.16.100.3' });
  t.deepEqual(
    tr.verdicts.filter((v) => !v.ok).map((v) => v.name),
    ['answer'],
  );
});
