/** The IPVS sync message codec: golden bytes from the struct layouts, truncation, fuzz, syncid, oversize, v0. */
import test from 'ava';
import {
  CONN_F_SYNC,
  decodeMessage,
  encodeMessages,
  recvMaxLen,
  SIMPLE_CONN_SIZE,
  type SyncConn,
  SyncMessageBuilder,
  sendMaxLen,
} from '../src/ha/sync/codec.js';
import { seeded } from './seeded.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

const tcp4: SyncConn = {
  family: 4,
  protocol: 6,
  flags: 0x0083, // DROUTE | NOOUTPUT
  state: 1, // ESTABLISHED
  caddr: '192.168.1.10',
  cport: 40000,
  vaddr: '10.0.0.100',
  vport: 80,
  daddr: '10.0.1.11',
  dport: 80,
  fwmark: 0x2710,
  timeout: 900,
};

// struct ip_vs_sync_mesg: reserved, syncid, size, nr_conns, version, spare — then struct ip_vs_sync_v4
const TCP4_MSG = hex(`
  00 01 002c 01 01 0000
  00 06 0024 00000083 0001 9c40 0050 0050 00002710 00000384 c0a8010a 0a000064 0a00010b`);

test('v4 entry: golden bytes', (t) => {
  const [m] = encodeMessages(1, [tcp4], 1444);
  t.deepEqual(m, TCP4_MSG);
  const d = decodeMessage(m);
  t.is(d.dropped, undefined);
  t.is(d.version, 1);
  t.is(d.syncid, 1);
  // the receiver masks flags to IP_VS_CONN_F_BACKUP_MASK and marks them SYNC
  t.deepEqual(d.conns, [{ ...tcp4, flags: 0x0083 | CONN_F_SYNC }]);
});

const withSeq: SyncConn = {
  ...tcp4,
  flags: 0x0003 | 0x0400, // DROUTE | IN_SEQ
  seq: {
    in: { initSeq: 0x01020304, delta: 5, previousDelta: 6 },
    out: { initSeq: 0x0a0b0c0d, delta: 7, previousDelta: 8 },
  },
};
const udp6: SyncConn = {
  family: 6,
  protocol: 17,
  flags: 0x0000, // MASQ
  state: 0,
  caddr: '2001:db8::1',
  cport: 5353,
  vaddr: '2001:db8::100',
  vport: 53,
  daddr: '2001:db8:1::11',
  dport: 53,
  fwmark: 0,
  timeout: 300,
};

test('seq option, 4-byte padding, v6 entry: golden bytes', (t) => {
  const [m] = encodeMessages(7, [withSeq, udp6], 1444);
  const expected = hex(`
    00 07 0090 02 01 0000
    00 06 003e 00000403 0001 9c40 0050 0050 00002710 00000384 c0a8010a 0a000064 0a00010b
      01 18 01020304 00000005 00000006 0a0b0c0d 00000007 00000008
    0000
    01 11 0048 00000000 0000 14e9 0035 0035 00000000 0000012c
      20010db8000000000000000000000001
      20010db8000000000000000000000100
      20010db8000100000000000000000011`);
  t.deepEqual(m, expected);
  const d = decodeMessage(m);
  t.is(d.dropped, undefined);
  t.deepEqual(d.conns, [
    { ...withSeq, flags: withSeq.flags | CONN_F_SYNC },
    { ...udp6, flags: CONN_F_SYNC },
  ]);
});

test('templates: state forced to 0, protocol not checked', (t) => {
  const tpl: SyncConn = { ...tcp4, protocol: 0, flags: 0x1003, state: 0, cport: 0, timeout: 360 };
  const [m] = encodeMessages(1, [tpl], 1444);
  m.writeUInt16BE(5, 8 + 8); // a state on a template
  const d = decodeMessage(m);
  t.deepEqual(d.conns, [{ ...tpl, flags: 0x1003 | CONN_F_SYNC, state: 0 }]);
});

test('message size follows the MTU; messages split when full', (t) => {
  t.is(sendMaxLen(1500), 4 + 24 * 60);
  t.is(sendMaxLen(65535), 4 + 24 * 255);
  t.is(recvMaxLen(1500), 1472);
  const conns = Array.from({ length: 100 }, (_, i) => ({ ...tcp4, cport: 1000 + i }));
  const msgs = encodeMessages(3, conns, sendMaxLen(1500));
  t.deepEqual(
    msgs.map((m) => m[4]),
    [39, 39, 22],
  );
  for (const m of msgs) t.true(m.length <= 1444);
  t.deepEqual(
    msgs.flatMap((m) => decodeMessage(m).conns.map((c) => c.cport)),
    conns.map((c) => c.cport),
  );
  const b = new SyncMessageBuilder(1, 8 + 36);
  t.true(b.add(tcp4));
  t.false(b.add(tcp4));
  t.is(b.nrConns, 1);
  t.throws(() => encodeMessages(1, [udp6], 40), { instanceOf: RangeError });
});

test('wrong syncid is dropped; syncid 0 on the backup accepts all', (t) => {
  t.is(decodeMessage(TCP4_MSG, { syncid: 2 }).dropped, 'syncid');
  t.deepEqual(decodeMessage(TCP4_MSG, { syncid: 2 }).conns, []);
  t.is(decodeMessage(TCP4_MSG, { syncid: 1 }).dropped, undefined);
  t.is(decodeMessage(TCP4_MSG, { syncid: 0 }).dropped, undefined);
});

test('oversize datagrams are rejected', (t) => {
  const conns = Array.from({ length: 60 }, (_, i) => ({ ...tcp4, cport: i + 1 }));
  const [big] = encodeMessages(1, conns, 65000);
  t.is(decodeMessage(big, { maxLen: recvMaxLen(1500) }).dropped, 'oversize');
});

test('every truncation is rejected without a crash', (t) => {
  const [m] = encodeMessages(7, [withSeq, udp6, tcp4], 1444);
  for (let len = 0; len < m.length; len++) {
    const cut = Buffer.from(m.subarray(0, len));
    const d = decodeMessage(cut);
    t.truthy(d.dropped, `length ${len}`);
    // with the header's size patched to match, the entries themselves are found short
    if (len >= 4) {
      cut.writeUInt16BE(len, 2);
      const e = decodeMessage(cut);
      if (len >= 8) t.truthy(e.dropped, `patched length ${len}`);
      // shorter than the v1 header, reserved 0 reads as a v0 header announcing no connections
      else t.like(e, { version: 0, conns: [], dropped: undefined }, `patched length ${len}`);
    }
  }
});

test('drop reasons: bad header size, entry type, entry version, overrun, bad options', (t) => {
  const m = () => Buffer.from(TCP4_MSG);
  const bad = (f: (b: Buffer) => void) => {
    const b = m();
    f(b);
    return decodeMessage(b).dropped;
  };
  t.is(
    bad((b) => b.writeUInt16BE(45, 2)),
    'size-mismatch',
  );
  t.is(
    bad((b) => (b[8] = 2)),
    'conn-type',
  );
  t.is(
    bad((b) => b.writeUInt16BE(0x1024, 10)),
    'conn-version',
  );
  t.is(
    bad((b) => b.writeUInt16BE(0x0030, 10)),
    'conn-overrun',
  );
  t.is(decodeMessage(Buffer.from([0, 1])).dropped, 'header-short');
  // an option header with a zero length
  const opt = Buffer.concat([TCP4_MSG, hex('01 00 0000')]);
  opt.writeUInt16BE(opt.length, 2);
  opt.writeUInt16BE(40, 10);
  t.is(decodeMessage(opt).dropped, 'option-length');
  // a seq option of the wrong size
  const seq = Buffer.concat([TCP4_MSG, hex('01 02 0000')]);
  seq.writeUInt16BE(seq.length, 2);
  seq.writeUInt16BE(40, 10);
  t.is(decodeMessage(seq).dropped, 'option-seq');
  // a lone byte after the entry: an option header cannot fit
  const short = Buffer.concat([TCP4_MSG, hex('01')]);
  short.writeUInt16BE(short.length, 2);
  short.writeUInt16BE(37, 10);
  t.is(decodeMessage(short).dropped, 'option-short');
});

test('skips: unknown mandatory parameter, unknown protocol, bad state, persistence-engine data', (t) => {
  const entry = (patch: (b: Buffer) => void, extra = '') => {
    const [one] = encodeMessages(1, [tcp4], 1444);
    const e = Buffer.concat([one.subarray(8), hex(extra)]);
    e.writeUInt16BE(e.length, 2);
    patch(e);
    return e;
  };
  const msg = (...entries: Buffer[]) => {
    const padded = entries.map((e, i) =>
      i < entries.length - 1 ? Buffer.concat([e, Buffer.alloc((4 - (e.length & 3)) & 3)]) : e,
    );
    const body = Buffer.concat(padded);
    const h = Buffer.from([0, 1, 0, 0, entries.length, 1, 0, 0]);
    h.writeUInt16BE(8 + body.length, 2);
    return Buffer.concat([h, body]);
  };
  const good = entry(() => {});
  const d = decodeMessage(
    msg(
      entry(() => {}, '05 02 aabb'), // unknown mandatory parameter type 5
      entry(() => {}, '45 02 aabb'), // type 5 with IPVS_OPT_F_PARAM: ignored, entry used
      entry((e) => (e[1] = 47)), // GRE: no IPVS protocol
      entry((e) => e.writeUInt16BE(11, 8)), // TCP state 11 (LAST)
      entry(() => {}, '02 02 aabb'), // sip persistence data
      good,
    ),
  );
  t.is(d.dropped, undefined);
  t.deepEqual(d.skipped, ['unknown-param', 'protocol', 'state', 'pe']);
  t.is(d.conns.length, 2);
});

test('entries before a bad one are kept, as the kernel applied them', (t) => {
  const [m] = encodeMessages(1, [tcp4, { ...tcp4, cport: 2 }], 1444);
  m[8 + 36] = 4; // second entry: an unknown type
  const d = decodeMessage(m);
  t.is(d.dropped, 'conn-type');
  t.is(d.conns.length, 1);
});

test('version 0 messages are understood', (t) => {
  // struct ip_vs_sync_mesg_v0 + struct ip_vs_sync_conn_v0
  const v0 = hex(`
    01 05 001c
    00 06 9c40 0050 0050 c0a8010a 0a000064 0a00010b 0003 0001`);
  const d = decodeMessage(v0);
  t.is(d.version, 0);
  t.is(d.dropped, undefined);
  t.deepEqual(d.conns, [{ ...tcp4, flags: 0x0003 | CONN_F_SYNC, fwmark: 0, timeout: 0 }]);
  t.is(SIMPLE_CONN_SIZE, 24);
  const cut = Buffer.from(v0.subarray(0, 20));
  cut.writeUInt16BE(20, 2);
  t.is(decodeMessage(cut).dropped, 'v0-conn-short');
});

test('fuzz: random and mutated datagrams never throw, and what decodes re-encodes', (t) => {
  const r = seeded(1234);
  const [base] = encodeMessages(9, [withSeq, udp6, tcp4], 1444);
  const reasons = new Map<string, number>();
  let decoded = 0;
  for (let i = 0; i < 20000; i++) {
    let b: Buffer;
    if (i % 4 === 0) {
      b = Buffer.alloc(Math.floor(r() * 200));
      for (let j = 0; j < b.length; j++) b[j] = Math.floor(r() * 256);
    } else {
      b = Buffer.from(base);
      const flips = 1 + Math.floor(r() * 4);
      for (let j = 0; j < flips; j++) b[Math.floor(r() * b.length)] = Math.floor(r() * 256);
      if (r() < 0.5) b.writeUInt16BE(b.length, 2);
    }
    const d = decodeMessage(b, { maxLen: 1472 });
    if (d.dropped) reasons.set(d.dropped, (reasons.get(d.dropped) ?? 0) + 1);
    for (const c of d.conns) {
      decoded++;
      // a decoded entry is a valid entry: it encodes again
      t.notThrows(() => encodeMessages(1, [c], 65000));
    }
  }
  t.true(decoded > 0);
  t.true(reasons.size >= 5, [...reasons.keys()].join(','));
});
