/**
 * The fast path's tc program on crafted packets through BPF_PROG_TEST_RUN (no namespaces): DR redirects the frame
 * with only its TTL / hop limit decremented, NAT rewrites both ways and TUN encapsulates (IPIP, IPv6 in IPv6) with
 * valid checksums (verified here in JS), IPv4 and IPv6, and every case the program must not handle (an unarmed entry too) returns
 * TC_ACT_OK with the packet untouched. Needs root and the built object.
 */
import { existsSync } from 'node:fs';
import test, { type ExecutionContext } from 'ava';
import { ipv4ToInt, ipv6ToBytes } from '../src/common/addr.js';
import {
  type COUNTER_NAMES,
  defaultObjectPath,
  FLOW_VAL,
  flowKey,
  flowValue,
  KernelFastPath,
  METHOD_DR,
  METHOD_NAT,
  METHOD_TUN,
  readFlowValue,
  realValue,
} from '../src/l4/fastpath/maps.js';

const TC_ACT_OK = 0;
const TC_ACT_REDIRECT = 7;
const TCP = 6;
const UDP = 17;
const ACK = 0x10;
const SYN = 0x02;
const FIN = 0x01;
const RST = 0x04;

const CIP = '10.9.0.10';
const VIP = '10.9.0.100';
const RIP = '10.9.1.11';
const CIP6 = '2001:db8::10';
const VIP6 = '2001:db8::100';
const RIP6 = '2001:db8:1::11';

function canRun(t: ExecutionContext): boolean {
  if (process.getuid?.() !== 0) {
    t.log('skipped: BPF_PROG_TEST_RUN needs root (CAP_BPF, CAP_NET_ADMIN)');
    t.pass();
    return false;
  }
  if (!existsSync(defaultObjectPath())) {
    t.log(`skipped: ${defaultObjectPath()} not built (npm run build; needs clang and libbpf-dev)`);
    t.pass();
    return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------------------------
// packets

function sum16(b: Uint8Array, off: number, len: number, acc = 0): number {
  let s = acc;
  for (let i = 0; i + 1 < len; i += 2) s += (b[off + i] << 8) | b[off + i + 1];
  if (len & 1) s += b[off + len - 1] << 8;
  return s;
}

function fold(s: number): number {
  let x = s;
  while (x > 0xffff) x = (x & 0xffff) + (x >>> 16);
  return x;
}

interface PacketSpec {
  family: 4 | 6;
  proto: number;
  src: string;
  sport: number;
  dst: string;
  dport: number;
  flags?: number;
  payload?: number;
  ttl?: number;
  /** IPv4: set MF */
  fragment?: boolean;
  /** IPv4: one NOP option word (ihl 6) */
  options?: boolean;
  /** IPv6: a hop-by-hop header before the transport header */
  hopByHop?: boolean;
  /** raw IP protocol other than TCP/UDP (no transport header built) */
  rawProto?: number;
}

function addr(a: string): Uint8Array {
  if (a.includes(':')) return ipv6ToBytes(a);
  const b = Buffer.alloc(4);
  b.writeUInt32BE(ipv4ToInt(a));
  return b;
}

/** l4 checksum over pseudo-header + segment */
function l4Sum(proto: number, src: Uint8Array, dst: Uint8Array, seg: Uint8Array): number {
  let s = sum16(src, 0, src.length) + sum16(dst, 0, dst.length);
  s += proto + seg.length;
  s = sum16(seg, 0, seg.length, s);
  return fold(s);
}

function build(p: PacketSpec): Buffer {
  const payload = Buffer.alloc(p.payload ?? 40, 0xab);
  let l4: Buffer;
  const proto = p.rawProto ?? p.proto;
  if (p.rawProto !== undefined) {
    l4 = Buffer.alloc(8 + payload.length);
    l4[0] = 8; // ICMP echo
  } else if (p.proto === TCP) {
    l4 = Buffer.alloc(20 + payload.length);
    l4.writeUInt16BE(p.sport, 0);
    l4.writeUInt16BE(p.dport, 2);
    l4.writeUInt32BE(1000, 4);
    l4.writeUInt32BE(2000, 8);
    l4[12] = 5 << 4;
    l4[13] = p.flags ?? ACK;
    l4.writeUInt16BE(65535, 14);
    payload.copy(l4, 20);
  } else {
    l4 = Buffer.alloc(8 + payload.length);
    l4.writeUInt16BE(p.sport, 0);
    l4.writeUInt16BE(p.dport, 2);
    l4.writeUInt16BE(l4.length, 4);
    payload.copy(l4, 8);
  }
  const src = addr(p.src);
  const dst = addr(p.dst);
  if (p.rawProto === undefined) {
    const off = p.proto === TCP ? 16 : 6;
    let c = 0xffff - l4Sum(p.proto, src, dst, l4);
    if (p.proto === UDP && c === 0) c = 0xffff;
    l4.writeUInt16BE(c, off);
  }
  let l3: Buffer;
  if (p.family === 4) {
    const ihl = p.options ? 24 : 20;
    l3 = Buffer.alloc(ihl);
    l3[0] = 0x40 | (ihl / 4);
    l3.writeUInt16BE(ihl + l4.length, 2);
    l3.writeUInt16BE(0x1234, 4);
    l3.writeUInt16BE(p.fragment ? 0x2000 : 0x4000, 6);
    l3[8] = p.ttl ?? 64;
    l3[9] = proto;
    l3.set(src, 12);
    l3.set(dst, 16);
    if (p.options) l3.fill(1, 20, 24);
    l3.writeUInt16BE(0xffff - fold(sum16(l3, 0, ihl)), 10);
  } else {
    const ext = p.hopByHop ? 8 : 0;
    l3 = Buffer.alloc(40 + ext);
    l3[0] = 0x60;
    l3.writeUInt16BE(l4.length + ext, 4);
    l3[6] = p.hopByHop ? 0 : proto;
    l3[7] = p.ttl ?? 64;
    l3.set(src, 8);
    l3.set(dst, 24);
    if (p.hopByHop) {
      l3[40] = proto;
      l3[41] = 0;
      l3[42] = 1; // PadN
      l3[43] = 4;
    }
  }
  const eth = Buffer.alloc(14);
  eth.set([2, 0, 0, 0, 0, 1], 0);
  eth.set([2, 0, 0, 0, 0, 2], 6);
  eth.writeUInt16BE(p.family === 4 ? 0x0800 : 0x86dd, 12);
  return Buffer.concat([eth, l3, l4]);
}

/** Checks a frame's IPv4 header checksum and its TCP/UDP checksum; returns the addresses, ports and TTL. */
function verify(t: ExecutionContext, f: Buffer, family: 4 | 6, proto: number, l3 = 14) {
  let src: Uint8Array;
  let dst: Uint8Array;
  let l4: number;
  if (family === 4) {
    t.is(fold(sum16(f, l3, 20)), 0xffff, 'IPv4 header checksum');
    src = f.subarray(l3 + 12, l3 + 16);
    dst = f.subarray(l3 + 16, l3 + 20);
    l4 = l3 + 20;
  } else {
    src = f.subarray(l3 + 8, l3 + 24);
    dst = f.subarray(l3 + 24, l3 + 40);
    l4 = l3 + 40;
  }
  t.is(l4Sum(proto, src, dst, f.subarray(l4)), 0xffff, `${proto === TCP ? 'TCP' : 'UDP'} checksum`);
  return {
    src: Buffer.from(src),
    dst: Buffer.from(dst),
    sport: f.readUInt16BE(l4),
    dport: f.readUInt16BE(l4 + 2),
    ttl: family === 4 ? f[l3 + 8] : f[l3 + 7],
  };
}

// ---------------------------------------------------------------------------------------------------------------
// maps

function withFastPath(t: ExecutionContext, fn: (fp: KernelFastPath) => void): void {
  if (!canRun(t)) return;
  const fp = new KernelFastPath({ maxFlows: 1024 });
  try {
    fn(fp);
  } finally {
    fp.close();
  }
}

function setReal(fp: KernelFastPath, idx: number, family: 4 | 6, nh: string, enabled = true, src?: string): void {
  const k = Buffer.alloc(4);
  k.writeUInt32LE(idx);
  fp.reals.update(k, realValue({ ifindex: 1, family, nh, enabled, src }));
}

interface FlowSpec {
  family: 4 | 6;
  proto: number;
  caddr: string;
  cport: number;
  vaddr: string;
  vport: number;
  method: number;
  raddr?: string;
  rport?: number;
  armed?: boolean;
  token?: number;
}

function addFlow(fp: KernelFastPath, f: FlowSpec): void {
  const req = flowKey(f.family, f.proto, f.caddr, f.cport, f.vaddr, f.vport);
  const flows = f.family === 4 ? fp.flows4 : fp.flows6;
  const nat = f.method === METHOD_NAT;
  flows.update(
    req,
    flowValue({
      rs: 0,
      method: f.method,
      natAddr: f.raddr,
      natPort: f.rport,
      replyIfindex: nat ? 1 : 0,
      armed: f.armed,
      token: f.token,
    }),
  );
  if (nat) {
    const reply = flowKey(f.family, f.proto, f.raddr as string, f.rport as number, f.caddr, f.cport);
    (f.family === 4 ? fp.natReply4 : fp.natReply6).update(reply, req);
  }
}

function readFlow(fp: KernelFastPath, f: FlowSpec) {
  const v = Buffer.alloc(FLOW_VAL);
  const ok = (f.family === 4 ? fp.flows4 : fp.flows6).lookup(
    flowKey(f.family, f.proto, f.caddr, f.cport, f.vaddr, f.vport),
    v,
  );
  return ok ? readFlowValue(v) : undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// DR

for (const family of [4, 6] as const) {
  for (const proto of [TCP, UDP]) {
    const name = `${family === 4 ? 'IPv4' : 'IPv6'} ${proto === TCP ? 'TCP' : 'UDP'}`;
    test(`DR ${name}: a known flow is redirected with only its TTL decremented, counted, last-seen set`, (t) =>
      withFastPath(t, (fp) => {
        const [c, v, r] = family === 4 ? [CIP, VIP, RIP] : [CIP6, VIP6, RIP6];
        setReal(fp, 0, family, r);
        const flow = { family, proto, caddr: c, cport: 40000, vaddr: v, vport: 80, method: METHOD_DR };
        addFlow(fp, flow);
        const spec = { family, proto, src: c, sport: 40000, dst: v, dport: 80, payload: 100 };
        const pkt = build(spec);
        const res = fp.obj.testRun('tierlb_fastpath', pkt);
        t.is(res.retval, TC_ACT_REDIRECT);
        // the same packet with TTL 63 (its IPv4 header checksum recomputed from scratch by build())
        t.deepEqual(res.data, build({ ...spec, ttl: 63 }));
        t.is(verify(t, res.data, family, proto).ttl, 63);
        const st = readFlow(fp, flow);
        t.is(st?.packets, 1);
        t.is(st?.bytes, pkt.length - 14);
        t.true((st?.lastSeenNs ?? 0n) > 0n);
        t.is(fp.stats().counters.hitDr, 1);
      }));
  }
}

// ---------------------------------------------------------------------------------------------------------------
// NAT

for (const family of [4, 6] as const) {
  for (const proto of [TCP, UDP]) {
    const name = `${family === 4 ? 'IPv4' : 'IPv6'} ${proto === TCP ? 'TCP' : 'UDP'}`;
    test(`NAT ${name}: request VIP:vport → RIP:rport and reply RIP:rport → VIP:vport, checksums valid`, (t) =>
      withFastPath(t, (fp) => {
        const [c, v, r] = family === 4 ? [CIP, VIP, RIP] : [CIP6, VIP6, RIP6];
        setReal(fp, 0, family, r);
        const flow = {
          family,
          proto,
          caddr: c,
          cport: 40001,
          vaddr: v,
          vport: 80,
          method: METHOD_NAT,
          raddr: r,
          rport: 8080,
        };
        addFlow(fp, flow);

        const req = build({ family, proto, src: c, sport: 40001, dst: v, dport: 80, payload: 77 });
        const a = fp.obj.testRun('tierlb_fastpath', req);
        t.is(a.retval, TC_ACT_REDIRECT);
        t.is(a.data.length, req.length);
        const ra = verify(t, a.data, family, proto);
        t.deepEqual(ra.src, Buffer.from(addr(c)));
        t.deepEqual(ra.dst, Buffer.from(addr(r)));
        t.is(ra.sport, 40001);
        t.is(ra.dport, 8080);
        t.is(ra.ttl, 63);

        const rep = build({ family, proto, src: r, sport: 8080, dst: c, dport: 40001, payload: 1000 });
        const b = fp.obj.testRun('tierlb_fastpath', rep);
        t.is(b.retval, TC_ACT_REDIRECT);
        const rb = verify(t, b.data, family, proto);
        t.deepEqual(rb.src, Buffer.from(addr(v)));
        t.deepEqual(rb.dst, Buffer.from(addr(c)));
        t.is(rb.sport, 80);
        t.is(rb.dport, 40001);
        t.is(rb.ttl, 63);

        const st = readFlow(fp, flow);
        t.is(st?.packets, 1);
        t.is(st?.bytes, req.length - 14);
        t.is(st?.replyPackets, 1);
        t.is(st?.replyBytes, rep.length - 14);
        const cn = fp.stats().counters;
        t.is(cn.hitNat, 1);
        t.is(cn.hitNatReply, 1);
      }));
  }
}

test('NAT IPv4 UDP: a zero (absent) checksum stays zero', (t) =>
  withFastPath(t, (fp) => {
    setReal(fp, 0, 4, RIP);
    addFlow(fp, {
      family: 4,
      proto: UDP,
      caddr: CIP,
      cport: 5000,
      vaddr: VIP,
      vport: 53,
      method: METHOD_NAT,
      raddr: RIP,
      rport: 5353,
    });
    const pkt = build({ family: 4, proto: UDP, src: CIP, sport: 5000, dst: VIP, dport: 53 });
    pkt.writeUInt16BE(0, 14 + 20 + 6);
    const r = fp.obj.testRun('tierlb_fastpath', pkt);
    t.is(r.retval, TC_ACT_REDIRECT);
    t.is(r.data.readUInt16BE(14 + 20 + 6), 0);
    t.is(r.data.readUInt16BE(14 + 20 + 2), 5353);
  }));

// ---------------------------------------------------------------------------------------------------------------
// fall-through: TC_ACT_OK, packet untouched, counted by reason

interface Case {
  name: string;
  pkt: PacketSpec;
  reason: (typeof COUNTER_NAMES)[number];
  /** the real server is disabled */
  disabled?: boolean;
}

const known4 = { family: 4 as const, proto: TCP, src: CIP, sport: 40002, dst: VIP, dport: 80 };
const known6 = { family: 6 as const, proto: TCP, src: CIP6, sport: 40002, dst: VIP6, dport: 80 };
const cases: Case[] = [
  { name: 'IPv4 SYN', pkt: { ...known4, flags: SYN }, reason: 'missTcpFlags' },
  { name: 'IPv4 FIN', pkt: { ...known4, flags: FIN | ACK }, reason: 'missTcpFlags' },
  { name: 'IPv4 RST', pkt: { ...known4, flags: RST }, reason: 'missTcpFlags' },
  { name: 'IPv6 SYN', pkt: { ...known6, flags: SYN }, reason: 'missTcpFlags' },
  { name: 'IPv6 FIN', pkt: { ...known6, flags: FIN | ACK }, reason: 'missTcpFlags' },
  { name: 'IPv6 RST', pkt: { ...known6, flags: RST | ACK }, reason: 'missTcpFlags' },
  { name: 'IPv4 unknown flow', pkt: { ...known4, sport: 40999 }, reason: 'missNoFlow' },
  { name: 'IPv6 unknown flow', pkt: { ...known6, sport: 40999 }, reason: 'missNoFlow' },
  { name: 'IPv4 UDP of a TCP flow', pkt: { ...known4, proto: UDP }, reason: 'missNoFlow' },
  { name: 'IPv4 ICMP', pkt: { ...known4, rawProto: 1 }, reason: 'missProtocol' },
  { name: 'IPv6 ICMPv6', pkt: { ...known6, rawProto: 58 }, reason: 'missProtocol' },
  { name: 'IPv4 fragment', pkt: { ...known4, fragment: true }, reason: 'missFragment' },
  { name: 'IPv4 options', pkt: { ...known4, options: true }, reason: 'missIpOptions' },
  { name: 'IPv6 hop-by-hop header', pkt: { ...known6, hopByHop: true }, reason: 'missV6Ext' },
  { name: 'IPv4 TTL 1', pkt: { ...known4, ttl: 1 }, reason: 'missTtl' },
  { name: 'IPv6 hop limit 1', pkt: { ...known6, ttl: 1 }, reason: 'missTtl' },
  { name: 'IPv4 disabled real server', pkt: known4, reason: 'missRsDisabled', disabled: true },
  { name: 'IPv6 disabled real server', pkt: known6, reason: 'missRsDisabled', disabled: true },
];

for (const c of cases) {
  test(`falls through untouched: ${c.name}`, (t) =>
    withFastPath(t, (fp) => {
      setReal(fp, 0, c.pkt.family, c.pkt.family === 4 ? RIP : RIP6, !c.disabled);
      addFlow(fp, {
        family: c.pkt.family,
        proto: TCP,
        caddr: c.pkt.family === 4 ? CIP : CIP6,
        cport: 40002,
        vaddr: c.pkt.family === 4 ? VIP : VIP6,
        vport: 80,
        method: METHOD_DR,
      });
      const pkt = build(c.pkt);
      const r = fp.obj.testRun('tierlb_fastpath', pkt);
      t.is(r.retval, TC_ACT_OK);
      t.deepEqual(r.data, pkt);
      const cn = fp.stats().counters;
      t.is(cn[c.reason], 1);
      t.is(cn.hitDr + cn.hitNat + cn.hitNatReply, 0);
    }));
}

test('falls through untouched: a NAT reply tuple of a DR flow, and an ARP frame', (t) =>
  withFastPath(t, (fp) => {
    setReal(fp, 0, 4, RIP);
    addFlow(fp, { family: 4, proto: TCP, caddr: CIP, cport: 40003, vaddr: VIP, vport: 80, method: METHOD_DR });
    const reply = build({ family: 4, proto: TCP, src: RIP, sport: 80, dst: CIP, dport: 40003 });
    const r = fp.obj.testRun('tierlb_fastpath', reply);
    t.is(r.retval, TC_ACT_OK);
    t.deepEqual(r.data, reply);
    const arp = Buffer.alloc(42);
    arp.writeUInt16BE(0x0806, 12);
    const a = fp.obj.testRun('tierlb_fastpath', arp);
    t.is(a.retval, TC_ACT_OK);
    t.deepEqual(a.data, arp);
    t.is(fp.stats().counters.notIp, 1);
  }));

// ---------------------------------------------------------------------------------------------------------------
// TTL / hop limit

for (const family of [4, 6] as const) {
  test(`IPv${family}: TTL 2 leaves as 1 and 255 as 254, the header checksum right; TTL 1 stays with the stack`, (t) =>
    withFastPath(t, (fp) => {
      const [c, v, r] = family === 4 ? [CIP, VIP, RIP] : [CIP6, VIP6, RIP6];
      setReal(fp, 0, family, r);
      addFlow(fp, { family, proto: UDP, caddr: c, cport: 41000, vaddr: v, vport: 53, method: METHOD_DR });
      for (const ttl of [2, 255, 128]) {
        const spec = { family, proto: UDP, src: c, sport: 41000, dst: v, dport: 53, ttl };
        const res = fp.obj.testRun('tierlb_fastpath', build(spec));
        t.is(res.retval, TC_ACT_REDIRECT);
        t.is(verify(t, res.data, family, UDP).ttl, ttl - 1);
        t.deepEqual(res.data, build({ ...spec, ttl: ttl - 1 }));
      }
      const one = build({ family, proto: UDP, src: c, sport: 41000, dst: v, dport: 53, ttl: 1 });
      const res = fp.obj.testRun('tierlb_fastpath', one);
      t.is(res.retval, TC_ACT_OK);
      t.deepEqual(res.data, one);
      t.is(fp.stats().counters.missTtl, 1);
    }));
}

// ---------------------------------------------------------------------------------------------------------------
// arming (ordering against the NFQUEUE)

/** struct __sk_buff for BPF_PROG_TEST_RUN's ctx (zeroed: only tstamp is read back, at offset 152) */
const SKB_CTX = 192;
const SKB_TSTAMP = 152;

test('an unarmed entry: its packets fall through untouched, numbered and tagged per direction; each direction armed when the engine had all of it', (t) =>
  withFastPath(t, (fp) => {
    setReal(fp, 0, 4, RIP);
    const flow = {
      family: 4 as const,
      proto: TCP,
      caddr: CIP,
      cport: 42000,
      vaddr: VIP,
      vport: 80,
      method: METHOD_NAT,
      raddr: RIP,
      rport: 8080,
      armed: false,
      token: 77,
    };
    addFlow(fp, flow);
    const req = build({ family: 4, proto: TCP, src: CIP, sport: 42000, dst: VIP, dport: 80 });
    const rep = build({ family: 4, proto: TCP, src: RIP, sport: 8080, dst: CIP, dport: 42000 });
    const tags: bigint[] = [];
    for (const p of [req, rep, req]) {
      const r = fp.obj.testRun('tierlb_fastpath', p, Buffer.alloc(SKB_CTX));
      t.is(r.retval, TC_ACT_OK);
      t.deepEqual(r.data, p);
      tags.push(r.ctx?.readBigUInt64LE(SKB_TSTAMP) ?? 0n);
    }
    // (2^32 + token) s + (direction * 500000 + n) us: request 1, reply 1, request 2
    t.deepEqual(
      tags,
      [1n, 500001n, 2n].map((us) => (2n ** 32n + 77n) * 1_000_000_000n + us * 1000n),
    );
    t.is(fp.stats().counters.missUnarmed, 3);
    const st = readFlow(fp, flow);
    t.is(st?.packets, 0, 'nothing counted while unarmed');
    t.deepEqual(st?.passed, [2, 1]);
    t.deepEqual(st?.armed, [false, false]);
    // the engine has read request tag 1 only: tag 2 may still be queued, so the next request falls through (tag 3)
    const key = flowKey(4, TCP, CIP, 42000, VIP, 80);
    const at = Buffer.alloc(8);
    at.writeUInt32LE(1, 0);
    at.writeUInt32LE(1, 4);
    fp.arm4.update(key, at);
    t.is(fp.obj.testRun('tierlb_fastpath', req).retval, TC_ACT_OK);
    t.deepEqual(readFlow(fp, flow)?.passed, [3, 1]);
    // every reply had its verdict: the next reply arms the reply direction and is forwarded; requests still wait
    t.is(fp.obj.testRun('tierlb_fastpath', rep).retval, TC_ACT_REDIRECT);
    t.deepEqual(readFlow(fp, flow)?.armed, [false, true]);
    t.is(fp.obj.testRun('tierlb_fastpath', req).retval, TC_ACT_OK);
    // it has had all 4 requests: the next one arms the request direction and is forwarded
    at.writeUInt32LE(4, 0);
    fp.arm4.update(key, at);
    t.is(fp.obj.testRun('tierlb_fastpath', req).retval, TC_ACT_REDIRECT);
    t.deepEqual(readFlow(fp, flow)?.armed, [true, true]);
    t.is(fp.stats().counters.missUnarmed, 5);
  }));

// ---------------------------------------------------------------------------------------------------------------
// TUN

const DIRECTOR_SRC = '10.9.1.1';

for (const proto of [TCP, UDP]) {
  test(`TUN IPv4 ${proto === TCP ? 'TCP' : 'UDP'}: IPIP to the real server, outer and inner checksums valid`, (t) =>
    withFastPath(t, (fp) => {
      setReal(fp, 0, 4, RIP, true, DIRECTOR_SRC);
      const flow = { family: 4 as const, proto, caddr: CIP, cport: 43000, vaddr: VIP, vport: 80, method: METHOD_TUN };
      addFlow(fp, flow);
      const spec = { family: 4 as const, proto, src: CIP, sport: 43000, dst: VIP, dport: 80, payload: 300 };
      const pkt = build(spec);
      const res = fp.obj.testRun('tierlb_fastpath', pkt);
      t.is(res.retval, TC_ACT_REDIRECT);
      const o = res.data;
      t.is(o.length, pkt.length + 20);
      t.deepEqual(o.subarray(0, 14), pkt.subarray(0, 14), 'MAC header kept');
      t.is(o[14], 0x45);
      t.is(fold(sum16(o, 14, 20)), 0xffff, 'outer header checksum');
      t.is(o.readUInt16BE(14 + 2), pkt.length - 14 + 20, 'outer total length');
      t.is(o[14 + 9], 4, 'IPPROTO_IPIP');
      t.is(o.readUInt16BE(14 + 6) & 0x4000, 0x4000, 'DF copied from the inner header');
      t.deepEqual(Buffer.from(o.subarray(14 + 12, 14 + 16)), Buffer.from(addr(DIRECTOR_SRC)));
      t.deepEqual(Buffer.from(o.subarray(14 + 16, 14 + 20)), Buffer.from(addr(RIP)));
      // the inner packet: the client's, TTL decremented, checksums valid
      const inner = verify(t, o, 4, proto, 34);
      t.is(inner.ttl, 63);
      t.deepEqual(inner.dst, Buffer.from(addr(VIP)));
      t.deepEqual(o.subarray(34), build({ ...spec, ttl: 63 }).subarray(14));
      const st = readFlow(fp, flow);
      t.is(st?.packets, 1);
      t.is(st?.bytes, pkt.length - 14, 'the inner length, as the engine counts it');
      t.is(fp.stats().counters.hitTun, 1);
    }));
}

const DIRECTOR_SRC6 = '2001:db8:1::1';

for (const proto of [TCP, UDP]) {
  test(`TUN IPv6 ${proto === TCP ? 'TCP' : 'UDP'}: IPv6 in IPv6 to the real server, traffic class copied`, (t) =>
    withFastPath(t, (fp) => {
      setReal(fp, 0, 6, RIP6, true, DIRECTOR_SRC6);
      const flow = { family: 6 as const, proto, caddr: CIP6, cport: 43000, vaddr: VIP6, vport: 80, method: METHOD_TUN };
      addFlow(fp, flow);
      const spec = { family: 6 as const, proto, src: CIP6, sport: 43000, dst: VIP6, dport: 80, payload: 300, ttl: 50 };
      const pkt = build(spec);
      // traffic class 0xb8 (DSCP EF), flow label 0x12345: the class is copied to the outer header, the label is not
      pkt.writeUInt32BE((6 << 28) | (0xb8 << 20) | 0x12345, 14);
      const res = fp.obj.testRun('tierlb_fastpath', pkt);
      t.is(res.retval, TC_ACT_REDIRECT);
      const o = res.data;
      t.is(o.length, pkt.length + 40);
      t.deepEqual(o.subarray(0, 14), pkt.subarray(0, 14), 'MAC header kept');
      t.is(o.readUInt16BE(12), 0x86dd);
      const outer = o.subarray(14, 54);
      t.is(outer.readUInt32BE(0), (6 << 28) | (0xb8 << 20), 'version 6, traffic class copied, flow label 0');
      t.is(outer.readUInt16BE(4), pkt.length - 14, 'payload length: the whole inner packet');
      t.is(outer[6], 41, 'next header 41 (IPv6)');
      t.is(outer[7], 64, 'outer hop limit');
      t.deepEqual(Buffer.from(outer.subarray(8, 24)), Buffer.from(addr(DIRECTOR_SRC6)));
      t.deepEqual(Buffer.from(outer.subarray(24, 40)), Buffer.from(addr(RIP6)));
      // the inner packet: the client's byte for byte but its hop limit decremented; checksums valid
      const inner = verify(t, o, 6, proto, 54);
      t.is(inner.ttl, 49);
      const want = Buffer.from(pkt.subarray(14));
      want[7] = 49;
      t.deepEqual(Buffer.from(o.subarray(54)), want);
      const st = readFlow(fp, flow);
      t.is(st?.packets, 1);
      t.is(st?.bytes, pkt.length - 14, 'the inner length, as the engine counts it');
      t.is(fp.stats().counters.hitTun, 1);
    }));
}

test('TUN falls through untouched: TTL 1, hop limit 1, an IPv6 packet too big to encapsulate, a real of the other family', (t) =>
  withFastPath(t, (fp) => {
    setReal(fp, 0, 4, RIP, true, DIRECTOR_SRC);
    addFlow(fp, { family: 4, proto: UDP, caddr: CIP, cport: 43001, vaddr: VIP, vport: 53, method: METHOD_TUN });
    addFlow(fp, { family: 6, proto: UDP, caddr: CIP6, cport: 43001, vaddr: VIP6, vport: 53, method: METHOD_TUN });
    const ttl1 = build({ family: 4, proto: UDP, src: CIP, sport: 43001, dst: VIP, dport: 53, ttl: 1 });
    const six = build({ family: 6, proto: UDP, src: CIP6, sport: 43001, dst: VIP6, dport: 53 });
    // an IPv4 real for an IPv6 flow: not encapsulated here
    let r = fp.obj.testRun('tierlb_fastpath', six);
    t.is(r.retval, TC_ACT_OK);
    t.deepEqual(r.data, six);
    t.is(fp.stats().counters.missMethod, 1);
    setReal(fp, 0, 6, RIP6, true, DIRECTOR_SRC6);
    const hops1 = build({ family: 6, proto: UDP, src: CIP6, sport: 43001, dst: VIP6, dport: 53, ttl: 1 });
    // the inner packet's length says 65,535 payload bytes: 65,575 with its header, more than an outer IPv6 header's
    // payload length can say (the egress MTU, lo's 65,536 here, cannot be exceeded by a test-run packet)
    const big = Buffer.from(six);
    big.writeUInt16BE(0xffff, 14 + 4);
    for (const p of [ttl1, hops1, big]) {
      r = fp.obj.testRun('tierlb_fastpath', p);
      t.is(r.retval, TC_ACT_OK);
      t.deepEqual(r.data, p);
    }
    const cn = fp.stats().counters;
    t.is(cn.missTtl, 2);
    t.is(cn.missMtu, 1);
    t.is(cn.hitTun, 0);
  }));

test('a missing object is BpfError BPF_NO_OBJECT naming the fix', (t) => {
  const e = t.throws(() => new KernelFastPath({ objectPath: '/nonexistent/fastpath.bpf.o' }));
  t.is((e as { code?: string }).code, 'BPF_NO_OBJECT');
  t.regex(e.message, /npm run build/);
  t.regex(e.message, /clang and libbpf-dev/);
});
