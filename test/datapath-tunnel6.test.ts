/**
 * The userspace TUN path to IPv6 real servers (ip_vs_tunnel_xmit_v6): the packet leaves encapsulated in IPv6 through
 * the io's IPv6 tunnel socket (its traffic class for the outer header), the original dropped; one that would not fit
 * the path once encapsulated is answered with ICMPv6 Packet Too Big (byte-exact, checksum valid) and counted.
 */
import test from 'ava';
import { ipv6ToBytes } from '../src/common/addr.js';
import { ManualClock } from '../src/common/clock.js';
import { finish, ipipEncap, sumWords } from '../src/l4/datapath/csum.js';
import { Forwarder } from '../src/l4/datapath/forward.js';
import { NF_DROP, type QueuedPacket } from '../src/l4/datapath/nfqmsg.js';
import { Engine } from '../src/l4/engine.js';
import { icmpError } from './packet-craft.js';

const VIP = '2001:db8::100';
const CIP = '2001:db8:ff::5';
const RIP = '2001:db8:1::11';
const VIP4 = '10.0.0.100';

/** An IPv6 UDP packet of `size` bytes in all, traffic class `tclass`, flow label 0x54321. */
function udp6(size: number, o: { tclass?: number; src?: string; dst?: string; sport?: number } = {}): Uint8Array {
  const b = new Uint8Array(size);
  const tc = o.tclass ?? 0;
  b[0] = 0x60 | (tc >> 4);
  b[1] = ((tc & 0x0f) << 4) | 0x05;
  b[2] = 0x43;
  b[3] = 0x21;
  b[4] = (size - 40) >> 8;
  b[5] = (size - 40) & 0xff;
  b[6] = 17;
  b[7] = 64;
  b.set(ipv6ToBytes(o.src ?? CIP), 8);
  b.set(ipv6ToBytes(o.dst ?? VIP), 24);
  const sport = o.sport ?? 40000;
  b[40] = sport >> 8;
  b[41] = sport & 0xff;
  b[43] = 53;
  b[44] = (size - 40) >> 8;
  b[45] = (size - 40) & 0xff;
  for (let i = 48; i < size; i++) b[i] = i & 0xff;
  return b;
}

/** An IPv4 UDP packet (the IPv4-in-IPv6 case), TOS `tos`, DF set. */
function udp4(size: number, tos: number): Uint8Array {
  const b = new Uint8Array(size);
  b[0] = 0x45;
  b[1] = tos;
  b[2] = size >> 8;
  b[3] = size & 0xff;
  b[6] = 0x40;
  b[8] = 64;
  b[9] = 17;
  b.set([10, 0, 0, 10], 12);
  b.set([10, 0, 0, 100], 16);
  b[20] = 0x9c;
  b[21] = 0x40;
  b[23] = 53;
  b[24] = (size - 20) >> 8;
  b[25] = (size - 20) & 0xff;
  return b;
}

const qp = (id: number, payload: Uint8Array): QueuedPacket => ({
  id,
  hwProtocol: payload[0] >> 4 === 6 ? 0x86dd : 0x0800,
  hook: 0,
  mark: 0x544c0001,
  indev: 2,
  outdev: 0,
  payload,
});

function setup(o: { sendOk?: boolean } = {}) {
  const e = new Engine({ clock: new ManualClock(1000) });
  const verdicts: { id: number; v: number; mark?: number }[] = [];
  const tunnel: { inner: Uint8Array; dst: Uint8Array; tclass: number }[] = [];
  const raw6: { pkt: Uint8Array; dst: Uint8Array }[] = [];
  const f = new Forwarder(e, {
    verdict: (id, v, mark) => verdicts.push({ id, v, mark }),
    sendRaw: () => true,
    sendTunnel6: (inner, dst, tclass) => {
      tunnel.push({ inner: inner.slice(), dst: dst.slice(), tclass });
      return o.sendOk ?? true;
    },
    sendRaw6: (pkt, dst) => raw6.push({ pkt: pkt.slice(), dst: dst.slice() }) > 0,
  });
  const svc = { kind: 'udp', family: 6, addr: VIP, port: 53 } as const;
  e.table.addService({ id: svc, sched: 'rr', flags: 0, timeout: 0, netmask: 128 });
  e.table.addDest(svc, { addr: RIP, port: 53, fwd: 'tunnel', weight: 1, uThreshold: 0, lThreshold: 0 });
  return { e, f, verdicts, tunnel, raw6 };
}

test('TUN to an IPv6 real server: the packet leaves whole through the IPv6 tunnel socket, its traffic class for the outer header', (t) => {
  const { f, verdicts, tunnel, raw6 } = setup();
  const pkt = udp6(300, { tclass: 0xb8 });
  f.handle(qp(1, pkt));
  t.deepEqual(verdicts, [{ id: 1, v: NF_DROP, mark: undefined }], 'the original is dropped');
  t.is(tunnel.length, 1);
  t.deepEqual(tunnel[0].inner, pkt, 'the inner packet byte for byte (hop limit untouched, as IPVS)');
  t.deepEqual(tunnel[0].dst, ipv6ToBytes(RIP));
  t.is(tunnel[0].tclass, 0xb8);
  t.is(f.counters.forwarded.tunnel, 1);
  t.is(f.counters.forwarded.route, 0);
  t.is(raw6.length, 0);
  // no DR mark route for a tunnel real server
  t.deepEqual(f.plan().routes, []);
  // the largest that fits: tunnelMtu less the outer header
  f.handle(qp(2, udp6(1460)));
  t.is(tunnel.length, 2);
  t.is(f.counters.forwarded.tunnel, 2);
});

test('TUN IPv6 too big once encapsulated: ICMPv6 Packet Too Big to the client from the VIP, MTU tunnelMtu - 40', (t) => {
  const { f, verdicts, tunnel, raw6 } = setup();
  const pkt = udp6(1461);
  f.handle(qp(1, pkt));
  t.deepEqual(verdicts, [{ id: 1, v: NF_DROP, mark: undefined }]);
  t.is(tunnel.length, 0);
  t.is(f.counters.forwarded.tunnel, 0);
  t.is(f.counters.bad['tunnel-too-big'], 1);
  t.is(raw6.length, 1);
  const { pkt: ptb, dst } = raw6[0];
  t.deepEqual(dst, ipv6ToBytes(CIP));
  // 1280 bytes: the header, the ICMPv6 header, then the first 1232 bytes of the packet
  t.is(ptb.length, 1280);
  const want = new Uint8Array(1280);
  want.set([0x60, 0, 0, 0, 1240 >> 8, 1240 & 0xff, 58, 64]);
  want.set(ipv6ToBytes(VIP), 8);
  want.set(ipv6ToBytes(CIP), 24);
  want.set([2, 0, 0, 0, 0, 0, 1460 >> 8, 1460 & 0xff], 40);
  want.set(pkt.subarray(0, 1232), 48);
  const c = (ptb[42] << 8) | ptb[43];
  t.deepEqual(ptb.slice(0, 42), want.slice(0, 42));
  t.deepEqual(ptb.slice(44), want.slice(44));
  // ICMPv6 checksum over the pseudo-header (source, destination, length, next header) and the message
  t.is(finish(sumWords(ptb, 8, 32) + 1240 + 58 + sumWords(ptb, 40, 1240)), 0, `checksum ${c.toString(16)} valid`);

  // a smaller path: the MTU said follows tunnelMtu; a short packet quoted whole
  f.tunnelMtu = 1320;
  const p2 = udp6(1300, { sport: 40001 });
  f.handle(qp(2, p2));
  t.is(raw6.length, 2);
  t.is(raw6[1].pkt.length, 48 + 1232);
  t.is((raw6[1].pkt[46] << 8) | raw6[1].pkt[47], 1280);
  t.is(f.counters.bad['tunnel-too-big'], 2);
});

test('TUN IPv6: an ICMPv6 error too big for the tunnel gets no Packet Too Big; a failed send is counted', (t) => {
  const { f, tunnel, raw6, verdicts } = setup();
  f.handle(qp(1, udp6(100)));
  t.is(tunnel.length, 1);
  // a destination unreachable from the client about the flow (VIP:53 -> CIP:40000 embedded), 1500 bytes
  const inner = udp6(1452, { src: VIP, dst: CIP });
  [inner[40], inner[41], inner[42], inner[43]] = [0, 53, 40000 >> 8, 40000 & 0xff];
  const err = icmpError({ src: CIP, dst: VIP, type: 1, code: 4, quoted: inner, quoteLen: inner.length });
  f.handle(qp(2, err));
  t.like(verdicts.at(-1), { id: 2, v: NF_DROP });
  t.is(f.counters.bad['tunnel-too-big'], 1);
  t.is(raw6.length, 0, 'no ICMPv6 error about an ICMPv6 error');
  t.is(tunnel.length, 1);

  const failing = setup({ sendOk: false });
  failing.f.handle(qp(1, udp6(100)));
  t.is(failing.f.counters.bad['tunnel-send'], 1);
  t.is(failing.f.counters.forwarded.tunnel, 0);
  t.like(failing.verdicts.at(-1), { id: 1, v: NF_DROP });
});

test('TUN across families: IPv4 to an IPv6 real server through the tunnel socket (TOS as traffic class); IPv6 in IPIP is protocol 41', (t) => {
  const { e, f, tunnel } = setup();
  const svc = { kind: 'udp', family: 4, addr: VIP4, port: 53 } as const;
  e.table.addService({ id: svc, sched: 'rr', flags: 0, timeout: 0, netmask: 0xffffffff });
  e.table.addDest(svc, { addr: RIP, port: 53, fwd: 'tunnel', weight: 1, uThreshold: 0, lThreshold: 0 });
  const p = udp4(200, 0x28);
  f.handle(qp(1, p));
  t.is(tunnel.length, 1);
  t.deepEqual(tunnel[0].inner, p);
  t.is(tunnel[0].tclass, 0x28);
  // with DF and too big: counted and dropped, as the IPIP path does
  f.handle(qp(2, udp4(1461, 0)));
  t.is(tunnel.length, 1);
  t.is(f.counters.bad['tunnel-too-big'], 1);

  const six = udp6(100, { tclass: 0xb8 });
  const out = ipipEncap(six, new Uint8Array([10, 0, 0, 13]));
  t.is(out[9], 41, 'IPv6 in IPv4');
  t.is(out[1], 0xb8, 'its traffic class as TOS');
  t.is(out[6], 0, 'no DF from an IPv6 packet');
});
