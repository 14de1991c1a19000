import test from 'ava';
import { ipv4ToInt, ipv6ToBytes } from '../src/common/addr.js';
import { ipv4HeaderChecksum } from '../src/l4/datapath/csum.js';
import {
  MessagePool,
  NF_ACCEPT,
  NF_DROP,
  type NlMessage,
  parseMessages,
  putVerdict,
  VerdictBatch,
} from '../src/l4/datapath/nfqmsg.js';
import { PARSE_BAD, PARSE_ICMP, PARSE_OK, PacketParser, parsePacket } from '../src/l4/datapath/packet.js';
import { packetMsg } from './datapath-fixture.js';
import { referenceParse } from './datapath-parse-reference.js';
import { seeded } from './seeded.js';

const ip4 = (s: string) => s.split('.').map(Number);

function v4(proto: number, src: string, dst: string, l4: number[], o: { frag?: number; ihl?: number } = {}) {
  const ihl = o.ihl ?? 20;
  const b = new Uint8Array(ihl + l4.length);
  b[0] = 0x40 | (ihl / 4);
  b[2] = b.length >> 8;
  b[3] = b.length & 0xff;
  b[6] = o.frag ?? 0x40;
  b[8] = 64;
  b[9] = proto;
  b.set(ip4(src), 12);
  b.set(ip4(dst), 16);
  b.set(l4, ihl);
  const c = ipv4HeaderChecksum(b, 0, ihl);
  b[10] = c >> 8;
  b[11] = c & 0xff;
  return b;
}

function v6(next: number, src: string, dst: string, rest: number[]) {
  const b = new Uint8Array(40 + rest.length);
  b[0] = 0x60;
  b[4] = rest.length >> 8;
  b[5] = rest.length & 0xff;
  b[6] = next;
  b[7] = 64;
  b.set(ipv6ToBytes(src), 8);
  b.set(ipv6ToBytes(dst), 24);
  b.set(rest, 40);
  return b;
}

const tcp = (sport: number, dport: number, flags: number, data = 4) => [
  sport >> 8,
  sport & 255,
  dport >> 8,
  dport & 255,
  0,
  0,
  0,
  1,
  0,
  0,
  0,
  0,
  0x50,
  flags,
  0xff,
  0xff,
  0,
  0,
  0,
  0,
  ...new Array(data).fill(7),
];
const udp = (sport: number, dport: number, data = 6) => [
  sport >> 8,
  sport & 255,
  dport >> 8,
  dport & 255,
  0,
  8 + data,
  0,
  0,
  ...new Array(data).fill(9),
];

/** Packets of every kind the parser distinguishes, good and bad. */
function corpus(): Uint8Array[] {
  const c: Uint8Array[] = [];
  const innerTcp = v4(6, '10.0.0.100', '10.0.0.10', tcp(80, 40000, 0x10));
  const innerUdp = v4(17, '10.0.0.100', '10.0.0.10', udp(53, 5353));
  c.push(v4(6, '10.0.0.10', '10.0.0.100', tcp(40000, 80, 0x02)));
  c.push(v4(6, '255.255.255.255', '0.0.0.1', tcp(65535, 0, 0x12)));
  c.push(v4(17, '192.168.7.9', '10.77.1.100', udp(1234, 9000)));
  c.push(v4(132, '10.1.2.3', '10.77.1.100', [0, 80, 0, 81, 1, 2, 3, 4]));
  c.push(v4(47, '10.1.2.3', '10.77.1.100', [1, 2, 3, 4]));
  c.push(v4(6, '10.0.0.10', '10.0.0.100', tcp(1, 2, 0x11), { ihl: 24 }));
  c.push(v4(6, '10.0.0.10', '10.0.0.100', tcp(1, 2, 0x11), { frag: 0x20 }));
  c.push(v4(6, '10.0.0.10', '10.0.0.100', tcp(1, 2, 0x11).slice(0, 12)));
  c.push(v4(17, '10.0.0.10', '10.0.0.100', udp(1, 2).slice(0, 6)));
  // ICMP errors (dest unreachable, time exceeded) about TCP and UDP, echo, a short one, a bad inner packet
  for (const [type, inner] of [
    [3, innerTcp.subarray(0, 28)],
    [11, innerUdp.subarray(0, 28)],
    [3, innerTcp],
    [8, innerTcp.subarray(0, 28)],
    [3, innerTcp.subarray(0, 24)],
    [3, v4(47, '10.0.0.100', '10.0.0.10', [1, 2, 3, 4, 5, 6, 7, 8])],
  ] as const)
    c.push(v4(1, '10.0.0.10', '10.0.0.100', [type, 4, 0, 0, 0, 0, 0, 0, ...inner]));
  c.push(v4(1, '10.0.0.10', '10.0.0.100', [3, 4, 0]));
  // IPv6: TCP, UDP behind hop-by-hop and destination options, a fragment, ICMPv6 errors and echo, an ICMPv4 inside v6
  c.push(v6(6, '2001:db8::10', '2001:db8::100', tcp(40000, 443, 0x02)));
  c.push(v6(0, '::1', '2001:db8::64', [60, 0, 0, 0, 0, 0, 0, 0, 17, 0, 0, 0, 0, 0, 0, 0, ...udp(5000, 53)]));
  c.push(v6(44, 'fe80::1', '2001:db8::64', [17, 0, 0, 1, 0, 0, 0, 1, ...udp(5000, 53)]));
  const inner6 = v6(6, '2001:db8::100', '2001:db8::10', tcp(443, 40000, 0x10));
  c.push(v6(58, '2001:db8::1', '2001:db8::100', [1, 4, 0, 0, 0, 0, 0, 0, ...inner6.subarray(0, 48)]));
  c.push(v6(58, '2001:db8::1', '2001:db8::100', [128, 0, 0, 0, 0, 0, 0, 0]));
  c.push(v6(58, '2001:db8::1', '2001:db8::100', [1, 4, 0, 0, 0, 0, 0, 0, ...innerTcp.subarray(0, 28)]));
  c.push(v6(1, '2001:db8::1', '2001:db8::100', [8, 0, 0, 0, 0, 0, 0, 0]));
  c.push(new Uint8Array(0), new Uint8Array([0x45]), new Uint8Array([0x55, 0, 0, 20]));
  // random mutations of the good ones, and garbage
  const rnd = seeded(7);
  const base = c.slice();
  for (let i = 0; i < 3000; i++) {
    const b = base[i % base.length].slice();
    for (let k = 0; k < 1 + (i % 3); k++) if (b.length) b[Math.floor(rnd() * b.length)] = Math.floor(rnd() * 256);
    c.push(i % 5 === 0 ? b.subarray(0, Math.floor(rnd() * b.length)) : b);
  }
  for (let i = 0; i < 1000; i++) {
    const b = Uint8Array.from({ length: (i * 7) % 90 }, () => Math.floor(rnd() * 256));
    if (i % 2 && b.length) b[0] = i % 4 === 1 ? 0x45 : 0x60;
    c.push(b);
  }
  return c;
}

test('the preallocated parser gives the same fields as the parser before it, on a corpus incl. IPv6, ICMP errors and bad packets', (t) => {
  const kinds = new Set<string>();
  for (const [i, b] of corpus().entries()) {
    const want = referenceParse(b, 0x2710);
    t.deepEqual(parsePacket(b, 0x2710), want, `packet ${i}`);
    kinds.add(want.ok ? ('icmp' in want ? 'icmp' : `ok${want.pkt.family}`) : want.reason);
  }
  // the corpus reaches every outcome
  for (const k of [
    'ok4',
    'ok6',
    'icmp',
    'truncated',
    'bad-version',
    'bad-ihl',
    'bad-length',
    'fragment',
    'bad-l4-header',
    'unknown-protocol',
    'icmp-not-error',
    'icmp-bad-inner',
  ])
    t.true(kinds.has(k), k);
});

test('one PacketParser reused: each parse overwrites the views, IPv4 addresses also as numbers, strings on demand', (t) => {
  const p = new PacketParser();
  const a = v4(6, '10.0.0.10', '10.0.0.100', tcp(40000, 80, 0x02));
  const b = v4(17, '192.168.7.9', '10.77.1.100', udp(1234, 9000));
  t.is(p.parse(a, 5), PARSE_OK);
  t.like(p.pkt, { family: 4, protocol: 6, saddr: '10.0.0.10', daddr: '10.0.0.100', sport: 40000, dport: 80 });
  t.is(p.pkt.saddr4, ipv4ToInt('10.0.0.10'));
  t.is(p.pkt.daddr4, ipv4ToInt('10.0.0.100'));
  t.is(p.parse(b), PARSE_OK);
  t.like(p.pkt, { protocol: 17, saddr: '192.168.7.9', daddr: '10.77.1.100', sport: 1234, dport: 9000, tcpFlags: 0 });
  t.is(p.pkt.saddr4, ipv4ToInt('192.168.7.9'));
  t.is(p.pkt.fwmark, 0);
  const six = v6(6, '2001:db8::10', '2001:db8::100', tcp(40000, 443, 0x02));
  t.is(p.parse(six), PARSE_OK);
  t.like(p.pkt, { family: 6, saddr: '2001:db8::10', daddr: '2001:db8::100', saddr4: 0, daddr4: 0 });
  const icmp = v4(1, '10.0.0.10', '10.0.0.100', [
    3,
    4,
    0,
    0,
    0,
    0,
    0,
    0,
    ...v4(6, '10.0.0.100', '10.0.0.10', tcp(80, 40000, 0x10)).subarray(0, 28),
  ]);
  t.is(p.parse(icmp), PARSE_ICMP);
  t.like(p.inner, { saddr: '10.0.0.100', sport: 80, daddr: '10.0.0.10', dport: 40000 });
  t.is(p.icmpOff, 20);
  t.is(p.innerOff, 28);
  t.is(p.parse(new Uint8Array([0x45])), PARSE_BAD);
  t.is(p.reason, 'truncated');
});

test('pooled netlink parse: same packets as the fresh parse, messages reused from datagram to datagram', (t) => {
  const pool = new MessagePool();
  const out: NlMessage[] = [];
  const pa = v4(6, '10.0.0.10', '10.0.0.100', tcp(40000, 80, 0x02));
  const pb = v4(17, '10.0.0.11', '10.0.0.100', udp(1, 2));
  const ma = packetMsg(0xfffffffe, 0x544c0001, pa);
  const mb = packetMsg(2, 0x2710, pb);
  // two messages in one datagram, and an error message
  const err = new Uint8Array(36);
  new DataView(err.buffer).setUint32(0, 36, true);
  new DataView(err.buffer).setUint16(4, 2, true);
  new DataView(err.buffer).setUint32(8, 77, true);
  new DataView(err.buffer).setInt32(16, -2, true);
  const dgram = new Uint8Array([...ma, ...err, ...mb]);
  const fresh = parseMessages(dgram, dgram.length);
  parseMessages(dgram, dgram.length, out, pool);
  t.is(out.length, 3);
  for (let i = 0; i < 3; i++) {
    const f = fresh[i];
    const p = out[i];
    t.is(p.kind, f.kind);
    if (f.kind === 'packet' && p.kind === 'packet') {
      const { hwaddr, ...rest } = f.pkt;
      t.deepEqual({ ...p.pkt, hwaddr: undefined }, { ...rest, hwaddr: undefined });
      t.deepEqual([...(hwaddr ?? [])], [2, 0, 0, 0, 0, 1]);
    } else t.deepEqual(p, f);
  }
  t.like(out[0], { pkt: { id: 0xfffffffe, mark: 0x544c0001, hook: 1, indev: 7, hwProtocol: 0x0800 } });
  t.like(out[1], { kind: 'error', errno: 2, seq: 77 });
  const first = out[0];
  out.length = 0;
  parseMessages(mb, mb.length, out, pool);
  t.is(out[0], first, 'the pool hands out the same message object');
  t.like(out[0], { pkt: { id: 2, mark: 0x2710, indev: 7 } });
  if (out[0].kind === 'packet') t.deepEqual(out[0].pkt.payload, pb);
});

test('verdict encoding: a batch is the verdicts back to back, as putVerdict writes them one by one', (t) => {
  const batch = new VerdictBatch(3, 64);
  const want = new Uint8Array(1024);
  let off = 0;
  const payload = Uint8Array.from({ length: 45 }, (_, i) => i);
  for (const [id, v, mark, pl] of [
    [1, NF_ACCEPT, undefined, undefined],
    [0xffffffff, NF_ACCEPT, 0x544c0100, undefined],
    [3, NF_DROP, 0, payload],
    [4, NF_ACCEPT, 0xffffffff, payload.subarray(0, 3)],
  ] as const) {
    batch.add(id, v, mark, pl);
    off = putVerdict(want, off, 3, id, v, mark, pl);
  }
  t.is(batch.count, 4);
  t.is(batch.off, off);
  t.deepEqual(batch.buf.subarray(0, batch.off), want.subarray(0, off));
  const dv = new DataView(want.buffer);
  // second verdict: nlmsg length 40, NFQA_VERDICT_HDR accept / id, NFQA_MARK
  t.is(dv.getUint32(32, true), 40);
  t.is(dv.getUint16(32 + 4, true), (3 << 8) | 1);
  t.is(dv.getUint16(32 + 18, false), 3);
  t.is(dv.getUint32(32 + 24, false), NF_ACCEPT);
  t.is(dv.getUint32(32 + 28, false), 0xffffffff);
  t.is(dv.getUint32(32 + 36, false), 0x544c0100);
  batch.reset();
  t.is(batch.off, 0);
  t.true(batch.fits(undefined, true));
});
