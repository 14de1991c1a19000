/**
 * Consistent forwarding across directors behind ECMP: each director is its own engine with the same service and
 * real servers; a flow opened on one director (SYN) whose next packet lands on another (ACK, no entry there) is
 * forwarded there to the same real server when sloppy_tcp is on and the scheduler hashes (mh, sh, dh); without
 * sloppy_tcp the packet is dropped (not-new: the flow stalls); with rr the second director picks another server for
 * about half of the flows (the server answers RST: those flows break unless the sync daemon copied the entry first).
 */
import test from 'ava';
import { SVC_F_SCHED2 } from '../src/l4/service.js';
import { ACK, addService, PSH, pkt, SYN, setup } from './engine-fixture.js';

const SERVERS = ['192.168.1.1', '192.168.1.2', '192.168.1.3', '192.168.1.4', '192.168.1.5'];

function director(sched: string, sloppy: boolean) {
  const { eng } = setup({ sysctl: { sloppy_tcp: sloppy ? 1 : 0 } });
  addService(eng, { sched, dests: SERVERS });
  return eng;
}

/** 200 flows from different clients and ports: opened on `a`, continued on `b`; where each one went */
function moveFlows(sched: string, sloppy: boolean) {
  const a = director(sched, true);
  const b = director(sched, sloppy);
  // b has served flows of its own before (a scheduler with state, rr, is then elsewhere in its cycle)
  for (let i = 0; i < 3; i++) b.process(pkt({ saddr: '172.31.0.1', sport: 20000 + i, tcpFlags: SYN }));
  let same = 0;
  let other = 0;
  let dropped = 0;
  for (let i = 0; i < 200; i++) {
    const flow = { saddr: `172.16.${i >> 4}.${(i * 7) % 250}`, sport: 30000 + i * 13 };
    const first = a.process(pkt({ ...flow, tcpFlags: SYN }));
    if (first.kind !== 'forward') throw new Error(`SYN not forwarded: ${JSON.stringify(first)}`);
    const next = b.process(pkt({ ...flow, tcpFlags: ACK | PSH }));
    if (next.kind !== 'forward') dropped++;
    else if (next.dest.addr === first.dest.addr) same++;
    else other++;
  }
  return { same, other, dropped };
}

for (const sched of ['mh', 'sh', 'dh']) {
  test(`${sched} + sloppy_tcp: a mid-flow packet on another director goes to the same real server`, (t) => {
    t.deepEqual(moveFlows(sched, true), { same: 200, other: 0, dropped: 0 });
  });
}

test('without sloppy_tcp the other director drops it (not-new): the flow stalls', (t) => {
  t.deepEqual(moveFlows('mh', false), { same: 0, other: 0, dropped: 200 });
});

test('rr + sloppy_tcp: the other director picks its own server for most flows', (t) => {
  const r = moveFlows('rr', true);
  t.is(r.dropped, 0);
  t.true(r.other > 100, JSON.stringify(r));
});

test('mh-port spreads one client over the servers and stays consistent', (t) => {
  const a = director('mh', true);
  const b = director('mh', true);
  // the same service with mh-port on both
  for (const e of [a, b]) {
    e.table.delService({ kind: 'tcp', family: 4, addr: '10.0.0.1', port: 80 });
    addService(e, { sched: 'mh', flags: SVC_F_SCHED2, dests: SERVERS });
  }
  const seen = new Set<string>();
  for (let i = 0; i < 50; i++) {
    const first = a.process(pkt({ sport: 40000 + i, tcpFlags: SYN }));
    const next = b.process(pkt({ sport: 40000 + i, tcpFlags: ACK }));
    if (first.kind !== 'forward' || next.kind !== 'forward') return t.fail();
    t.is(next.dest.addr, first.dest.addr);
    seen.add(first.dest.addr);
  }
  t.true(seen.size > 1);
});
