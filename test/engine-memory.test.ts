import test from 'ava';
import { DEFAULT_SYSCTL, DEFENSE_DEFAULTS, directorFromConfig } from '../src/director/config.js';
import { applyEngineSysctl } from '../src/director/engine-sysctl.js';
import { renderMetrics } from '../src/director/metrics.js';
import type { MetricsSnapshot } from '../src/director/worker-ha.js';
import { Connection, connAddrs } from '../src/l4/conn/conn.js';
import { CONN_ENTRY_BYTES, CONN6_ENTRY_BYTES } from '../src/l4/conn/table.js';
import { newCounters } from '../src/l4/datapath/forward.js';
import { PacketParser } from '../src/l4/datapath/packet.js';
import { ACK, addService, checkInvariants, pkt, SYN, seeded, setup } from './engine-fixture.js';

const ip = (n: number) => `100.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;

test('the director turns the memory defenses on by default, bound by conn_table_bytes', (t) => {
  const { eng } = setup();
  t.is(eng.sysctl.drop_entry, 0, 'the engine alone keeps the kernel defaults');
  applyEngineSysctl(eng, DEFAULT_SYSCTL);
  t.is(eng.sysctl.drop_entry, DEFENSE_DEFAULTS.dropEntry);
  t.is(eng.sysctl.secure_tcp, DEFENSE_DEFAULTS.secureTcp);
  t.is(eng.sysctl.drop_packet, 0);
  t.is(eng.conns.maxConns, Math.floor(DEFENSE_DEFAULTS.connTableBytes / CONN_ENTRY_BYTES));
  // amemthresh is the kernel's 1024 pages, as entries of the measured size
  t.is(eng.sysctl.amemthresh, Math.ceil((1024 * 4096) / CONN_ENTRY_BYTES));
  // a config's values win
  const plan = directorFromConfig({
    director: { sysctl: { drop_entry: 0, secure_tcp: 3, amemthresh: 8, conn_table_bytes: 1 << 20 } },
  });
  applyEngineSysctl(eng, plan.sysctl);
  t.is(eng.sysctl.drop_entry, 0);
  t.is(eng.sysctl.secure_tcp, 3);
  t.is(eng.conns.maxConns, Math.floor((1 << 20) / CONN_ENTRY_BYTES));
  t.is(eng.sysctl.amemthresh, Math.ceil((8 * 4096) / CONN_ENTRY_BYTES));
});

test('a SYN flood cannot take the table past its memory bound; the defenses switch on and legit clients get in', (t) => {
  const { eng, clock } = setup();
  const { dests } = addService(eng, { dests: ['192.168.1.1', '192.168.1.2'] });
  const bound = 4000 * CONN_ENTRY_BYTES;
  // 100 pages ≈ 1500 entries of room left: the defenses' threshold
  applyEngineSysctl(eng, { ...DEFAULT_SYSCTL, connTableBytes: bound, amemthresh: 100 });
  t.is(eng.stats().maxTableBytes, bound);
  const rnd = seeded(3);
  let maxBytes = 0;
  let legit = 0;
  let secureSeen = false;
  let dropEntrySeen = false;
  for (let step = 0; step < 200; step++) {
    clock.advance(100);
    for (let i = 0; i < 400; i++) {
      eng.process(pkt({ saddr: ip(Math.floor(rnd() * 1e7)), sport: 1 + Math.floor(rnd() * 60000), tcpFlags: SYN }));
      maxBytes = Math.max(maxBytes, eng.stats().tableBytes);
    }
    const p = pkt({ saddr: '172.16.9.9', sport: 20000 + step, tcpFlags: SYN });
    if (eng.process(p).kind === 'forward' && eng.process({ ...p, tcpFlags: ACK }).kind === 'forward') legit++;
    eng.tick();
    secureSeen ||= eng.secureTcpActive;
    dropEntrySeen ||= eng.sysctl.drop_entry === 2;
  }
  const s = eng.stats();
  t.true(maxBytes <= bound, `${maxBytes} > ${bound}`);
  t.is(s.tableBytes, s.size * CONN_ENTRY_BYTES);
  t.is(s.bytesPerEntry, CONN_ENTRY_BYTES);
  t.true(secureSeen, 'secure_tcp went to 2 while memory was short');
  t.true(dropEntrySeen, 'drop_entry went to 2 while memory was short');
  t.is(legit, 200);
  checkInvariants(t, eng, dests);
});

test('a connection entry keeps its fields through the packed layout', (t) => {
  const { eng } = setup();
  const { id } = addService(eng);
  const svc = eng.table.get(id);
  if (!svc) return t.fail();
  const c = new Connection({
    protocol: 17,
    family: 4,
    caddr: '203.0.113.250',
    cport: 65535,
    vaddr: '10.0.0.1',
    vport: 80,
    daddr: '192.168.1.1',
    dport: 8080,
    svc,
    flags: 0x1000,
    fwmark: 7,
  });
  t.like(c, { protocol: 17, family: 4, caddr: '203.0.113.250', cport: 65535, vaddr: '10.0.0.1', vport: 80 });
  t.like(c, { daddr: '192.168.1.1', dport: 8080, fwmark: 7, template: true, nControl: 0, kernel: null });
  c.cport = 1;
  c.vport = 0xffff;
  c.dport = 0;
  c.nControl = 2;
  c.indexedOut = true;
  t.like(c, { cport: 1, vport: 0xffff, dport: 0, nControl: 2, indexedOut: true, indexedIn: false, protocol: 17 });
  const a6 = { ...connAddrs(c), caddr: '2001:db8::1', family: 6 as const, vaddr: '2001:db8::100' };
  const f = new Connection({ ...a6, svc, flags: 0, fwmark: 0 });
  t.like(f, { family: 6, caddr: '2001:db8::1', vaddr: '2001:db8::100', fwmark: 0, cport: 1, dport: 0 });
});

test('an IPv4 entry made from a parsed packet keeps the client address as a number (no string)', (t) => {
  const { eng } = setup();
  addService(eng, { vip: '10.77.1.100' });
  const b = new Uint8Array(40);
  b.set([0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 250, 1, 2, 3, 10, 77, 1, 100]);
  b.set([0x9c, 0x40, 0, 80, 0, 0, 0, 0, 0, 0, 0, 0, 0x50, SYN], 20);
  const p = new PacketParser();
  p.parse(b);
  const v = eng.process(p.pkt);
  if (v.kind !== 'forward') return t.fail();
  t.is(v.conn.caddr, '250.1.2.3');
  t.is(v.conn.caddr4 >>> 0, 0xfa010203);
  t.is(eng.conns.getIn4(6, 0xfa010203, 40000, 0x0a4d0164, 80), v.conn);
});

test('/metrics shows the table bytes, its bound and the bytes per entry', async (t) => {
  const { eng } = setup();
  addService(eng);
  eng.process(pkt({ tcpFlags: SYN }));
  const snap: MetricsSnapshot = {
    services: [],
    counters: newCounters(),
    sync: { daemons: [] },
    engine: eng.stats(),
  };
  const text = await renderMetrics(snap, { vrrpStates: new Map() });
  t.regex(text, new RegExp(`tierlb_ipvs_connection_table_bytes ${CONN_ENTRY_BYTES}\\n`));
  t.regex(text, new RegExp(`tierlb_ipvs_connection_entry_bytes ${CONN_ENTRY_BYTES}\\n`));
  t.regex(text, /tierlb_ipvs_connection_table_max_bytes \d+/);
});

test('IPv6 entries count at their own measured size: an IPv6 flood is held to the same byte bound', (t) => {
  const { eng } = setup();
  addService(eng, {
    id: { kind: 'tcp', family: 6, addr: '2001:db8::100', port: 80 },
    dests: ['2001:db8::11'],
  });
  const bound = 1000 * CONN_ENTRY_BYTES;
  applyEngineSysctl(eng, { ...DEFAULT_SYSCTL, connTableBytes: bound });
  for (let i = 0; i < 3000; i++)
    eng.process(pkt({ family: 6, saddr: `2001:db8:7::${i.toString(16)}`, daddr: '2001:db8::100', tcpFlags: SYN }));
  const s = eng.stats();
  t.true(s.tableBytes <= bound, `${s.tableBytes} > ${bound}`);
  t.is(s.tableBytes, s.size * CONN6_ENTRY_BYTES);
  t.true(s.size < 1000 && s.size >= Math.floor(bound / CONN6_ENTRY_BYTES) - 1, String(s.size));
});
