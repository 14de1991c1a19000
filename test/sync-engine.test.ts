/** Master engine → SyncMaster → datagrams → SyncBackup → backup engine (EngineSyncTarget), in one process. */
import test from 'ava';
import { ManualTimers } from '../src/ha/checks/timers.js';
import { SyncBackup } from '../src/ha/sync/backup.js';
import { CONN_F_INACTIVE, CONN_F_SYNC, CONN_F_TEMPLATE, encodeMessages, sendMaxLen } from '../src/ha/sync/codec.js';
import { SyncMaster } from '../src/ha/sync/master.js';
import { EngineSyncTarget, MemorySyncTarget } from '../src/ha/sync/target.js';
import type { Engine, PacketMeta } from '../src/l4/engine.js';
import { ACK, addService, checkInvariants, FIN, pkt, SYN, setup } from './engine-fixture.js';

function pair(o: { timeout?: number } = {}) {
  const a = setup();
  const b = setup();
  const svcA = addService(a.eng, { timeout: o.timeout });
  const svcB = addService(b.eng, { timeout: o.timeout });
  const timers = new ManualTimers(a.clock);
  const sent: Buffer[] = [];
  const master = new SyncMaster({ syncid: 1, maxLen: sendMaxLen(1500), send: (m) => sent.push(m), timers });
  const target = new EngineSyncTarget(b.eng);
  const backup = new SyncBackup({ syncid: 1, maxLen: 1472, target });
  const deliver = () => {
    master.flush();
    for (const m of sent.splice(0)) backup.receive(m);
  };
  /** a client packet through the master engine, with the sync hook ip_vs_in runs */
  const send = (p: Partial<PacketMeta>) => {
    const v = a.eng.process(pkt(p));
    if (v.kind === 'forward') master.packet(v.conn);
    return v;
  };
  return { a, b, svcA, svcB, master, backup, deliver, send, sent };
}

const rows = (e: Engine) =>
  e
    .connections()
    .map((r) => `${r.protocol} ${r.caddr}:${r.cport} ${r.vaddr}:${r.vport} ${r.daddr}:${r.dport} ${r.state}`)
    .sort();

test('an established connection reaches the backup, bound to its own real server and counted active', (t) => {
  const p = pair();
  p.send({ tcpFlags: SYN });
  p.send({ tcpFlags: ACK });
  p.deliver();
  t.deepEqual(rows(p.b.eng), []);
  p.send({ tcpFlags: ACK | 8 });
  p.deliver();
  t.deepEqual(rows(p.b.eng), rows(p.a.eng));
  const [c] = p.b.eng.conns.entries();
  t.is(c.stateName, 'ESTABLISHED');
  t.is(c.timeoutMs, 900_000);
  t.is(c.flags & CONN_F_SYNC, CONN_F_SYNC);
  t.falsy(c.flags & CONN_F_INACTIVE);
  t.is(c.dest, p.b.eng.table.get(p.svcB.id)?.dests.find((d) => d.addr === c.daddr) ?? null);
  t.is(c.dest?.activeConns, 1);
  checkInvariants(t, p.b.eng, p.svcB.dests);
  t.deepEqual(p.backup.counters.installed, { created: 1 });
});

test('a state change updates the backup entry and its server counters', (t) => {
  const p = pair();
  p.send({ tcpFlags: SYN });
  p.send({ tcpFlags: ACK });
  p.send({ tcpFlags: ACK });
  p.deliver();
  p.send({ tcpFlags: FIN | ACK });
  p.deliver();
  const [c] = p.b.eng.conns.entries();
  t.is(c.stateName, p.a.eng.conns.entries()[0].stateName);
  t.not(c.stateName, 'ESTABLISHED');
  t.deepEqual(p.backup.counters.installed, { created: 1, updated: 1 });
  checkInvariants(t, p.b.eng, p.svcB.dests);
});

test('persistence templates are synced and installed as templates', (t) => {
  const p = pair({ timeout: 300 });
  for (const f of [SYN, ACK, ACK]) p.send({ tcpFlags: f });
  p.deliver();
  const tpl = p.b.eng.conns.entries().filter((c) => c.template);
  t.is(tpl.length, 1);
  t.is(tpl[0].timeoutMs, 300_000);
  t.is(tpl[0].dest?.persistConns, 1);
  t.deepEqual(rows(p.b.eng), rows(p.a.eng));
  checkInvariants(t, p.b.eng, p.svcB.dests);
});

test('many connections cross in MTU-sized messages', (t) => {
  const p = pair();
  for (let i = 0; i < 150; i++) for (const f of [SYN, ACK, ACK]) p.send({ sport: 20000 + i, tcpFlags: f });
  t.is(p.sent.length, 3);
  p.deliver();
  t.is(p.b.eng.conns.size, 150);
  t.deepEqual(rows(p.b.eng), rows(p.a.eng));
  checkInvariants(t, p.b.eng, p.svcB.dests);
});

test('entries without a matching service or real server are counted, not installed', (t) => {
  const p = pair();
  const base = {
    family: 4 as const,
    protocol: 6,
    flags: 0x3,
    state: 1,
    caddr: '172.16.0.9',
    cport: 1234,
    vaddr: '10.9.9.9',
    vport: 80,
    daddr: '192.168.1.1',
    dport: 80,
    fwmark: 0,
    timeout: 60,
  };
  const msgs = encodeMessages(1, [base, { ...base, vaddr: '10.0.0.1', daddr: '192.168.7.7' }], 1444);
  for (const m of msgs) p.backup.receive(m);
  t.deepEqual(p.backup.counters.installed, { 'no-service': 1, 'no-dest': 1 });
  t.is(p.b.eng.conns.size, 0);
  // a wrong syncid is dropped and counted
  p.backup.receive(encodeMessages(2, [base], 1444)[0]);
  t.deepEqual(p.backup.counters.dropped, { syncid: 1 });
});

test('version 0 entries get the timeout of their state', (t) => {
  const p = pair();
  // nr_conns 1, syncid 1, size 28; client 172.16.0.1:2500 → 10.0.0.1:80 → 192.168.1.1:80, DROUTE, ESTABLISHED
  const v0 = Buffer.from(
    '0101001c' + '0006' + '09c400500050' + 'ac100001' + '0a000001' + 'c0a80101' + '00030001',
    'hex',
  );
  p.backup.receive(v0);
  const [c] = p.b.eng.conns.entries();
  t.is(c?.timeoutMs, 900_000);
  t.is(c?.cport, 0x09c4);
});

test('MemorySyncTarget records entries by key', (t) => {
  const m = new MemorySyncTarget();
  const c = {
    family: 4 as const,
    protocol: 6,
    flags: 0,
    state: 1,
    caddr: '1.1.1.1',
    cport: 1,
    vaddr: '2.2.2.2',
    vport: 80,
    daddr: '3.3.3.3',
    dport: 80,
    fwmark: 0,
    timeout: 1,
  };
  t.is(m.installSynced(c), 'created');
  t.is(m.installSynced(c), 'updated');
  t.is(m.installSynced({ ...c, flags: CONN_F_TEMPLATE }), 'created');
  t.is(m.entries.size, 2);
});
