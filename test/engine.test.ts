import test from 'ava';
import { AdmError } from '../src/common/errors.js';
import { SVC_F_ONEPACKET } from '../src/l4/service.js';
import { ACK, addService, checkInvariants, FIN, PSH, pkt, RST, reply, SYN, setup } from './engine-fixture.js';

const counts = (d: { activeConns: number; inactConns: number }) => [d.activeConns, d.inactConns];

test('DR (input-only): ActiveConn/InActConn follow SYN → ESTABLISHED → FIN → expiry', (t) => {
  const { eng, clock } = setup();
  const { dests } = addService(eng, { dests: ['192.168.1.1'] });
  const [d] = dests;
  const v = eng.process(pkt({ tcpFlags: SYN }));
  t.is(v.kind, 'forward');
  if (v.kind !== 'forward') return;
  t.is(v.dest, d);
  t.is(v.conn.fwd, 'route');
  t.true(v.conn.noOutput);
  t.is(v.conn.stateName, 'SYN_RECV');
  t.deepEqual(counts(d), [1, 0]); // pre-established states count as active
  eng.process(pkt({ tcpFlags: ACK }));
  t.is(v.conn.stateName, 'ESTABLISHED');
  t.deepEqual(counts(d), [1, 0]);
  eng.process(pkt({ tcpFlags: ACK | PSH, length: 1000 }));
  eng.process(pkt({ tcpFlags: FIN | ACK }));
  t.is(v.conn.stateName, 'FIN_WAIT');
  t.deepEqual(counts(d), [0, 1]);
  eng.process(pkt({ tcpFlags: ACK }));
  t.is(eng.connections()[0].expiresMs, 120_000);
  clock.advance(119_999);
  eng.tick();
  t.is(eng.stats().size, 1);
  clock.advance(1);
  eng.tick();
  t.is(eng.stats().size, 0);
  t.deepEqual(counts(d), [0, 0]);
  t.is(eng.stats().expired, 1);
});

test('NAT: replies run the output table; counters follow both directions', (t) => {
  const { eng, clock } = setup();
  const { dests } = addService(eng, { fwd: 'masq', port: 80, dests: [{ addr: '192.168.1.1', port: 8080 }] });
  const [d] = dests;
  const p = pkt({ tcpFlags: SYN });
  const v = eng.process(p);
  if (v.kind !== 'forward') return t.fail();
  t.is(v.conn.dport, 8080);
  t.false(v.conn.noOutput);
  const r = (flags: number) => eng.processReply(reply(p, d, { tcpFlags: flags, length: 100 }));
  t.is(r(SYN | ACK).kind, 'forward');
  t.is(v.conn.stateName, 'SYN_RECV');
  eng.process(pkt({ tcpFlags: ACK }));
  t.is(v.conn.stateName, 'ESTABLISHED');
  t.deepEqual(counts(d), [1, 0]);
  eng.process(pkt({ tcpFlags: FIN | ACK }));
  t.is(v.conn.stateName, 'CLOSE_WAIT');
  t.deepEqual(counts(d), [0, 1]);
  r(ACK);
  r(FIN | ACK);
  t.is(v.conn.stateName, 'TIME_WAIT');
  eng.process(pkt({ tcpFlags: ACK }));
  t.is(d.stats.outpkts, 3);
  t.is(d.stats.outbytes, 300);
  t.is(v.conn.outpkts, 3);
  t.is(v.conn.inpkts, 4);
  // a reply that matches no connection is none of the engine's business
  t.is(eng.processReply(reply(p, d, { dport: 1 })).kind, 'pass');
  clock.advance(120_000);
  eng.tick();
  t.deepEqual(counts(d), [0, 0]);
});

test('DR connection that sees output leaves the input-only table', (t) => {
  const { eng } = setup();
  const { dests } = addService(eng, { dests: ['192.168.1.1'] });
  const v = eng.process(pkt({ tcpFlags: SYN }));
  if (v.kind !== 'forward') return t.fail();
  eng.process(pkt({ tcpFlags: ACK }));
  // FIN in the input-only table goes to FIN_WAIT, in the input table to CLOSE_WAIT
  t.true(v.conn.noOutput);
  // no reply index for DR: replies of DR connections are never seen by the director
  t.is(eng.processReply(reply(pkt(), dests[0], { tcpFlags: ACK })).kind, 'pass');
});

test('UDP: one state, always inactive, 300 s', (t) => {
  const { eng, clock } = setup();
  const { dests } = addService(eng, { proto: 'udp', port: 53, dests: ['192.168.1.1'] });
  const p = pkt({ protocol: 17, dport: 53 });
  for (let i = 0; i < 3; i++) t.is(eng.process(p).kind, 'forward');
  t.deepEqual(counts(dests[0]), [0, 1]);
  const [row] = eng.connections();
  t.is(row.state, 'UDP');
  t.is(row.protocol, 'UDP');
  t.is(row.expiresMs, 300_000);
  clock.advance(300_000);
  eng.tick();
  t.deepEqual(counts(dests[0]), [0, 0]);
});

test('UDP one-packet scheduling: nothing stays in the table', (t) => {
  const { eng } = setup();
  const { dests } = addService(eng, { proto: 'udp', port: 53, flags: SVC_F_ONEPACKET });
  const p = pkt({ protocol: 17, dport: 53 });
  const a = eng.process(p);
  const b = eng.process(p);
  if (a.kind !== 'forward' || b.kind !== 'forward') return t.fail();
  t.not(a.dest, b.dest);
  t.is(eng.stats().size, 0);
  t.is(dests[0].stats.conns + dests[1].stats.conns, 2);
  checkInvariants(t, eng, dests);
});

// state reached by a sequence of [direction, flags] through a NAT (or, with route, DR) service → its timeout
const timeoutCases: [string, 'masq' | 'route', ['in' | 'out', number][], number, number?][] = [
  [
    'SYN_RECV',
    'masq',
    [
      ['in', SYN],
      ['in', RST],
    ],
    60,
  ],
  [
    'ESTABLISHED',
    'masq',
    [
      ['in', SYN],
      ['in', ACK],
    ],
    900,
  ],
  [
    'CLOSE_WAIT',
    'masq',
    [
      ['in', SYN],
      ['in', ACK],
      ['in', FIN],
    ],
    60,
  ],
  [
    'FIN_WAIT',
    'masq',
    [
      ['in', SYN],
      ['in', ACK],
      ['out', FIN],
    ],
    120,
  ],
  [
    'TIME_WAIT',
    'masq',
    [
      ['in', SYN],
      ['in', ACK],
      ['out', FIN],
      ['in', FIN],
    ],
    120,
  ],
  [
    'CLOSE',
    'masq',
    [
      ['in', SYN],
      ['in', ACK],
      ['in', RST],
    ],
    10,
  ],
  [
    'FIN_WAIT',
    'route',
    [
      ['in', SYN],
      ['in', ACK],
      ['in', FIN],
    ],
    120,
  ],
  [
    'SYNACK',
    'route',
    [
      ['in', SYN],
      ['in', SYN],
    ],
    120,
    3,
  ],
];
for (const [state, fwd, steps, seconds, secure] of timeoutCases) {
  test(`default timeout ${state} (${fwd}) is ${seconds} s`, (t) => {
    const { eng, clock } = setup({ sysctl: { secure_tcp: secure ?? 0 } });
    const { dests } = addService(eng, { fwd, dests: ['192.168.1.1'] });
    const p = pkt();
    for (const [dir, flags] of steps) {
      clock.advance(500);
      if (dir === 'in') eng.process({ ...p, tcpFlags: flags });
      else eng.processReply(reply(p, dests[0], { tcpFlags: flags }));
    }
    const [row] = eng.connections();
    t.is(row.state, state);
    t.is(row.expiresMs, seconds * 1000);
    clock.advance(seconds * 1000 - 1);
    eng.tick();
    t.is(eng.stats().size, 1);
    clock.advance(1);
    eng.tick();
    t.is(eng.stats().size, 0);
  });
}

test('--set tcp tcpfin udp: ESTABLISHED, FIN_WAIT and UDP only; 0 leaves a value', (t) => {
  const { eng } = setup();
  t.deepEqual(eng.getTimeouts(), { tcp: 900, tcpfin: 120, udp: 300 });
  eng.setTimeouts({ tcp: 100, tcpfin: 20, udp: 30 });
  t.deepEqual(eng.getTimeouts(), { tcp: 100, tcpfin: 20, udp: 30 });
  eng.setTimeouts({ tcp: 0, tcpfin: 0, udp: 40 });
  t.deepEqual(eng.getTimeouts(), { tcp: 100, tcpfin: 20, udp: 40 });
  t.throws(() => eng.setTimeouts({ tcp: -1, tcpfin: 0, udp: 0 }), { instanceOf: AdmError });
  t.deepEqual(eng.getTimeouts(), { tcp: 100, tcpfin: 20, udp: 40 });

  addService(eng, { dests: ['192.168.1.1'] });
  addService(eng, { proto: 'udp', port: 53, dests: ['192.168.1.1'] });
  const expires = () =>
    Object.fromEntries(eng.connections().map((r) => [`${r.protocol}:${r.cport}`, [r.state, r.expiresMs / 1000]]));
  eng.process(pkt({ sport: 1, tcpFlags: SYN }));
  eng.process(pkt({ sport: 1, tcpFlags: ACK }));
  eng.process(pkt({ sport: 2, tcpFlags: SYN }));
  eng.process(pkt({ sport: 2, tcpFlags: ACK }));
  eng.process(pkt({ sport: 2, tcpFlags: FIN }));
  eng.process(pkt({ sport: 3, tcpFlags: SYN }));
  eng.process(pkt({ sport: 3, tcpFlags: ACK }));
  eng.process(pkt({ sport: 3, tcpFlags: FIN }));
  eng.process(pkt({ sport: 3, tcpFlags: SYN })); // TIME_WAIT? no: FIN_WAIT + SYN → SYN_RECV
  eng.process(pkt({ sport: 4, protocol: 17, dport: 53 }));
  t.deepEqual(expires(), {
    'TCP:1': ['ESTABLISHED', 100],
    'TCP:2': ['FIN_WAIT', 20],
    'TCP:3': ['SYN_RECV', 60],
    'UDP:4': ['UDP', 40],
  });
});

test('only SYN opens a TCP connection unless sloppy_tcp; RST never does', (t) => {
  const { eng } = setup();
  addService(eng);
  t.deepEqual(eng.process(pkt({ tcpFlags: ACK })), { kind: 'drop', reason: 'not-new' });
  t.deepEqual(eng.process(pkt({ tcpFlags: RST | SYN })), { kind: 'drop', reason: 'not-new' });
  eng.setSysctl({ sloppy_tcp: 1 });
  t.deepEqual(eng.process(pkt({ tcpFlags: RST })), { kind: 'drop', reason: 'not-new' });
  const v = eng.process(pkt({ tcpFlags: ACK | PSH }));
  if (v.kind !== 'forward') return t.fail();
  t.is(v.conn.stateName, 'ESTABLISHED');
  t.is(eng.stats().drops['not-new'], 3);
});

test('icmpConn: an ICMP error finds the connection of its embedded packet (in or out), never creates one', (t) => {
  const { eng } = setup({ sysctl: { sloppy_tcp: 1 } });
  const { dests } = addService(eng, { fwd: 'masq', port: 80, dests: [{ addr: '192.168.1.1', port: 8080 }] });
  // embedded VIP:vport → CIP:cport (what the director sent the client) of a flow the table does not know
  const toClient = pkt({ saddr: '10.0.0.1', sport: 80, daddr: '172.16.0.1', dport: 40000 });
  t.is(eng.icmpConn(toClient, 'in'), undefined);
  t.is(eng.conns.size, 0);
  const v = eng.process(pkt({ tcpFlags: SYN }));
  if (v.kind !== 'forward') return t.fail();
  const before = { state: v.conn.stateName, inpkts: v.conn.inpkts, expiresMs: eng.connections()[0].expiresMs };
  t.is(eng.icmpConn(toClient, 'in'), v.conn);
  t.is(eng.icmpConn({ ...toClient, saddr4: 0x0a000001, daddr4: 0xac100001 }, 'in'), v.conn);
  // embedded CIP:cport → RIP:rport (what the director sent the real server): the NAT reply direction
  const toServer = pkt({ saddr: '172.16.0.1', sport: 40000, daddr: dests[0].addr, dport: 8080 });
  t.is(eng.icmpConn(toServer, 'out'), v.conn);
  t.is(eng.icmpConn(toServer, 'in'), undefined);
  t.is(eng.icmpConn(toClient, 'out'), undefined);
  t.is(eng.icmpConn({ ...toClient, protocol: 17 }, 'in'), undefined);
  // a lookup only: no state, counter or timer change, no new entry
  t.deepEqual({ state: v.conn.stateName, inpkts: v.conn.inpkts, expiresMs: eng.connections()[0].expiresMs }, before);
  t.is(eng.conns.size, 1);
  // IPv6: found through the string keys
  addService(eng, {
    id: { kind: 'udp', family: 6, addr: '2001:db8::1', port: 53 },
    port: 53,
    dests: ['2001:db8:1::1'],
  });
  const v6 = eng.process(pkt({ family: 6, protocol: 17, saddr: '2001:db8:ff::5', daddr: '2001:db8::1', dport: 53 }));
  if (v6.kind !== 'forward') return t.fail();
  const e6 = pkt({ family: 6, protocol: 17, saddr: '2001:db8::1', sport: 53, daddr: '2001:db8:ff::5', dport: 40000 });
  t.is(eng.icmpConn(e6, 'in'), v6.conn);
});

test('no service: pass; other protocols: pass, or dropped when a service claims them', (t) => {
  const { eng } = setup();
  addService(eng);
  t.deepEqual(eng.process(pkt({ dport: 81, tcpFlags: SYN })), { kind: 'pass' });
  t.deepEqual(eng.process(pkt({ protocol: 1, sport: 0, dport: 0 })), { kind: 'pass' });
  addService(eng, { id: { kind: 'fwm', family: 4, fwmark: 7 } });
  t.deepEqual(eng.process(pkt({ protocol: 132, fwmark: 7 })), { kind: 'drop', reason: 'unsupported-protocol' });
});

test('service lookup: fwmark service of the family first, then the VIP:port', (t) => {
  const { eng } = setup();
  const vip = addService(eng, { dests: ['192.168.1.1'] });
  const fwm = addService(eng, { id: { kind: 'fwm', family: 4, fwmark: 5 }, dests: [{ addr: '192.168.9.9', port: 0 }] });
  const a = eng.process(pkt({ fwmark: 5, tcpFlags: SYN }));
  const b = eng.process(pkt({ sport: 2, fwmark: 6, tcpFlags: SYN }));
  if (a.kind !== 'forward' || b.kind !== 'forward') return t.fail();
  t.is(a.dest, fwm.dests[0]);
  t.is(a.conn.dport, 80); // real server port 0 keeps the packet's port
  t.is(b.dest, vip.dests[0]);
});

test('no real server available: drop no-dest (FTP services let other ports pass)', (t) => {
  const { eng } = setup();
  addService(eng, { dests: [{ addr: '192.168.1.1', weight: 0 }] });
  t.deepEqual(eng.process(pkt({ tcpFlags: SYN })), { kind: 'drop', reason: 'no-dest' });
  addService(eng, { port: 21, dests: [] });
  t.deepEqual(eng.process(pkt({ dport: 2000, tcpFlags: SYN })), { kind: 'pass' });
  t.deepEqual(eng.process(pkt({ dport: 21, tcpFlags: SYN })), { kind: 'drop', reason: 'no-dest' });
});

test('conn_reuse_mode: a SYN on a TIME_WAIT/CLOSE connection is scheduled anew', (t) => {
  const { eng } = setup();
  const { dests } = addService(eng, { fwd: 'masq' });
  const p = pkt();
  const first = eng.process({ ...p, tcpFlags: SYN });
  if (first.kind !== 'forward') return t.fail();
  eng.process({ ...p, tcpFlags: ACK });
  eng.process({ ...p, tcpFlags: RST });
  t.is(first.conn.stateName, 'CLOSE');
  const second = eng.process({ ...p, tcpFlags: SYN });
  if (second.kind !== 'forward') return t.fail();
  t.not(second.conn, first.conn);
  t.false(first.conn.live);
  t.not(second.dest, first.dest); // rr moved on
  t.is(eng.stats().rescheduled, 1);
  t.is(eng.stats().size, 1);
  checkInvariants(t, eng, dests);

  eng.setSysctl({ conn_reuse_mode: 0 });
  eng.process({ ...p, tcpFlags: RST });
  const third = eng.process({ ...p, tcpFlags: SYN });
  if (third.kind !== 'forward') return t.fail();
  t.is(third.conn, second.conn); // same entry, same server: CLOSE + SYN → SYN_RECV
  t.is(third.conn.stateName, 'SYN_RECV');
});

test('conn_reuse_mode: a DR SYN reusing a TIME_WAIT / CLOSE flow is rescheduled and forwarded, never dropped', (t) => {
  // a connect loop's client reuses source ports whose old entries linger; no conntrack here, so no drop (5.9+)
  const { eng } = setup();
  const { dests } = addService(eng);
  const p = pkt({ sport: 41000 });
  const open = () => eng.process({ ...p, tcpFlags: SYN });
  const a = open();
  if (a.kind !== 'forward') return t.fail();
  eng.process({ ...p, tcpFlags: FIN | ACK }); // input-only: SYN_RECV + FIN → TIME_WAIT
  t.is(a.conn.stateName, 'TIME_WAIT');
  const b = open();
  if (b.kind !== 'forward') return t.fail(JSON.stringify(b));
  t.not(b.conn, a.conn);
  t.false(a.conn.live);
  t.is(b.conn.stateName, 'SYN_RECV');
  t.not(b.dest, a.dest); // scheduled anew: rr moved on
  eng.process({ ...p, tcpFlags: ACK });
  eng.process({ ...p, tcpFlags: RST | ACK });
  t.is(b.conn.stateName, 'CLOSE');
  const c = open();
  if (c.kind !== 'forward') return t.fail(JSON.stringify(c));
  t.not(c.conn, b.conn);
  t.is(c.dest, a.dest);
  // a DR connection closed by FIN stays in FIN_WAIT: mode 1 keeps it (and its server), the SYN is still forwarded
  eng.process({ ...p, tcpFlags: ACK });
  eng.process({ ...p, tcpFlags: FIN | ACK });
  t.is(c.conn.stateName, 'FIN_WAIT');
  const d = open();
  if (d.kind !== 'forward') return t.fail(JSON.stringify(d));
  t.is(d.conn, c.conn);
  t.is(d.conn.stateName, 'SYN_RECV');
  const st = eng.stats();
  t.is(st.rescheduled, 2);
  t.is(st.size, 1);
  t.true(
    Object.values(st.drops).every((n) => n === 0),
    JSON.stringify(st.drops),
  );
  checkInvariants(t, eng, dests);
});

test('conn_reuse_mode bit 1: FIN_WAIT of DR connections is reused too', (t) => {
  for (const [mode, resched] of [
    [1, false],
    [3, true],
  ] as const) {
    const { eng } = setup({ sysctl: { conn_reuse_mode: mode } });
    addService(eng);
    const p = pkt();
    const a = eng.process({ ...p, tcpFlags: SYN });
    eng.process({ ...p, tcpFlags: ACK });
    eng.process({ ...p, tcpFlags: FIN });
    const b = eng.process({ ...p, tcpFlags: SYN });
    if (a.kind !== 'forward' || b.kind !== 'forward') return t.fail();
    t.is(b.conn !== a.conn, resched, `mode ${mode}`);
  }
});

test('expire_nodest_conn off: packets of a removed real server are dropped, the entry stays', (t) => {
  const { eng, clock } = setup();
  const { id, dests } = addService(eng, { dests: ['192.168.1.1'] });
  eng.process(pkt({ tcpFlags: SYN }));
  eng.process(pkt({ tcpFlags: ACK }));
  eng.table.delDest(id, '192.168.1.1', 80);
  t.deepEqual(eng.process(pkt({ tcpFlags: ACK })), { kind: 'drop', reason: 'dest-unavailable' });
  t.is(eng.stats().size, 1);
  t.deepEqual(counts(dests[0]), [1, 0]);
  clock.advance(900_000);
  eng.tick();
  t.deepEqual(counts(dests[0]), [0, 0]);
});

test('expire_nodest_conn on: the entry is expired; a SYN is scheduled to another server', (t) => {
  const { eng } = setup({ sysctl: { expire_nodest_conn: 1 } });
  const { id, dests } = addService(eng);
  const a = eng.process(pkt({ tcpFlags: SYN }));
  eng.process(pkt({ tcpFlags: ACK }));
  const b = eng.process(pkt({ sport: 2, tcpFlags: SYN }));
  if (a.kind !== 'forward' || b.kind !== 'forward') return t.fail();
  eng.table.delDest(id, a.dest.addr, 80);
  t.deepEqual(eng.process(pkt({ tcpFlags: ACK })), { kind: 'drop', reason: 'expire-nodest' });
  t.false(a.conn.live);
  t.deepEqual(counts(a.dest), [0, 0]);
  const c = eng.process(pkt({ tcpFlags: SYN }));
  if (c.kind !== 'forward') return t.fail();
  t.is(c.dest, b.dest);
  checkInvariants(t, eng, dests);
});

test('expire_nodest_conn on: a SYN on a connection of a quiesced (weight 0) server reschedules', (t) => {
  const { eng } = setup({ sysctl: { expire_nodest_conn: 1 } });
  const { id, dests } = addService(eng);
  const a = eng.process(pkt({ tcpFlags: SYN }));
  if (a.kind !== 'forward') return t.fail();
  eng.table.editDest(id, { addr: a.dest.addr, port: 80, fwd: 'route', weight: 0, uThreshold: 0, lThreshold: 0 });
  t.is(eng.process(pkt({ tcpFlags: ACK })).kind, 'forward'); // established traffic keeps going
  const b = eng.process(pkt({ tcpFlags: SYN }));
  if (b.kind !== 'forward') return t.fail();
  t.not(b.dest, a.dest);
  checkInvariants(t, eng, dests);
});

test('expire_nodest_conn on: deleting a server sweeps its connections on the next tick', (t) => {
  const { eng } = setup({ sysctl: { expire_nodest_conn: 1 } });
  const { id, dests } = addService(eng, { dests: ['192.168.1.1'] });
  for (let i = 1; i <= 5; i++) eng.process(pkt({ sport: i, tcpFlags: SYN }));
  eng.table.delDest(id, '192.168.1.1', 80);
  t.is(eng.stats().size, 5);
  eng.tick();
  t.is(eng.stats().size, 0);
  checkInvariants(t, eng, dests);
});

test('deleting a service does not break later packets of its connections', (t) => {
  const { eng, clock } = setup();
  const { id, dests } = addService(eng, { fwd: 'masq' });
  const p = pkt({ tcpFlags: SYN });
  const v = eng.process(p);
  if (v.kind !== 'forward') return t.fail();
  eng.table.delService(id);
  t.deepEqual(eng.process(pkt({ tcpFlags: ACK })), { kind: 'drop', reason: 'dest-unavailable' });
  t.is(eng.processReply(reply(p, v.dest, { tcpFlags: ACK })).kind, 'forward');
  t.deepEqual(eng.process(pkt({ sport: 9, tcpFlags: SYN })), { kind: 'pass' });
  eng.tick();
  clock.advance(3_600_000);
  eng.tick();
  t.is(eng.stats().size, 0);
  checkInvariants(t, eng, dests);
  eng.setSysctl({ expire_nodest_conn: 1 });
  const { id: id2 } = addService(eng, { fwd: 'masq' });
  eng.process(p);
  eng.table.clear();
  t.deepEqual(eng.process(pkt({ tcpFlags: ACK })), { kind: 'drop', reason: 'expire-nodest' });
  void id2;
});

test('stats: conns, packets and bytes on the server, the service and the totals', (t) => {
  const { eng } = setup();
  const { id, dests } = addService(eng, { fwd: 'masq', dests: ['192.168.1.1'] });
  const svc = eng.table.get(id)!;
  for (let c = 1; c <= 3; c++) {
    const p = pkt({ sport: c });
    eng.process({ ...p, tcpFlags: SYN, length: 60 });
    eng.processReply(reply(p, dests[0], { tcpFlags: SYN | ACK, length: 60 }));
    eng.process({ ...p, tcpFlags: ACK, length: 40 });
    eng.process({ ...p, tcpFlags: ACK | PSH, length: 500 });
    eng.processReply(reply(p, dests[0], { tcpFlags: ACK | PSH, length: 1500 }));
  }
  const expect = { conns: 3, inpkts: 9, inbytes: 1800, outpkts: 6, outbytes: 4680 };
  for (const s of [dests[0].stats, svc.stats, eng.totalStats]) {
    const snap = s.snapshot();
    t.like(snap, expect);
  }
});

test('estimator: rates from the counters every 2 s of clock time', (t) => {
  const { eng, clock } = setup();
  const { id, dests } = addService(eng, { dests: ['192.168.1.1'] });
  const svc = eng.table.get(id)!;
  let port = 1;
  // 10 new connections and 50 packets of 100 bytes a second for a minute, ticking every 100 ms
  for (let ms = 0; ms < 60_000; ms += 100) {
    clock.advance(100);
    eng.process(pkt({ sport: port++, tcpFlags: SYN, length: 100 }));
    for (let i = 0; i < 4; i++) eng.process(pkt({ sport: port - 1, tcpFlags: ACK, length: 100 }));
    eng.tick();
  }
  for (const s of [svc.stats, dests[0].stats]) {
    const snap = s.snapshot();
    t.is(snap.cps, 10);
    t.is(snap.inpps, 50);
    t.true(Math.abs(snap.inbps - 5000) <= 1, `${snap.inbps}`); // fixed-point rounding
  }
  // quiet for a minute: the rates decay
  for (let ms = 0; ms < 60_000; ms += 1000) {
    clock.advance(1000);
    eng.tick();
  }
  t.is(svc.stats.snapshot().cps, 0);
});

test('IPv6 service and flows', (t) => {
  const { eng } = setup();
  const { dests } = addService(eng, {
    id: { kind: 'tcp', family: 6, addr: '2001:db8::1', port: 443 },
    port: 443,
    fwd: 'masq',
    dests: ['2001:db8:1::1'],
  });
  const p = pkt({ family: 6, saddr: '2001:db8:ff::5', daddr: '2001:db8::1', dport: 443, tcpFlags: SYN });
  const v = eng.process(p);
  if (v.kind !== 'forward') return t.fail();
  t.is(eng.processReply(reply(p, dests[0], { tcpFlags: SYN | ACK })).kind, 'forward');
  t.is(eng.connections()[0].family, 6);
});
