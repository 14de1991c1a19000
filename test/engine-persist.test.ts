import test from 'ava';
import { ACK, addService, checkInvariants, FIN, pkt, SYN, setup } from './engine-fixture.js';

test('a template per masked client: same server, PersistConn, template row', (t) => {
  const { eng } = setup();
  const { dests } = addService(eng, { timeout: 300, netmask: 0xffffff00 });
  const a = eng.process(pkt({ saddr: '172.16.0.1', sport: 1, tcpFlags: SYN }));
  const b = eng.process(pkt({ saddr: '172.16.0.200', sport: 2, tcpFlags: SYN }));
  const c = eng.process(pkt({ saddr: '172.16.1.1', sport: 3, tcpFlags: SYN }));
  if (a.kind !== 'forward' || b.kind !== 'forward' || c.kind !== 'forward') return t.fail();
  t.is(a.dest, b.dest);
  t.not(a.dest, c.dest);
  t.is(a.conn.controlledBy, b.conn.controlledBy);
  t.is(a.conn.controlledBy?.nControl, 2);
  t.is(a.dest.persistConns, 1);
  t.is(a.dest.stats.conns, 2); // templates are not counted as connections
  const tpl = eng.connections().filter((r) => r.template);
  t.is(tpl.length, 2);
  t.like(
    tpl.find((r) => r.caddr === '172.16.0.0'),
    { protocol: 'TCP', cport: 0, vaddr: '10.0.0.1', vport: 80, dport: 80, state: 'NONE', expiresMs: 300_000 },
  );
  checkInvariants(t, eng, dests);
});

test('a template lives while it controls connections, then expires', (t) => {
  const { eng, clock } = setup();
  const { dests } = addService(eng, { timeout: 60, dests: ['192.168.1.1'] });
  eng.process(pkt({ tcpFlags: SYN }));
  eng.process(pkt({ tcpFlags: ACK })); // ESTABLISHED: 900 s
  const tpl = () => eng.conns.entries().find((c) => c.template);
  clock.advance(60_000);
  eng.tick();
  t.truthy(tpl(), 'still controlling');
  t.is(eng.connections().find((r) => r.template)?.expiresMs, 60_000); // re-armed for 60 s
  clock.advance(840_000); // the connection expires (900 s after its last packet)
  eng.tick();
  t.is(eng.conns.entries().filter((c) => !c.template).length, 0);
  t.truthy(tpl(), 'the template outlives its connection until its own timer');
  t.is(dests[0].persistConns, 1);
  clock.advance(60_000);
  eng.tick();
  t.falsy(tpl());
  t.is(dests[0].persistConns, 0);
  checkInvariants(t, eng, dests);
});

test('each new connection restarts the template timer', (t) => {
  const { eng, clock } = setup();
  addService(eng, { timeout: 100 });
  for (let i = 1; i <= 5; i++) {
    eng.process(pkt({ sport: i, tcpFlags: SYN }));
    eng.process(pkt({ sport: i, tcpFlags: FIN }));
    clock.advance(50_000);
    eng.tick();
  }
  const tplRow = eng.connections().find((r) => r.template);
  t.is(tplRow?.expiresMs, 50_000);
});

test('a quiesced server keeps its persistent clients unless expire_quiescent_template', (t) => {
  for (const eqt of [0, 1]) {
    const { eng } = setup({ sysctl: { expire_quiescent_template: eqt } });
    const { id, dests } = addService(eng, { timeout: 300 });
    const a = eng.process(pkt({ sport: 1, tcpFlags: SYN }));
    if (a.kind !== 'forward') return t.fail();
    eng.table.editDest(id, { addr: a.dest.addr, port: 80, fwd: 'route', weight: 0, uThreshold: 0, lThreshold: 0 });
    const b = eng.process(pkt({ sport: 2, tcpFlags: SYN }));
    if (b.kind !== 'forward') return t.fail();
    t.is(b.dest === a.dest, eqt === 0, `expire_quiescent_template=${eqt}`);
    if (eqt) {
      // the old template no longer matches; it waits for its connection with ports 65535
      const rows = eng.connections().filter((r) => r.template);
      t.is(rows.length, 2);
      t.truthy(rows.find((r) => r.vport === 65535 && r.dport === 65535));
    }
    checkInvariants(t, eng, dests);
  }
});

test('a template of a deleted server is replaced', (t) => {
  const { eng, clock } = setup();
  const { id, dests } = addService(eng, { timeout: 300 });
  const a = eng.process(pkt({ sport: 1, tcpFlags: SYN }));
  if (a.kind !== 'forward') return t.fail();
  eng.table.delDest(id, a.dest.addr, 80);
  const b = eng.process(pkt({ sport: 2, tcpFlags: SYN }));
  if (b.kind !== 'forward') return t.fail();
  t.not(b.dest, a.dest);
  clock.advance(3_600_000);
  eng.tick();
  eng.tick();
  t.is(eng.stats().size, 0);
  checkInvariants(t, eng, dests);
});

test('fwmark persistence: <IP, caddr, 0, fwmark, 0> templates across ports and protocols', (t) => {
  const { eng } = setup();
  const { dests } = addService(eng, {
    id: { kind: 'fwm', family: 4, fwmark: 1 },
    timeout: 300,
    dests: [
      { addr: '192.168.1.1', port: 0 },
      { addr: '192.168.1.2', port: 0 },
    ],
  });
  const a = eng.process(pkt({ fwmark: 1, dport: 80, tcpFlags: SYN }));
  const b = eng.process(pkt({ fwmark: 1, dport: 443, sport: 2, tcpFlags: SYN }));
  const c = eng.process(pkt({ fwmark: 1, protocol: 17, dport: 53, sport: 3 }));
  if (a.kind !== 'forward' || b.kind !== 'forward' || c.kind !== 'forward') return t.fail();
  t.is(a.dest, b.dest);
  t.is(a.dest, c.dest);
  t.is(b.conn.dport, 443);
  const [tpl] = eng.connections().filter((r) => r.template);
  t.like(tpl, { protocol: 'IP', vaddr: '0.0.0.1', vport: 0, dport: 0, fwmark: 1, cport: 0 });
  checkInvariants(t, eng, dests);
});

test('port-zero persistent service: one template for every port of the VIP', (t) => {
  const { eng } = setup();
  addService(eng, {
    port: 0,
    timeout: 300,
    dests: [
      { addr: '192.168.1.1', port: 0 },
      { addr: '192.168.1.2', port: 0 },
    ],
  });
  const a = eng.process(pkt({ dport: 80, tcpFlags: SYN }));
  const b = eng.process(pkt({ dport: 8080, sport: 2, tcpFlags: SYN }));
  if (a.kind !== 'forward' || b.kind !== 'forward') return t.fail();
  t.is(a.dest, b.dest);
  t.is(b.conn.dport, 8080);
  const [tpl] = eng.connections().filter((r) => r.template);
  t.like(tpl, { protocol: 'TCP', vport: 0, dport: 0 });
});

test('a non-persistent port-zero service cannot schedule', (t) => {
  const { eng } = setup();
  addService(eng, { port: 0, dests: [{ addr: '192.168.1.1', port: 0 }] });
  t.deepEqual(eng.process(pkt({ dport: 80, tcpFlags: SYN })), { kind: 'drop', reason: 'port-zero' });
});

test('persistent FTP: <caddr, 0, vaddr, 0> so data connections follow the control connection', (t) => {
  const { eng } = setup();
  addService(eng, {
    port: 21,
    timeout: 300,
    dests: [
      { addr: '192.168.1.1', port: 21 },
      { addr: '192.168.1.2', port: 21 },
    ],
  });
  const ctl = eng.process(pkt({ dport: 21, tcpFlags: SYN }));
  const data = eng.process(pkt({ dport: 30000, sport: 2, tcpFlags: SYN }));
  if (ctl.kind !== 'forward' || data.kind !== 'forward') return t.fail();
  t.is(ctl.dest, data.dest);
  t.is(data.conn.dport, 30000);
  const tpls = eng.connections().filter((r) => r.template);
  t.is(tpls.length, 1);
  t.like(tpls[0], { vport: 0, dport: 0 });
});

test('IPv6 persistence granularity is a prefix length', (t) => {
  const { eng } = setup();
  addService(eng, {
    id: { kind: 'tcp', family: 6, addr: '2001:db8::1', port: 80 },
    timeout: 300,
    netmask: 64,
    dests: ['2001:db8:1::1', '2001:db8:1::2'],
  });
  const v6 = (saddr: string, sport: number) =>
    eng.process(pkt({ family: 6, saddr, sport, daddr: '2001:db8::1', tcpFlags: SYN }));
  const a = v6('2001:db8:ff::5', 1);
  const b = v6('2001:db8:ff::6', 2);
  const c = v6('2001:db8:fe::5', 3);
  if (a.kind !== 'forward' || b.kind !== 'forward' || c.kind !== 'forward') return t.fail();
  t.is(a.dest, b.dest);
  t.not(a.dest, c.dest);
  t.truthy(eng.connections().find((r) => r.template && r.caddr === '2001:db8:ff::'));
});
