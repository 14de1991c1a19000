import test from 'ava';
import type { Connection } from '../src/l4/conn/conn.js';
import { ACK, addService, checkInvariants, pkt, reply, SYN, seeded, setup } from './engine-fixture.js';

const ip = (n: number) => `100.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;

test('SYN flood: the table stays bounded, established connections survive, new clients still get in', (t) => {
  const { eng, clock } = setup({ maxConns: 2000 });
  const { dests } = addService(eng, { dests: ['192.168.1.1', '192.168.1.2', '192.168.1.3'] });
  const established: Connection[] = [];
  for (let i = 0; i < 500; i++) {
    const v = eng.process(pkt({ saddr: '172.16.0.1', sport: 1000 + i, tcpFlags: SYN }));
    eng.process(pkt({ saddr: '172.16.0.1', sport: 1000 + i, tcpFlags: ACK }));
    if (v.kind === 'forward') established.push(v.conn);
  }
  t.is(established.length, 500);
  const rnd = seeded(7);
  let maxSize = 0;
  let legit = 0;
  // 5000 spoofed SYNs a second for 30 s, the established clients keep talking, a real client arrives every second
  for (let step = 0; step < 300; step++) {
    clock.advance(100);
    for (let i = 0; i < 500; i++) {
      eng.process(pkt({ saddr: ip(Math.floor(rnd() * 1e7)), sport: 1 + Math.floor(rnd() * 60000), tcpFlags: SYN }));
      maxSize = Math.max(maxSize, eng.stats().size);
    }
    if (step % 10 === 0) {
      for (let i = 0; i < 500; i++) eng.process(pkt({ saddr: '172.16.0.1', sport: 1000 + i, tcpFlags: ACK }));
      const p = pkt({ saddr: '172.16.9.9', sport: 20000 + step, tcpFlags: SYN });
      if (eng.process(p).kind === 'forward' && eng.process({ ...p, tcpFlags: ACK }).kind === 'forward') legit++;
    }
    eng.tick();
  }
  t.true(maxSize <= 2000, `max size ${maxSize}`);
  t.true(established.every((c) => c.live && c.stateName === 'ESTABLISHED'));
  t.is(legit, 30);
  t.true(eng.stats().defenseDropped > 100_000);
  checkInvariants(t, eng, dests);
});

test('a table full of established connections refuses new ones (table-full), counted', (t) => {
  const { eng } = setup({ maxConns: 10 });
  addService(eng);
  for (let i = 0; i < 10; i++) {
    eng.process(pkt({ sport: i + 1, tcpFlags: SYN }));
    eng.process(pkt({ sport: i + 1, tcpFlags: ACK }));
  }
  t.deepEqual(eng.process(pkt({ sport: 99, tcpFlags: SYN })), { kind: 'drop', reason: 'table-full' });
  t.is(eng.stats().drops['table-full'], 1);
  t.is(eng.stats().size, 10);
});

test('drop_entry=1: switches to 2 when entries run short and drops half-open ones each second', (t) => {
  const { eng, clock } = setup({ maxConns: 1000, sysctl: { drop_entry: 1, amemthresh: 100 } });
  addService(eng);
  for (let i = 0; i < 950; i++) eng.process(pkt({ saddr: ip(i), tcpFlags: SYN }));
  clock.advance(1000);
  eng.tick();
  t.is(eng.sysctl.drop_entry, 2);
  const after1 = eng.stats().size;
  t.true(after1 < 950 && after1 >= 950 - (950 >> 5), `${after1}`);
  for (let s = 0; s < 60; s++) {
    clock.advance(1000);
    eng.tick();
  }
  t.is(eng.sysctl.drop_entry, 1);
});

test('drop_packet=3: one in am_droprate new connections is dropped', (t) => {
  const { eng } = setup({ sysctl: { drop_packet: 3, am_droprate: 10 } });
  addService(eng);
  let dropped = 0;
  for (let i = 0; i < 100; i++) if (eng.process(pkt({ sport: i + 1, tcpFlags: SYN })).kind === 'drop') dropped++;
  t.is(dropped, 10);
  t.is(eng.stats().drops['drop-packet'], 10);
  // packets of existing connections are never dropped by it
  for (let i = 0; i < 100; i++) eng.process(pkt({ sport: 50, tcpFlags: ACK }));
  t.is(eng.stats().drops['drop-packet'], 10);
});

test('secure_tcp=3: NAT connections are established only once the server answers', (t) => {
  const { eng } = setup({ sysctl: { secure_tcp: 3 } });
  t.true(eng.secureTcpActive);
  const { dests } = addService(eng, { fwd: 'masq', dests: ['192.168.1.1'] });
  const p = pkt();
  const v = eng.process({ ...p, tcpFlags: SYN });
  if (v.kind !== 'forward') return t.fail();
  eng.process({ ...p, tcpFlags: ACK });
  t.is(v.conn.stateName, 'SYN_RECV');
  eng.processReply(reply(p, dests[0], { tcpFlags: SYN | ACK }));
  t.is(v.conn.stateName, 'SYNACK');
  eng.processReply(reply(p, dests[0], { tcpFlags: ACK }));
  t.is(v.conn.stateName, 'ESTABLISHED');
});

test('secure_tcp=1: the secure table is used only while entries are short', (t) => {
  const { eng, clock } = setup({ maxConns: 100, sysctl: { secure_tcp: 1, amemthresh: 10 } });
  addService(eng);
  t.false(eng.secureTcpActive);
  for (let i = 0; i < 95; i++) eng.process(pkt({ saddr: ip(i), tcpFlags: SYN }));
  clock.advance(1000);
  eng.tick();
  t.true(eng.secureTcpActive);
  t.is(eng.sysctl.secure_tcp, 2);
  eng.flush();
  clock.advance(1000);
  eng.tick();
  t.false(eng.secureTcpActive);
  t.is(eng.sysctl.secure_tcp, 1);
});
