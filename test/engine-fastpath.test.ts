/**
 * The engine driving a kernel fast path (a fake one here): which connections enter the flow map and when they leave,
 * kernel-forwarded packets counted in the stats, an idle flow expiring on time and a kernel-active one not.
 */
import test from 'ava';
import type { Connection } from '../src/l4/conn/conn.js';
import type { RealServer } from '../src/l4/dest.js';
import type { FastPath, KernelFlow } from '../src/l4/engine.js';
import { SVC_F_ONEPACKET } from '../src/l4/service.js';
import { ACK, addService, FIN, PSH, pkt, RST, reply, SYN, setup } from './engine-fixture.js';

class FakeFastPath implements FastPath {
  readonly flows = new Map<Connection, KernelFlow>();
  adds = 0;
  add(cp: Connection, _dest: RealServer): boolean {
    this.adds++;
    this.flows.set(cp, { packets: 0, bytes: 0, replyPackets: 0, replyBytes: 0, lastSeenMs: 0 });
    return true;
  }
  remove(cp: Connection): void {
    this.flows.delete(cp);
  }
  read(cp: Connection): KernelFlow | undefined {
    const f = this.flows.get(cp);
    return f ? { ...f } : undefined;
  }
  /** the kernel forwarded n packets of `bytes` each at `now` */
  forward(cp: Connection, n: number, bytes: number, now: number, dir: 'in' | 'out' = 'in'): void {
    const f = this.flows.get(cp);
    if (!f) throw new Error('not in the kernel');
    if (dir === 'in') {
      f.packets += n;
      f.bytes += n * bytes;
    } else {
      f.replyPackets += n;
      f.replyBytes += n * bytes;
    }
    f.lastSeenMs = now;
  }
}

function established(kind: 'route' | 'masq' = 'route') {
  const s = setup();
  const fp = new FakeFastPath();
  s.eng.setFastPath(fp);
  const { dests, id } = addService(s.eng, { dests: ['192.168.1.1'], fwd: kind });
  const v = s.eng.process(pkt({ tcpFlags: SYN }));
  if (v.kind !== 'forward') throw new Error('not forwarded');
  return { ...s, fp, dest: dests[0], id, cp: v.conn };
}

test('DR TCP: enters the kernel on ESTABLISHED, not before; leaves on FIN through userspace', (t) => {
  const { eng, fp, cp } = established();
  t.is(fp.flows.size, 0, 'SYN_RECV stays in userspace');
  eng.process(pkt({ tcpFlags: ACK }));
  t.is(cp.stateName, 'ESTABLISHED');
  t.true(fp.flows.has(cp));
  t.true(eng.inKernel.has(cp));
  eng.process(pkt({ tcpFlags: ACK | PSH, length: 1000 }));
  t.is(fp.adds, 1, 'added once');
  eng.process(pkt({ tcpFlags: FIN | ACK }));
  t.is(cp.stateName, 'FIN_WAIT');
  t.false(fp.flows.has(cp));
  t.is(eng.inKernel.size, 0);
});

test('RST takes the flow out of the kernel', (t) => {
  const { eng, fp, cp } = established();
  eng.process(pkt({ tcpFlags: ACK }));
  t.true(fp.flows.has(cp));
  eng.process(pkt({ tcpFlags: RST }));
  t.false(fp.flows.has(cp));
});

test('kernel-forwarded packets and bytes are added to the connection, real server, service and totals', (t) => {
  const { eng, fp, cp, dest, clock } = established();
  eng.process(pkt({ tcpFlags: ACK, length: 52 }));
  const svc = cp.svc;
  const before = { conn: cp.inpkts, dest: dest.stats.inpkts, svc: svc.stats.inpkts, total: eng.totalStats.inpkts };
  const bytesBefore = dest.stats.inbytes;
  fp.forward(cp, 1000, 1500, clock.now());
  eng.tick();
  t.is(cp.inpkts, before.conn + 1000);
  t.is(dest.stats.inpkts, before.dest + 1000);
  t.is(svc.stats.inpkts, before.svc + 1000);
  t.is(eng.totalStats.inpkts, before.total + 1000);
  t.is(dest.stats.inbytes, bytesBefore + 1_500_000);
  // read again: nothing new, nothing counted twice; the sync hook saw the jump once
  const seen: [number, number][] = [];
  eng.onKernelPackets = (c, before) => seen.push([before, c.inpkts]);
  eng.tick();
  t.deepEqual(seen, []);
  fp.forward(cp, 0, 0, clock.now());
  t.is(dest.stats.inpkts, before.dest + 1000);
  // the last counts are read when the flow leaves
  fp.forward(cp, 5, 100, clock.now());
  eng.process(pkt({ tcpFlags: FIN | ACK, length: 52 }));
  t.deepEqual(seen, [[before.conn + 1001, before.conn + 1006]], "the FIN counted first, then the kernel's last 5");
  t.is(dest.stats.inpkts, before.dest + 1000 + 5 + 1);
});

test('an idle kernel flow expires on time; one active only in the kernel does not', (t) => {
  const { eng, fp, cp, clock } = established();
  eng.process(pkt({ tcpFlags: ACK }));
  const idle = eng.process(pkt({ tcpFlags: SYN, sport: 40001 }));
  if (idle.kind !== 'forward') throw new Error('not forwarded');
  eng.process(pkt({ tcpFlags: ACK, sport: 40001 }));
  t.true(fp.flows.has(idle.conn));
  const timeout = cp.timeoutMs; // 900 s ESTABLISHED
  // the first flow keeps sending in the kernel, every 100 s
  for (let i = 0; i < 15; i++) {
    clock.advance(100_000);
    fp.forward(cp, 10, 1000, clock.now());
    eng.tick();
  }
  t.true(clock.now() - 1_000_000 > timeout, 'past the first timeout');
  t.true(cp.live, 'the kernel-active flow is still there');
  t.false(idle.conn.live, 'the idle flow expired');
  t.false(fp.flows.has(idle.conn), 'and left the kernel');
  // now it goes idle: it expires a full timeout after its last kernel packet
  const last = clock.now();
  clock.advance(timeout - 1);
  eng.tick();
  t.true(cp.live);
  clock.set(last + timeout);
  eng.tick();
  t.false(cp.live);
  t.is(fp.flows.size, 0);
});

test('NAT: reply packets forwarded in the kernel count as output', (t) => {
  const { eng, fp, cp, dest, clock } = established('masq');
  const p = pkt({ tcpFlags: ACK });
  eng.processReply(reply(pkt({}), dest, { tcpFlags: SYN | ACK }));
  eng.process(p);
  t.is(cp.stateName, 'ESTABLISHED');
  t.true(fp.flows.has(cp));
  const out = dest.stats.outpkts;
  const outBytes = cp.outbytes;
  fp.forward(cp, 7, 1400, clock.now(), 'out');
  eng.tick();
  t.is(dest.stats.outpkts, out + 7);
  t.is(cp.outbytes, outBytes + 7 * 1400);
});

test('UDP enters at once; one-packet UDP never does', (t) => {
  const s = setup();
  const fp = new FakeFastPath();
  s.eng.setFastPath(fp);
  addService(s.eng, { proto: 'udp', port: 53, dests: ['192.168.1.1'] });
  const v = s.eng.process(pkt({ protocol: 17, dport: 53 }));
  if (v.kind !== 'forward') throw new Error('not forwarded');
  t.true(fp.flows.has(v.conn));
  addService(s.eng, { proto: 'udp', port: 54, dests: ['192.168.1.2'], flags: SVC_F_ONEPACKET });
  s.eng.process(pkt({ protocol: 17, dport: 54 }));
  t.is(fp.flows.size, 1);
});

test('a removed real server takes its flows out of the kernel; -C (flush) too', (t) => {
  const { eng, fp, cp, id, dest } = established();
  eng.process(pkt({ tcpFlags: ACK }));
  t.true(fp.flows.has(cp));
  eng.table.delDest(id, dest.addr, dest.port);
  t.false(fp.flows.has(cp));
  t.is(eng.inKernel.size, 0);

  const s2 = established();
  s2.eng.process(pkt({ tcpFlags: ACK }));
  t.is(s2.fp.flows.size, 1);
  s2.eng.flush();
  t.is(s2.fp.flows.size, 0);
  t.is(s2.eng.inKernel.size, 0);
});

test('TUN enters the kernel on ESTABLISHED (IPIP, IPv6 in IPv6 in the program); across families it stays in userspace', (t) => {
  const s = setup();
  const fp = new FakeFastPath();
  s.eng.setFastPath(fp);
  addService(s.eng, { dests: ['192.168.1.1'], fwd: 'tunnel' });
  s.eng.process(pkt({ tcpFlags: SYN }));
  t.is(fp.flows.size, 0, 'SYN_RECV stays in userspace');
  s.eng.process(pkt({ tcpFlags: ACK }));
  t.is(fp.flows.size, 1);

  const s6 = setup();
  const fp6 = new FakeFastPath();
  s6.eng.setFastPath(fp6);
  addService(s6.eng, {
    id: { kind: 'tcp', family: 6, addr: '2001:db8::1', port: 80 },
    dests: ['2001:db8:1::1'],
    fwd: 'tunnel',
  });
  const six = { family: 6 as const, saddr: '2001:db8:2::1', daddr: '2001:db8::1' };
  t.is(s6.eng.process(pkt({ ...six, tcpFlags: SYN })).kind, 'forward');
  t.is(fp6.flows.size, 0, 'SYN_RECV stays in userspace');
  s6.eng.process(pkt({ ...six, tcpFlags: ACK }));
  t.is(fp6.flows.size, 1);

  // an IPv4 service with an IPv6 tunnel real server (IPv4 in IPv6): userspace only
  const sx = setup();
  const fpx = new FakeFastPath();
  sx.eng.setFastPath(fpx);
  addService(sx.eng, { dests: ['2001:db8:1::1'], fwd: 'tunnel' });
  t.is(sx.eng.process(pkt({ tcpFlags: SYN })).kind, 'forward');
  sx.eng.process(pkt({ tcpFlags: ACK }));
  t.is(fpx.flows.size, 0);
});

test('minPackets: a flow enters at that many incoming packets; a short connect-reset never touches the map', (t) => {
  const s = setup();
  const fp = new FakeFastPath();
  s.eng.setFastPath(fp, { minPackets: 4 });
  addService(s.eng, { dests: ['192.168.1.1'] });
  s.eng.process(pkt({ tcpFlags: SYN, sport: 1000 }));
  s.eng.process(pkt({ tcpFlags: ACK, sport: 1000 }));
  s.eng.process(pkt({ tcpFlags: RST, sport: 1000 }));
  t.is(fp.adds, 0);
  s.eng.process(pkt({ tcpFlags: SYN }));
  s.eng.process(pkt({ tcpFlags: ACK }));
  s.eng.process(pkt({ tcpFlags: ACK | PSH }));
  t.is(fp.adds, 0, 'three packets: not yet');
  s.eng.process(pkt({ tcpFlags: ACK }));
  t.is(fp.adds, 1, 'the fourth');
  t.is(fp.flows.size, 1);
});
