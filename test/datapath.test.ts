import test from 'ava';
import { ManualClock } from '../src/common/clock.js';
import { emptyPlan, REPLY_MARK, renderChain } from '../src/fwmark/plan.js';
import { TH_ACK, TH_SYN } from '../src/l4/conn/tcp.js';
import {
  addrBytes,
  csumUpdate16,
  ipipEncap,
  ipv4HeaderChecksum,
  ipv4HeaderOk,
  l4Checksum,
  natRewrite,
} from '../src/l4/datapath/csum.js';
import { Forwarder } from '../src/l4/datapath/forward.js';
import { cfgCmd, NF_ACCEPT, NF_DROP, parseMessages, putVerdict, type QueuedPacket } from '../src/l4/datapath/nfqmsg.js';
import { type Parsed, parsePacket } from '../src/l4/datapath/packet.js';
import { Engine } from '../src/l4/engine.js';

const ip4 = (s: string) => s.split('.').map(Number);

/** A valid IPv4 TCP or UDP packet with correct checksums. */
function mkPacket(o: {
  proto?: 6 | 17;
  src?: string;
  dst?: string;
  sport?: number;
  dport?: number;
  flags?: number;
  payload?: number[];
}): Uint8Array {
  const proto = o.proto ?? 6;
  const l4 = proto === 6 ? 20 : 8;
  const data = o.payload ?? [1, 2, 3, 4, 5];
  const b = new Uint8Array(20 + l4 + data.length);
  b[0] = 0x45;
  b[2] = b.length >> 8;
  b[3] = b.length & 0xff;
  b[4] = 0x12;
  b[6] = 0x40;
  b[8] = 64;
  b[9] = proto;
  b.set(ip4(o.src ?? '10.0.0.10'), 12);
  b.set(ip4(o.dst ?? '10.0.0.100'), 16);
  const sp = o.sport ?? 40000;
  const dp = o.dport ?? 80;
  b[20] = sp >> 8;
  b[21] = sp & 0xff;
  b[22] = dp >> 8;
  b[23] = dp & 0xff;
  if (proto === 6) {
    b[32] = 0x50;
    b[33] = o.flags ?? TH_SYN;
    b[34] = 0xff;
  } else {
    b[24] = (8 + data.length) >> 8;
    b[25] = (8 + data.length) & 0xff;
  }
  b.set(data, 20 + l4);
  const c = ipv4HeaderChecksum(b, 0, 20);
  b[10] = c >> 8;
  b[11] = c & 0xff;
  const p = (parsePacket(b) as { pkt: Parsed }).pkt;
  const co = proto === 6 ? 36 : 26;
  const l = l4Checksum(b, p);
  b[co] = l >> 8;
  b[co + 1] = l & 0xff;
  return b;
}

const parsed = (b: Uint8Array) => {
  const r = parsePacket(b);
  if (!r.ok || !('pkt' in r)) throw new Error('not parsed');
  return r.pkt;
};

test('parse IPv4 TCP: addresses, ports, flags, length', (t) => {
  const p = parsed(mkPacket({ flags: TH_SYN | TH_ACK }));
  t.like(p, {
    family: 4,
    protocol: 6,
    saddr: '10.0.0.10',
    sport: 40000,
    daddr: '10.0.0.100',
    dport: 80,
    tcpFlags: 0x12,
  });
  t.is(p.length, 45);
});

test('parse IPv6 UDP with a hop-by-hop header', (t) => {
  const b = new Uint8Array(40 + 8 + 8 + 2);
  b[0] = 0x60;
  b[5] = 18;
  b[6] = 0; // hop-by-hop
  b[7] = 64;
  b[23] = 1; // ::1
  b.set([0x20, 0x01, 0x0d, 0xb8], 24);
  b[39] = 0x64;
  b[40] = 17; // next: udp
  b[41] = 0;
  b.set([0x13, 0x88, 0x00, 0x35, 0x00, 0x0a], 48);
  const p = parsed(b);
  t.like(p, { family: 6, protocol: 17, saddr: '::1', daddr: '2001:db8::64', sport: 5000, dport: 53, l4off: 48 });
});

test('bad packets come back with a reason, never throw', (t) => {
  const good = mkPacket({});
  const cases: [Uint8Array, string][] = [
    [new Uint8Array(0), 'truncated'],
    [good.slice(0, 10), 'truncated'],
    [Uint8Array.from(good, (v, i) => (i === 0 ? 0x55 : v)), 'bad-version'],
    [Uint8Array.from(good, (v, i) => (i === 0 ? 0x43 : v)), 'bad-ihl'],
    [Uint8Array.from(good, (v, i) => (i === 3 ? 10 : v)), 'bad-length'],
    [good.slice(0, 30), 'truncated'],
    [Uint8Array.from(good, (v, i) => (i === 6 ? 0x20 : v)), 'fragment'],
    [Uint8Array.from(good, (v, i) => (i === 32 ? 0x20 : v)), 'bad-l4-header'],
    [Uint8Array.from(good, (v, i) => (i === 9 ? 47 : v)), 'unknown-protocol'],
  ];
  for (const [b, reason] of cases) {
    const r = parsePacket(b);
    t.false(r.ok, reason);
    if (!r.ok) t.is(r.reason as string, reason);
  }
  // random garbage never throws
  for (let i = 0; i < 2000; i++) {
    const b = Uint8Array.from({ length: (i * 7) % 90 }, () => Math.floor(Math.random() * 256));
    if (i % 2) b[0] = 0x45;
    t.notThrows(() => parsePacket(b));
  }
});

/** An ICMP error (type 3 code 4, frag needed) from `src` to `dst` carrying the first 28 bytes of `inner`. */
function mkIcmpError(inner: Uint8Array, src = '10.0.0.10', dst = '10.0.0.100'): Uint8Array {
  const b = new Uint8Array(20 + 8 + 28);
  b[0] = 0x45;
  b[3] = b.length;
  b[8] = 64;
  b[9] = 1;
  b.set(ip4(src), 12);
  b.set(ip4(dst), 16);
  b[20] = 3;
  b[21] = 4;
  b.set(inner.subarray(0, 28), 28);
  return b;
}

test('ICMP errors expose the embedded flow; echo is not an error', (t) => {
  const inner = mkPacket({ src: '10.0.0.100', dst: '10.0.0.10', sport: 80, dport: 40000, flags: TH_ACK });
  const b = mkIcmpError(inner);
  const r = parsePacket(b);
  t.true(r.ok && 'icmp' in r);
  if (r.ok && 'icmp' in r) t.like(r.icmp.inner, { saddr: '10.0.0.100', sport: 80, daddr: '10.0.0.10', dport: 40000 });
  b[20] = 8;
  const e = parsePacket(b);
  t.false(e.ok);
  if (!e.ok) t.is(e.reason, 'icmp-not-error');
});

test('RFC 1624 incremental update equals full recomputation', (t) => {
  for (let i = 0; i < 500; i++) {
    const words = Array.from({ length: 10 }, () => Math.floor(Math.random() * 0x10000));
    const sum = (w: number[]) => {
      let a = 0;
      for (const x of w) a += x;
      while (a > 0xffff) a = (a & 0xffff) + (a >>> 16);
      return ~a & 0xffff;
    };
    const hc = sum(words);
    const k = i % 10;
    const m2 = Math.floor(Math.random() * 0x10000);
    const next = words.slice();
    next[k] = m2;
    const full = sum(next);
    const inc = csumUpdate16(hc, words[k], m2);
    // 0x0000 and 0xffff are the same value in one's complement
    t.true(inc === full || (inc ^ full) === 0xffff, `${inc} vs ${full}`);
  }
});

test('NAT rewrite keeps IP, TCP and UDP checksums valid (dst and src, port mapping)', (t) => {
  for (const proto of [6, 17] as const) {
    for (let i = 0; i < 200; i++) {
      const payload = Array.from({ length: i % 37 }, () => Math.floor(Math.random() * 256));
      const b = mkPacket({ proto, payload, sport: 1024 + i * 97, src: `10.${i % 256}.3.${(i * 7) % 256}` });
      const p = parsed(b);
      natRewrite(b, p, 'dst', addrBytes(`192.168.${i % 256}.${(i * 13) % 256}`), 8080 + i);
      t.true(ipv4HeaderOk(b), 'ip header');
      const q = parsed(b);
      t.is(q.daddr, `192.168.${i % 256}.${(i * 13) % 256}`);
      t.is(q.dport, 8080 + i);
      const co = proto === 6 ? 36 : 26;
      const have = (b[co] << 8) | b[co + 1];
      t.is(have, l4Checksum(b, q));
      natRewrite(b, q, 'src', addrBytes('10.77.1.100'), 80);
      t.true(ipv4HeaderOk(b));
      const r = parsed(b);
      t.is(r.saddr, '10.77.1.100');
      t.is((b[co] << 8) | b[co + 1], l4Checksum(b, r));
    }
  }
});

test('IPIP encapsulation: outer header protocol 4, valid checksum, inner intact', (t) => {
  const inner = mkPacket({});
  const out = ipipEncap(inner, addrBytes('10.77.1.11'), addrBytes('10.77.1.2'));
  t.is(out[9], 4);
  t.is(out.length, inner.length + 20);
  t.true(ipv4HeaderOk(out));
  t.deepEqual([...out.subarray(16, 20)], [10, 77, 1, 11]);
  t.deepEqual(out.subarray(20), inner);
});

test('nfqueue messages: config and verdict encoding, packet parsing', (t) => {
  const c = cfgCmd(7, 1, 42);
  const dv = new DataView(c.buffer);
  t.is(dv.getUint32(0, true), c.length);
  t.is(dv.getUint16(4, true), (3 << 8) | 2);
  t.is(dv.getUint16(18, false), 7);
  const buf = new Uint8Array(256);
  const end = putVerdict(buf, 0, 3, 0x01020304, NF_ACCEPT, 0x544c0100, new Uint8Array([1, 2, 3]));
  t.is(end, 20 + 12 + 8 + 8);
  const v = new DataView(buf.buffer);
  t.is(v.getUint32(24, false), NF_ACCEPT);
  t.is(v.getUint32(28, false), 0x01020304);
  t.is(v.getUint32(36, false), 0x544c0100);
  // a packet message as the kernel sends it
  const pl = mkPacket({});
  const m = new Uint8Array(20 + 12 + 8 + 4 + pl.length + 4);
  const mv = new DataView(m.buffer);
  let o = 20;
  mv.setUint16(o, 11, true);
  mv.setUint16(o + 2, 1, true);
  mv.setUint32(o + 4, 99, false);
  mv.setUint16(o + 8, 0x0800, false);
  o += 12;
  mv.setUint16(o, 8, true);
  mv.setUint16(o + 2, 3, true);
  mv.setUint32(o + 4, 0x2710, false);
  o += 8;
  mv.setUint16(o, 4 + pl.length, true);
  mv.setUint16(o + 2, 10, true);
  m.set(pl, o + 4);
  o += (4 + pl.length + 3) & ~3;
  mv.setUint32(0, o, true);
  mv.setUint16(4, 3 << 8, true);
  const [msg] = parseMessages(m, o);
  t.is(msg.kind, 'packet');
  if (msg.kind === 'packet') {
    t.is(msg.pkt.id, 99);
    t.is(msg.pkt.mark, 0x2710);
    t.is(msg.pkt.hwProtocol, 0x0800);
    t.deepEqual(msg.pkt.payload, pl);
  }
});

test('rendered chain: fwmark queue rules first, divert marks, NAT reply sources, no bypass', (t) => {
  const plan = emptyPlan(2);
  plan.services.push({ kind: 'tcp', family: 4, addr: '10.0.0.100', port: 80, fwmark: 0 });
  plan.services.push({ kind: 'fwm', family: 4, addr: '0.0.0.0', port: 0, fwmark: 1 });
  plan.natSources.push({ family: 4, protocol: 'tcp', addr: '10.0.0.11', port: 8080 });
  const text = renderChain(plan, 4);
  t.snapshot(text);
  t.false(text.includes('bypass'));
  t.true(text.indexOf('--mark 0x1 ') < text.indexOf('-d 10.0.0.100/32'));
  t.true(text.includes(`--mark 0x${REPLY_MARK.toString(16)} -j NFQUEUE --queue-num 2`));
  t.is(
    renderChain(plan, 6)
      .split('\n')
      .filter((l) => l.startsWith('-A')).length,
    0,
  );
});

function forwarderFor(engine: Engine) {
  const verdicts: { id: number; v: number; mark?: number; payload?: Uint8Array }[] = [];
  const raw: Uint8Array[] = [];
  const f = new Forwarder(engine, {
    verdict: (id, v, mark, payload) => verdicts.push({ id, v, mark, payload: payload?.slice() }),
    sendRaw: (p) => {
      raw.push(p.slice());
      return true;
    },
  });
  return { f, verdicts, raw };
}

const qp = (id: number, payload: Uint8Array, mark = 0x544c0001): QueuedPacket => ({
  id,
  hwProtocol: 0x0800,
  hook: 0,
  mark,
  indev: 2,
  outdev: 0,
  payload,
});

test('forwarder (Engine): DR marks, NAT rewrite and reply, TUN encapsulation, bad packets counted', (t) => {
  const e = new Engine({ clock: new ManualClock(1000) });
  const { f, verdicts, raw } = forwarderFor(e);
  const svc = { kind: 'tcp', family: 4, addr: '10.0.0.100', port: 80 } as const;
  e.table.addService({ id: svc, sched: 'rr', flags: 0, timeout: 0, netmask: 0xffffffff });
  e.table.addDest(svc, { addr: '10.0.0.11', port: 80, fwd: 'route', weight: 1, uThreshold: 0, lThreshold: 0 });
  f.handle(qp(1, mkPacket({})));
  t.like(verdicts.at(-1), { id: 1, v: NF_ACCEPT, mark: 0x544c0100 });
  // same flow keeps its server, a later packet of it follows
  f.handle(qp(2, mkPacket({ flags: TH_ACK })));
  t.like(verdicts.at(-1), { id: 2, v: NF_ACCEPT, mark: 0x544c0100 });
  t.deepEqual(f.plan().routes, [{ family: 4, rip: '10.0.0.11', mark: 0x544c0100, table: 31000 }]);

  const nat = { kind: 'tcp', family: 4, addr: '10.0.0.100', port: 81 } as const;
  e.table.addService({ id: nat, sched: 'rr', flags: 0, timeout: 0, netmask: 0xffffffff });
  e.table.addDest(nat, { addr: '10.0.0.12', port: 8080, fwd: 'masq', weight: 1, uThreshold: 0, lThreshold: 0 });
  f.handle(qp(3, mkPacket({ dport: 81 })));
  const v = verdicts.at(-1)!;
  t.like(v, { id: 3, v: NF_ACCEPT, mark: 0 });
  const np = parsed(v.payload!);
  t.like(np, { daddr: '10.0.0.12', dport: 8080, saddr: '10.0.0.10' });
  t.is((v.payload![36] << 8) | v.payload![37], l4Checksum(v.payload!, np));
  t.deepEqual(f.plan().natSources, [{ family: 4, protocol: 'tcp', addr: '10.0.0.12', port: 8080 }]);
  f.handle(qp(4, mkPacket({ src: '10.0.0.12', sport: 8080, dst: '10.0.0.10', dport: 40000, flags: 0x12 }), REPLY_MARK));
  const rp = parsed(verdicts.at(-1)!.payload!);
  t.like(rp, { saddr: '10.0.0.100', sport: 81, daddr: '10.0.0.10', dport: 40000 });

  const tun = { kind: 'udp', family: 4, addr: '10.0.0.100', port: 53 } as const;
  e.table.addService({ id: tun, sched: 'rr', flags: 0, timeout: 0, netmask: 0xffffffff });
  e.table.addDest(tun, { addr: '10.0.0.13', port: 53, fwd: 'tunnel', weight: 1, uThreshold: 0, lThreshold: 0 });
  f.handle(qp(5, mkPacket({ proto: 17, dport: 53 })));
  t.like(verdicts.at(-1), { id: 5, v: NF_DROP });
  t.is(raw.length, 1);
  t.is(raw[0][9], 4);

  f.handle(qp(6, new Uint8Array([0x45, 0, 0])));
  f.handle(
    qp(
      7,
      Uint8Array.from(mkPacket({}), (x, i) => (i === 6 ? 0x20 : x)),
    ),
  );
  t.like(verdicts.at(-1), { id: 7, v: NF_DROP });
  t.is(f.counters.bad.truncated, 1);
  t.is(f.counters.bad.fragment, 1);
  t.is(verdicts.length, 7);
});

test('forwarder: an ICMP error about an unknown flow passes and creates no connection; about a known one it follows it', (t) => {
  // sloppy_tcp: even a non-SYN may open a connection, so only a pure lookup keeps the table empty
  const e = new Engine({ clock: new ManualClock(1000), sysctl: { sloppy_tcp: 1 } });
  const { f, verdicts } = forwarderFor(e);
  const dr = { kind: 'tcp', family: 4, addr: '10.0.0.100', port: 80 } as const;
  e.table.addService({ id: dr, sched: 'rr', flags: 0, timeout: 0, netmask: 0xffffffff });
  e.table.addDest(dr, { addr: '10.0.0.11', port: 80, fwd: 'route', weight: 1, uThreshold: 0, lThreshold: 0 });
  const toClient = (sport: number, dport: number) =>
    mkIcmpError(mkPacket({ src: '10.0.0.100', dst: '10.0.0.10', sport, dport, flags: TH_ACK }));

  f.handle(qp(1, toClient(80, 40000)));
  t.like(verdicts.at(-1), { id: 1, v: NF_ACCEPT, mark: 0 });
  t.is(f.counters.bad['icmp-no-conn'], 1);
  t.is(e.conns.size, 0);

  f.handle(qp(2, mkPacket({})));
  t.like(verdicts.at(-1), { id: 2, v: NF_ACCEPT, mark: 0x544c0100 });
  f.handle(qp(3, toClient(80, 40000)));
  t.like(verdicts.at(-1), { id: 3, v: NF_ACCEPT, mark: 0x544c0100 });
  t.is(f.counters.forwarded.route, 2);
  t.is(e.conns.size, 1);

  // NAT: the error goes to the real server, its embedded source rewritten to RIP:rport
  const nat = { kind: 'tcp', family: 4, addr: '10.0.0.100', port: 81 } as const;
  e.table.addService({ id: nat, sched: 'rr', flags: 0, timeout: 0, netmask: 0xffffffff });
  e.table.addDest(nat, { addr: '10.0.0.12', port: 8080, fwd: 'masq', weight: 1, uThreshold: 0, lThreshold: 0 });
  f.handle(qp(4, mkPacket({ dport: 81, sport: 40001 })));
  f.handle(qp(5, toClient(81, 40001)));
  const v = verdicts.at(-1)!;
  t.like(v, { id: 5, v: NF_ACCEPT, mark: 0 });
  const r = parsePacket(v.payload!);
  if (!r.ok || !('icmp' in r)) return t.fail();
  t.like(r.icmp.outer, { daddr: '10.0.0.12' });
  t.like(r.icmp.inner, { saddr: '10.0.0.12', sport: 8080, daddr: '10.0.0.10', dport: 40001 });
  // the ICMP checksum (over the rewritten embedded packet) and the embedded IPv4 header checksum are valid
  const out = v.payload!;
  t.is((out[r.icmp.icmpOff + 2] << 8) | out[r.icmp.icmpOff + 3], l4Checksum(out, r.icmp.outer));
  t.true(ipv4HeaderOk(out, r.icmp.innerOff));
  t.is(f.counters.bad['icmp-no-conn'], 1);
  t.is(e.conns.size, 2);
});
