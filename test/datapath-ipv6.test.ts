import test from 'ava';
import { ipv6ToBytes } from '../src/common/addr.js';
import { ManualClock } from '../src/common/clock.js';
import { REPLY_MARK } from '../src/fwmark/plan.js';
import { ipv6Words } from '../src/l4/conn/flow6.js';
import { inKey, outKey } from '../src/l4/conn/table.js';
import { TH_ACK, TH_SYN } from '../src/l4/conn/tcp.js';
import { l4Checksum } from '../src/l4/datapath/csum.js';
import { Forwarder } from '../src/l4/datapath/forward.js';
import { NF_ACCEPT, type QueuedPacket } from '../src/l4/datapath/nfqmsg.js';
import { PARSE_ICMP, PARSE_OK, PacketParser, parsePacket } from '../src/l4/datapath/packet.js';
import { Engine } from '../src/l4/engine.js';

const VIP = '2001:db8::100';
const CIP = '2001:db8:ff::5';

/** An IPv6 TCP or UDP packet (checksums are not checked on this path). */
function mk6(o: { proto?: 6 | 17; src?: string; dst?: string; sport?: number; dport?: number; flags?: number }) {
  const proto = o.proto ?? 6;
  const l4 = proto === 6 ? 20 : 8;
  const b = new Uint8Array(40 + l4 + 4);
  b[0] = 0x60;
  b[5] = l4 + 4;
  b[6] = proto;
  b[7] = 64;
  b.set(ipv6ToBytes(o.src ?? CIP), 8);
  b.set(ipv6ToBytes(o.dst ?? VIP), 24);
  const sp = o.sport ?? 40000;
  const dp = o.dport ?? 80;
  b[40] = sp >> 8;
  b[41] = sp & 0xff;
  b[42] = dp >> 8;
  b[43] = dp & 0xff;
  if (proto === 6) {
    b[52] = 0x50;
    b[53] = o.flags ?? TH_SYN;
    b[54] = 0xff;
  } else b[45] = 8 + 4;
  return b;
}

/** An ICMPv6 error (destination unreachable) from `src` to `dst` carrying `inner`. */
function mkIcmp6Error(inner: Uint8Array, src = CIP, dst = VIP): Uint8Array {
  const b = new Uint8Array(40 + 8 + inner.length);
  b[0] = 0x60;
  b[4] = (8 + inner.length) >> 8;
  b[5] = (8 + inner.length) & 0xff;
  b[6] = 58;
  b[7] = 64;
  b.set(ipv6ToBytes(src), 8);
  b.set(ipv6ToBytes(dst), 24);
  b[40] = 1;
  b[41] = 4;
  b.set(inner, 48);
  return b;
}

const qp = (id: number, payload: Uint8Array, mark = 0x544c0001): QueuedPacket => ({
  id,
  hwProtocol: 0x86dd,
  hook: 0,
  mark,
  indev: 2,
  outdev: 0,
  payload,
});

function setup() {
  const clock = new ManualClock(1000);
  const e = new Engine({ clock });
  const verdicts: { id: number; v: number; mark?: number; payload?: Uint8Array }[] = [];
  const f = new Forwarder(e, {
    verdict: (id, v, mark, payload) => verdicts.push({ id, v, mark, payload: payload?.slice() }),
    sendRaw: () => true,
  });
  const dr = { kind: 'tcp', family: 6, addr: VIP, port: 80 } as const;
  e.table.addService({ id: dr, sched: 'rr', flags: 0, timeout: 0, netmask: 128 });
  for (const rs of ['2001:db8::11', '2001:db8::12'])
    e.table.addDest(dr, { addr: rs, port: 80, fwd: 'route', weight: 1, uThreshold: 0, lThreshold: 0 });
  const nat = { kind: 'tcp', family: 6, addr: VIP, port: 81 } as const;
  e.table.addService({ id: nat, sched: 'rr', flags: 0, timeout: 0, netmask: 128 });
  e.table.addDest(nat, { addr: '2001:db8::13', port: 8080, fwd: 'masq', weight: 1, uThreshold: 0, lThreshold: 0 });
  return { clock, e, f, verdicts };
}

test('parser: IPv6 addresses as eight big-endian words, source then destination (also in an ICMPv6 error)', (t) => {
  const p = new PacketParser();
  t.is(p.parse(mk6({ src: 'ffff::1', dst: '::ffff:10.0.0.1' })), PARSE_OK);
  t.deepEqual([...p.pkt.addr6], [-65536, 0, 0, 1, 0, 0, 0xffff, 0x0a000001]);
  t.is(p.parse(mkIcmp6Error(mk6({ src: VIP, dst: CIP, sport: 80 }))), PARSE_ICMP);
  const w = new Int32Array(8);
  ipv6Words(VIP, w, 0);
  ipv6Words(CIP, w, 4);
  t.deepEqual([...p.inner.addr6], [...w]);
});

test('forwarder IPv6: established DR flows found by the numeric index, the same entry as by string key', (t) => {
  const { e, f, verdicts } = setup();
  f.handle(qp(1, mk6({})));
  f.handle(qp(2, mk6({ sport: 40001 })));
  const m1 = verdicts[0].mark;
  const m2 = verdicts[1].mark;
  t.not(m1, m2, 'round robin: two servers');
  for (let i = 0; i < 5; i++) {
    f.handle(qp(10 + i, mk6({ flags: TH_ACK })));
    t.like(verdicts.at(-1), { id: 10 + i, v: NF_ACCEPT, mark: m1 });
    f.handle(qp(20 + i, mk6({ sport: 40001, flags: TH_ACK })));
    t.like(verdicts.at(-1), { id: 20 + i, v: NF_ACCEPT, mark: m2 });
  }
  t.is(e.conns.size, 2);
  const c = e.conns.getIn(inKey(6, CIP, 40000, VIP, 80));
  t.truthy(c);
  t.is(c?.inpkts, 6);
  // a non-canonical spelling of the same addresses names the same flow
  t.is(e.conns.getIn(inKey(6, '2001:DB8:FF:0::5', 40000, '2001:db8:0::100', 80)), c);
  // the reverse tuple is not a client → VIP flow; a mid-flow ACK of an unknown flow opens nothing
  t.is(e.conns.getIn(inKey(6, VIP, 80, CIP, 40000)), undefined);
  f.handle(qp(30, mk6({ sport: 40002, flags: TH_ACK })));
  t.is(e.conns.size, 2);
});

test('forwarder IPv6: NAT reply found in the out index, ICMPv6 errors follow their connection', (t) => {
  const { e, f, verdicts } = setup();
  f.handle(qp(1, mk6({ dport: 81 })));
  const fwd = parsePacket(verdicts[0].payload as Uint8Array);
  t.true(fwd.ok && 'pkt' in fwd && fwd.pkt.daddr === '2001:db8::13' && fwd.pkt.dport === 8080);
  const c = e.conns.getIn(inKey(6, CIP, 40000, VIP, 81));
  t.is(e.conns.getOut(outKey(6, '2001:db8::13', 8080, CIP, 40000)), c);
  // the reply RIP:8080 → CIP:40000 goes out as VIP:81
  f.handle(qp(2, mk6({ src: '2001:db8::13', sport: 8080, dst: CIP, dport: 40000, flags: 0x12 }), REPLY_MARK));
  const r = parsePacket(verdicts[1].payload as Uint8Array);
  t.true(r.ok && 'pkt' in r && r.pkt.saddr === VIP && r.pkt.sport === 81);
  t.is(c?.outpkts, 1);
  t.is(f.counters.forwarded.reply, 1);
  // a reply of a flow that is not NAT'd passes
  f.handle(qp(3, mk6({ src: '2001:db8::13', sport: 8080, dst: CIP, dport: 40001, flags: 0x12 }), REPLY_MARK));
  t.like(verdicts[2], { id: 3, v: NF_ACCEPT, mark: 0 });
  t.is(f.counters.passed, 1);

  // ICMPv6 error from the client side about VIP:81 → CIP:40000: to the real server, embedded source rewritten
  f.handle(qp(4, mkIcmp6Error(mk6({ src: VIP, sport: 81, dst: CIP, dport: 40000, flags: TH_ACK }))));
  const ie = parsePacket(verdicts[3].payload as Uint8Array);
  if (!ie.ok || !('icmp' in ie)) return t.fail();
  t.like(ie.icmp.outer, { daddr: '2001:db8::13' });
  t.like(ie.icmp.inner, { saddr: '2001:db8::13', sport: 8080, daddr: CIP, dport: 40000 });
  // about a DR flow: it follows the flow's server; about an unknown one: it passes
  f.handle(qp(5, mk6({ sport: 40005 })));
  const mark = verdicts[4].mark;
  f.handle(qp(6, mkIcmp6Error(mk6({ src: VIP, sport: 80, dst: CIP, dport: 40005, flags: TH_ACK }))));
  t.like(verdicts[5], { id: 6, v: NF_ACCEPT, mark });
  f.handle(qp(7, mkIcmp6Error(mk6({ src: VIP, sport: 80, dst: CIP, dport: 40006, flags: TH_ACK }))));
  t.like(verdicts[6], { id: 7, v: NF_ACCEPT, mark: 0 });
  t.is(f.counters.bad['icmp-no-conn'], 1);
  t.is(e.conns.size, 2);
});

test('forwarder IPv6: an expired connection leaves both indexes; the next SYN schedules anew', (t) => {
  const { clock, e, f, verdicts } = setup();
  f.handle(qp(1, mk6({ dport: 81 })));
  t.is(e.conns.size, 1);
  clock.advance(10 * 60_000);
  e.tick();
  t.is(e.conns.size, 0);
  t.is(e.conns.getIn(inKey(6, CIP, 40000, VIP, 81)), undefined);
  t.is(e.conns.getOut(outKey(6, '2001:db8::13', 8080, CIP, 40000)), undefined);
  f.handle(qp(2, mk6({ src: '2001:db8::13', sport: 8080, dst: CIP, dport: 40000, flags: 0x12 }), REPLY_MARK));
  t.like(verdicts.at(-1), { id: 2, v: NF_ACCEPT, mark: 0 });
  f.handle(qp(3, mk6({ dport: 81, flags: TH_ACK })));
  t.is(e.conns.size, 0, 'a mid-flow segment of the expired flow opens nothing');
  f.handle(qp(4, mk6({ dport: 81 })));
  t.is(e.conns.size, 1);
  t.truthy(e.conns.getOut(outKey(6, '2001:db8::13', 8080, CIP, 40000)));
});

/** the ICMPv6 checksum stored in an error and the one its bytes (pseudo-header included) call for */
function icmp6Checksums(b: Uint8Array): [number, number] {
  const r = parsePacket(b);
  if (!r.ok || !('icmp' in r)) throw new Error('not an ICMPv6 error');
  const o = r.icmp.outer;
  return [(b[r.icmp.icmpOff + 2] << 8) | b[r.icmp.icmpOff + 3], l4Checksum(b, o)];
}

test('forwarder IPv6: an ICMPv6 error about a NAT flow leaves with a valid ICMPv6 checksum', (t) => {
  const { f, verdicts } = setup();
  f.handle(qp(1, mk6({ dport: 81 })));
  const err = mkIcmp6Error(mk6({ src: VIP, sport: 81, dst: CIP, dport: 40000, flags: TH_ACK }));
  const [, valid] = icmp6Checksums(err);
  err[40 + 2] = valid >> 8;
  err[40 + 3] = valid & 0xff;
  t.is(icmp6Checksums(err)[0], icmp6Checksums(err)[1]);
  f.handle(qp(2, err));
  const out = verdicts[1].payload as Uint8Array;
  const p = parsePacket(out);
  if (!p.ok || !('icmp' in p)) return t.fail();
  // outer destination and embedded source both rewritten to the real server's address and port
  t.like(p.icmp.outer, { daddr: '2001:db8::13' });
  t.like(p.icmp.inner, { saddr: '2001:db8::13', sport: 8080 });
  const [stored, want] = icmp6Checksums(out);
  t.is(stored, want);
});
