import test from 'ava';
import { ManualClock } from '../src/common/clock.js';
import { renderGuards } from '../src/fwmark/guards.js';
import { DIVERT_MARK, emptyPlan, REPLY_MARK } from '../src/fwmark/plan.js';
import { ipv4HeaderOk } from '../src/l4/datapath/csum.js';
import { Forwarder } from '../src/l4/datapath/forward.js';
import { NF_ACCEPT, NF_DROP, type QueuedPacket } from '../src/l4/datapath/nfqmsg.js';
import { parsePacket } from '../src/l4/datapath/packet.js';
import { Engine } from '../src/l4/engine.js';
import { checksumsOk, icmpError, ip, TCP, tcp, UDP, udp } from './packet-craft.js';

const VIP = '10.0.0.100';
const VIP6 = '2001:db8::100';

function setup() {
  const e = new Engine({ clock: new ManualClock(1000) });
  const verdicts: { id: number; v: number; mark?: number; payload?: Uint8Array }[] = [];
  const f = new Forwarder(e, {
    verdict: (id, v, mark, payload) => verdicts.push({ id, v, mark, payload: payload?.slice() }),
    sendRaw: () => true,
  });
  for (const [family, addr, rip] of [
    [4, VIP, '10.0.0.11'],
    [6, VIP6, '2001:db8::11'],
  ] as const) {
    const id = { kind: 'tcp', family, addr, port: 80 } as const;
    e.table.addService({ id, sched: 'rr', flags: 0, timeout: 0, netmask: family === 4 ? 0xffffffff : 128 });
    e.table.addDest(id, { addr: rip, port: 80, fwd: 'route', weight: 1, uThreshold: 0, lThreshold: 0 });
  }
  f.setOwnAddrs(['10.0.0.2', '127.0.0.1', '2001:db8::2', 'fe80::1%eth0']);
  f.plan();
  return { e, f, verdicts };
}

let nextId = 1;
function qp(payload: Uint8Array, indev = 2, mark = DIVERT_MARK): QueuedPacket {
  return { id: nextId++, hwProtocol: 0, hook: 0, mark, indev, outdev: 0, payload };
}

function syn(src: string, dst = src.includes(':') ? VIP6 : VIP, sport = 40000): Uint8Array {
  return ip({ src, dst, proto: TCP, payload: tcp({ src, dst, sport, dport: 80, flags: 0x02 }) });
}

const MARTIANS = [
  '0.0.0.0',
  '0.1.2.3',
  '127.0.0.1',
  '127.9.9.9',
  '224.0.0.1',
  '239.255.255.250',
  '255.255.255.255',
  VIP,
  '10.0.0.2',
  '::',
  '::1',
  'ff02::1',
  VIP6,
  '2001:db8::2',
];

test('martian and own-address sources are dropped and counted before scheduling; no entry is made', (t) => {
  const { e, f, verdicts } = setup();
  for (const src of MARTIANS) {
    f.handle(qp(syn(src)));
    t.like(verdicts.at(-1), { v: NF_DROP }, src);
  }
  t.is(f.counters.bad.martian, MARTIANS.length);
  t.is(e.stats().size, 0);
  // ordinary clients of both families are scheduled
  f.handle(qp(syn('198.51.100.7')));
  t.like(verdicts.at(-1), { v: NF_ACCEPT });
  f.handle(qp(syn('2001:db8:5::7')));
  t.like(verdicts.at(-1), { v: NF_ACCEPT });
  t.is(e.stats().size, 2);
  t.is(f.counters.bad.martian, MARTIANS.length);
});

test("the director's own traffic to a VIP (in on lo) is not a martian", (t) => {
  const { e, f, verdicts } = setup();
  f.handle(qp(syn('10.0.0.2'), 1));
  t.like(verdicts.at(-1), { v: NF_ACCEPT });
  t.is(f.counters.bad.martian, undefined);
  t.is(e.stats().size, 1);
});

function natSetup(family: 4 | 6) {
  const e = new Engine({ clock: new ManualClock(1000) });
  const verdicts: { id: number; v: number; mark?: number; payload?: Uint8Array }[] = [];
  const f = new Forwarder(e, {
    verdict: (id, v, mark, payload) => verdicts.push({ id, v, mark, payload: payload?.slice() }),
    sendRaw: () => true,
  });
  const vip = family === 4 ? VIP : VIP6;
  const rip = family === 4 ? '10.0.0.12' : '2001:db8::12';
  const id = { kind: 'udp', family, addr: vip, port: 53 } as const;
  e.table.addService({ id, sched: 'rr', flags: 0, timeout: 0, netmask: family === 4 ? 0xffffffff : 128 });
  e.table.addDest(id, { addr: rip, port: 5353, fwd: 'masq', weight: 1, uThreshold: 0, lThreshold: 0 });
  return { e, f, verdicts, vip, rip };
}

for (const family of [4, 6] as const) {
  test(`IPv${family} NAT: an ICMP error from the real server's side reaches the client as from the VIP, both layers rewritten`, (t) => {
    const { f, verdicts, vip, rip } = natSetup(family);
    const cip = family === 4 ? '198.51.100.7' : '2001:db8:5::7';
    const router = family === 4 ? '10.0.0.254' : '2001:db8::fe';
    f.handle(qp(ip({ src: cip, dst: vip, proto: UDP, payload: udp({ src: cip, dst: vip, sport: 4000, dport: 53 }) })));
    // what the director sent on: CIP:4000 → RIP:5353; a router past the director says it cannot be delivered
    const sent = ip({ src: cip, dst: rip, proto: UDP, payload: udp({ src: cip, dst: rip, sport: 4000, dport: 5353 }) });
    const err = icmpError({
      src: router,
      dst: cip,
      type: family === 4 ? 3 : 1,
      code: family === 4 ? 1 : 3,
      quoted: sent,
    });
    f.handle(qp(err, 2, REPLY_MARK));
    const v = verdicts.at(-1);
    t.like(v, { v: NF_ACCEPT, mark: 0 });
    const out = v?.payload;
    if (!out) return t.fail();
    const p = parsePacket(out);
    if (!p.ok || !('icmp' in p)) return t.fail();
    t.like(p.icmp.outer, { saddr: vip, daddr: cip });
    t.like(p.icmp.inner, { saddr: cip, sport: 4000, daddr: vip, dport: 53 });
    t.true(checksumsOk(out), 'outer header and ICMP checksums');
    if (family === 4) t.true(ipv4HeaderOk(out, p.icmp.innerOff), 'quoted header checksum');
    t.is(f.counters.forwarded.reply, 1);
  });

  test(`IPv${family} NAT: a frag-needed / packet-too-big from the client side reaches the real server rewritten, MTU kept`, (t) => {
    const { f, verdicts, vip, rip } = natSetup(family);
    const cip = family === 4 ? '198.51.100.7' : '2001:db8:5::7';
    f.handle(qp(ip({ src: cip, dst: vip, proto: UDP, payload: udp({ src: cip, dst: vip, sport: 4000, dport: 53 }) })));
    const reply = ip({ src: vip, dst: cip, proto: UDP, payload: udp({ src: vip, dst: cip, sport: 53, dport: 4000 }) });
    const err = icmpError({
      src: cip,
      dst: vip,
      type: family === 4 ? 3 : 2,
      code: family === 4 ? 4 : 0,
      quoted: reply,
      mtu: 1200,
    });
    f.handle(qp(err));
    const out = verdicts.at(-1)?.payload;
    if (!out) return t.fail();
    const p = parsePacket(out);
    if (!p.ok || !('icmp' in p)) return t.fail();
    t.like(p.icmp.outer, { saddr: cip, daddr: rip });
    t.like(p.icmp.inner, { saddr: rip, sport: 5353, daddr: cip, dport: 4000 });
    t.true(checksumsOk(out));
    const mtuAt = p.icmp.icmpOff + (family === 4 ? 6 : 4);
    t.is(family === 4 ? (out[mtuAt] << 8) | out[mtuAt + 1] : (out[mtuAt + 2] << 8) | out[mtuAt + 3], 1200);
  });
}

test('an ICMP error quoting no known flow passes untouched and creates nothing', (t) => {
  const { e, f, verdicts, vip } = natSetup(4);
  const reply = ip({
    src: vip,
    dst: '198.51.100.9',
    proto: UDP,
    payload: udp({ src: vip, dst: '198.51.100.9', sport: 53, dport: 1 }),
  });
  f.handle(qp(icmpError({ src: '198.51.100.9', dst: vip, type: 3, code: 3, quoted: reply })));
  t.like(verdicts.at(-1), { v: NF_ACCEPT, payload: undefined });
  t.is(f.counters.bad['icmp-no-conn'], 1);
  t.is(e.stats().size, 0);
});

test('guard rules: VIP traffic untracked with a conntrack match (defrag hooks), ICMP errors queued both ways', (t) => {
  const plan = emptyPlan(3);
  plan.services.push({ kind: 'udp', family: 4, addr: '10.0.0.100', port: 53, fwmark: 0 });
  plan.services.push({ kind: 'fwm', family: 4, addr: '0.0.0.0', port: 0, fwmark: 9 });
  plan.matches = [{ family: 4, addr: '10.0.0.101', protocol: 'tcp', port: 80, mark: 9 }];
  plan.natSources.push({ family: 4, protocol: 'udp', addr: '10.0.0.12', port: 5353 });
  const rules = renderGuards(plan, 4)
    .split('\n')
    .filter((l) => l.startsWith('-A') || l.startsWith('*'));
  t.deepEqual(rules.slice(0, 5), [
    '*raw',
    '-A TIERLB_RAW -d 10.0.0.100/32 -j CT --notrack',
    '-A TIERLB_RAW -d 10.0.0.101/32 -j CT --notrack',
    '-A TIERLB_RAW -s 10.0.0.12/32 -j CT --notrack',
    '-A TIERLB_RAW -m conntrack --ctstate UNTRACKED',
  ]);
  t.true(
    rules.includes(
      '-A TIERLB_RAW -d 10.0.0.100/32 -p icmp -m icmp --icmp-type 3 -j MARK --set-xmark 0x544c0001/0xffffffff',
    ),
  );
  t.true(
    rules.includes(
      '-A TIERLB_RAW -d 10.0.0.101/32 -p icmp -m icmp --icmp-type 11 -j MARK --set-xmark 0x544c0001/0xffffffff',
    ),
  );
  t.true(rules.includes('-A TIERLB_RAW -m mark --mark 0x544c0001 -j NFQUEUE --queue-num 3'));
  t.true(
    rules.includes(
      '-A TIERLB_RAW -p icmp -m icmp --icmp-type 3 -m addrtype ! --dst-type LOCAL -j MARK --set-xmark 0x544c0002/0xffffffff',
    ),
  );
  t.true(rules.includes('-A TIERLB_RAW -m mark --mark 0x544c0002 -j NFQUEUE --queue-num 3'));
  t.false(
    rules.some((l) => l.includes('--icmp-type 5')),
    'redirects are not IPVS business',
  );
  // nothing for a family without services
  t.deepEqual(
    renderGuards(plan, 6)
      .split('\n')
      .filter((l) => l.startsWith('-A')),
    [],
  );
  t.true(
    renderGuards(
      { ...plan, services: [{ kind: 'tcp', family: 6, addr: '2001:db8::1', port: 80, fwmark: 0 }] },
      6,
    ).includes('-A TIERLB_RAW -d 2001:db8::1/128 -p ipv6-icmp -m icmp6 --icmpv6-type 2 -j MARK'),
  );
});

test('TUN: a reassembled datagram too big for one IPIP packet leaves as IPv4 fragments of the encapsulation', (t) => {
  const e = new Engine({ clock: new ManualClock(1000) });
  const raw: Uint8Array[] = [];
  const f = new Forwarder(e, { verdict: () => {}, sendRaw: (p) => raw.push(p.slice()) > 0 });
  const id = { kind: 'udp', family: 4, addr: VIP, port: 9000 } as const;
  e.table.addService({ id, sched: 'rr', flags: 0, timeout: 0, netmask: 0xffffffff });
  e.table.addDest(id, { addr: '10.0.0.13', port: 9000, fwd: 'tunnel', weight: 1, uThreshold: 0, lThreshold: 0 });
  const src = '198.51.100.7';
  const dg = ip({
    src,
    dst: VIP,
    proto: UDP,
    payload: udp({ src, dst: VIP, sport: 4000, dport: 9000, data: new Uint8Array(8000).fill(7) }),
  });
  f.handle(qp(dg));
  t.true(raw.length >= 6, String(raw.length));
  t.true(raw.every((p) => p.length <= 1500 && ipv4HeaderOk(p) && p[9] === 4));
  // the fragments put back together are the IPIP packet: outer header + the datagram unchanged
  const offs = raw.map((p) => (((p[6] << 8) | p[7]) & 0x1fff) * 8);
  const body = new Uint8Array(offs.at(-1)! + raw.at(-1)!.length - 20);
  for (const [i, p] of raw.entries()) body.set(p.subarray(20), offs[i]);
  t.deepEqual(body, dg);
  t.deepEqual(
    raw.map((p) => p[6] & 0x20),
    [...raw.slice(1).map(() => 0x20), 0],
  );
  t.is(f.counters.forwarded.tunnel, 1);
  // with DF from the client it is not fragmented: counted and dropped (the client's PMTU discovery must shrink it)
  const df = ip({
    src,
    dst: VIP,
    proto: UDP,
    df: true,
    payload: udp({ src, dst: VIP, sport: 4001, dport: 9000, data: new Uint8Array(1490) }),
  });
  f.handle(qp(df));
  t.is(f.counters.bad['tunnel-too-big'], 1);
});
