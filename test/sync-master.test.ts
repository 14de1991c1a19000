/** The master's sync rule (ip_vs_sync_conn_needed) and batching into messages, with manual time. */
import test from 'ava';
import { ManualTimers } from '../src/ha/checks/timers.js';
import { CONN_F_ONE_PACKET, CONN_F_TEMPLATE, decodeMessage, sendMaxLen } from '../src/ha/sync/codec.js';
import { SyncMaster, type SyncSource } from '../src/ha/sync/master.js';
import { DEFAULT_SYNC_SYSCTL, type SyncMarks, type SyncSysctl, syncConnNeeded } from '../src/ha/sync/rule.js';

const TCP = 6;
const UDP = 17;
const ES = 1;
const SYN_RECV = 3;
const FIN_WAIT = 4;

const marks = (): SyncMarks => ({ oldState: 0, syncEndtime: 0 });
const sysctl = (o: Partial<SyncSysctl> = {}): SyncSysctl => ({ ...DEFAULT_SYNC_SYSCTL, ...o });
const conn = (o: Partial<{ flags: number; protocol: number; state: number; timeoutMs: number }> = {}) => ({
  flags: 0,
  protocol: TCP,
  state: ES,
  timeoutMs: 900_000,
  ...o,
});

test('rule: TCP syncs in ESTABLISHED at sync_threshold, then every sync_period packets', (t) => {
  const s = sysctl();
  const m = marks();
  const sent = [];
  for (let pkts = 1; pkts <= 110; pkts++) if (syncConnNeeded(s, conn(), m, pkts, 1000)) sent.push(pkts);
  t.deepEqual(sent, [3, 53, 103]);
});

test('rule: half-open TCP states are never synced', (t) => {
  t.false(syncConnNeeded(sysctl(), conn({ state: SYN_RECV }), marks(), 3, 0));
  t.false(syncConnNeeded(sysctl(), conn({ state: 0 }), marks(), 3, 0));
});

test('rule: a change to a closing state is sent at once, whatever the packet count', (t) => {
  const m = marks();
  t.true(syncConnNeeded(sysctl(), conn({ state: FIN_WAIT }), m, 17, 0));
  t.is(m.oldState, FIN_WAIT);
  // same state again: back to the packet rule
  t.false(syncConnNeeded(sysctl(), conn({ state: FIN_WAIT }), m, 18, 0));
  t.true(syncConnNeeded(sysctl(), conn({ state: FIN_WAIT }), m, 53, 0));
});

test('rule: UDP follows the packet rule; templates pass it', (t) => {
  t.false(syncConnNeeded(sysctl(), conn({ protocol: UDP, state: 0 }), marks(), 2, 0));
  t.true(syncConnNeeded(sysctl(), conn({ protocol: UDP, state: 0 }), marks(), 3, 0));
  t.true(syncConnNeeded(sysctl(), conn({ protocol: 0, state: 0, flags: CONN_F_TEMPLATE }), marks(), 7, 0));
});

test('rule: sync_period 0 sends once, when the count equals sync_threshold', (t) => {
  const s = sysctl({ syncPeriod: 0 });
  const m = marks();
  const sent = [];
  for (let pkts = 1; pkts <= 200; pkts++) if (syncConnNeeded(s, conn(), m, pkts, 0)) sent.push(pkts);
  t.deepEqual(sent, [3]);
  // with sync_period 0 templates also wait for the threshold
  t.false(syncConnNeeded(s, conn({ protocol: 0, state: 0, flags: CONN_F_TEMPLATE }), marks(), 7, 0));
});

test('rule: sync_refresh_period sends only when the expiry moved enough, with sync_retries resends', (t) => {
  const s = sysctl({ syncPeriod: 0, syncRefreshPeriodMs: 10_000 });
  const m = marks();
  t.true(syncConnNeeded(s, conn(), m, 1, 100_000));
  t.false(syncConnNeeded(s, conn(), m, 2, 101_000));
  t.false(syncConnNeeded(s, conn(), m, 3, 109_000));
  t.true(syncConnNeeded(s, conn(), m, 4, 111_000));
  // one retry allowed: a second send of an unchanged expiry after sync_refresh_period / 8
  const r = sysctl({ syncPeriod: 0, syncRefreshPeriodMs: 10_000, syncRetries: 1 });
  const m2 = marks();
  t.true(syncConnNeeded(r, conn(), m2, 1, 100_000));
  t.false(syncConnNeeded(r, conn(), m2, 2, 100_500));
  t.true(syncConnNeeded(r, conn(), m2, 3, 101_300));
  t.is(m2.syncEndtime & 3, 1);
  t.false(syncConnNeeded(r, conn(), m2, 4, 102_600));
});

test('rule: sync_persist_mode leaves connections under a template to the template', (t) => {
  const s = sysctl({ syncPersistMode: 1 });
  t.false(syncConnNeeded(s, { ...conn(), controlledBy: { flags: CONN_F_TEMPLATE } }, marks(), 3, 0));
  t.true(syncConnNeeded(s, { ...conn(), controlledBy: null }, marks(), 3, 0));
  // controlled by a connection that is not a template (a ONE_PACKET entry's controller): not in persistence
  t.true(syncConnNeeded(s, { ...conn(), controlledBy: { flags: 0 } }, marks(), 3, 0));
});

function source(i: number, o: Partial<SyncSource> = {}): SyncSource {
  return {
    protocol: TCP,
    family: 4,
    caddr: '192.168.0.1',
    cport: 10000 + i,
    vaddr: '10.0.0.100',
    vport: 80,
    daddr: '10.0.1.11',
    dport: 80,
    flags: 0x0083,
    state: ES,
    timeoutMs: 900_000,
    fwmark: 0,
    inpkts: 3,
    controlledBy: null,
    ...o,
  };
}

function master(o: { flushMs?: number; maxLen?: number } = {}) {
  const timers = new ManualTimers();
  const sent: Buffer[] = [];
  const m = new SyncMaster({ syncid: 5, maxLen: sendMaxLen(1500), send: (b) => sent.push(b), timers, ...o });
  m.start();
  return { timers, sent, m };
}

test('master: full messages go out at once, the rest after the 2 s flush time', (t) => {
  const { timers, sent, m } = master();
  for (let i = 0; i < 100; i++) m.packet(source(i));
  t.deepEqual(
    sent.map((b) => b[4]),
    [39, 39],
  );
  timers.advance(1000);
  t.is(sent.length, 2);
  timers.advance(1000);
  t.deepEqual(
    sent.map((b) => b[4]),
    [39, 39, 22],
  );
  const ports = sent.flatMap((b) => decodeMessage(b, { syncid: 5 }).conns.map((c) => c.cport));
  t.deepEqual(
    ports,
    Array.from({ length: 100 }, (_, i) => 10000 + i),
  );
  t.deepEqual(m.stats, { messages: 3, conns: 100, bytes: sent.reduce((n, b) => n + b.length, 0) });
  for (const b of sent) t.true(b.length <= sendMaxLen(1500));
  m.stop();
  t.is(timers.size, 0);
});

test('master: a --sync-maxlen below one entry sends one entry per message (ip_vs_sync_buff_create)', (t) => {
  const { sent, m } = master({ maxLen: 1 });
  for (let i = 0; i < 3; i++) m.packet(source(i));
  m.flush();
  t.deepEqual(
    sent.map((b) => [b.length, b[4], decodeMessage(b).conns[0].cport]),
    [
      [44, 1, 10000],
      [44, 1, 10001],
      [44, 1, 10002],
    ],
  );
});

test('master: packets below the threshold send nothing; the timeout travels in seconds', (t) => {
  const { sent, m } = master();
  m.packet(source(1, { inpkts: 1 }));
  m.packet(source(1, { inpkts: 2 }));
  m.flush();
  t.is(sent.length, 0);
  m.packet(source(1, { inpkts: 3, timeoutMs: 899_999 }));
  m.flush();
  t.is(decodeMessage(sent[0]).conns[0].timeout, 899);
});

test('master: the persistence template is synced with its connection, at a reduced rate', (t) => {
  const { sent, m } = master();
  const tpl = source(0, { protocol: TCP, cport: 0, flags: CONN_F_TEMPLATE | 0x3, state: 0, timeoutMs: 360_000 });
  const c = source(1, { controlledBy: tpl });
  m.packet(c);
  m.flush();
  const d = decodeMessage(sent[0]);
  t.deepEqual(
    d.conns.map((x) => [x.cport, x.flags & CONN_F_TEMPLATE, x.timeout]),
    [
      [10001, 0, 900],
      [0, CONN_F_TEMPLATE, 360],
    ],
  );
  // a ONE_PACKET connection is never sent itself, but its template is
  const one = source(2, { protocol: UDP, state: 0, flags: CONN_F_ONE_PACKET, controlledBy: tpl });
  m.packet(one);
  m.flush();
  t.deepEqual(
    decodeMessage(sent[1]).conns.map((x) => x.cport),
    [0],
  );
});
