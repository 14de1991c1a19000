/**
 * `npm run bench:conn-bytes`: the connection table's memory per entry, measured in-process. An engine with one TCP
 * service (DR, then NAT) takes N SYNs from distinct random sources through the same path as the data path (a
 * PacketParser view with numeric addresses); the V8 heap (after global.gc) before and after, divided by N, is the
 * figure (IPv4, then IPv6: an IPv6 entry also keeps its addresses' strings and words). Run with --expose-gc (the npm script does). CONN_BYTES_N sets N (default 1,000,000: the flood benchmark's table). Writes
 * bench/results/conn-bytes.json. The director's stats and /metrics estimate the table's bytes as entries × this
 * figure (CONN_ENTRY_BYTES in src/l4/conn/table.ts).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ipv6ToBytes } from '../src/common/addr.js';
import { ManualClock } from '../src/common/clock.js';
import { PacketParser } from '../src/l4/datapath/packet.js';
import type { FwdMethod } from '../src/l4/dest.js';
import { Engine } from '../src/l4/engine.js';

const N = Number(process.env.CONN_BYTES_N ?? 1_000_000);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) {
  console.error('run with node --expose-gc (npm run bench:conn-bytes does)');
  process.exit(2);
}

function heap(): number {
  for (let i = 0; i < 3; i++) gc?.();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

function synPacket(src: number, sport: number): Uint8Array {
  const b = new Uint8Array(40);
  b[0] = 0x45;
  b[3] = 40;
  b[6] = 0x40;
  b[8] = 64;
  b[9] = 6;
  b[12] = src >>> 24;
  b[13] = (src >>> 16) & 0xff;
  b[14] = (src >>> 8) & 0xff;
  b[15] = src & 0xff;
  b.set([10, 77, 1, 100], 16);
  b[20] = sport >> 8;
  b[21] = sport & 0xff;
  b[23] = 80;
  b[32] = 0x50;
  b[33] = 0x02;
  return b;
}

function syn6Packet(): Uint8Array {
  const b = new Uint8Array(60);
  b[0] = 0x60;
  b[5] = 20;
  b[6] = 6;
  b[7] = 64;
  b.set(ipv6ToBytes('2001:db8:1::'), 8);
  b.set(ipv6ToBytes('2001:db8::100'), 24);
  b[43] = 80;
  b[52] = 0x50;
  b[53] = 0x02;
  return b;
}

function measure(fwd: FwdMethod, family: 4 | 6 = 4): { fwd: string; entries: number; bytesPerEntry: number } {
  const eng = new Engine({ clock: new ManualClock(1_000_000), maxConns: N * 2 });
  const vip = family === 4 ? '10.77.1.100' : '2001:db8::100';
  const id = { kind: 'tcp' as const, family, addr: vip, port: 80 };
  eng.table.addService({ id, sched: 'rr', flags: 0, timeout: 0, netmask: family === 4 ? 0xffffffff : 128 });
  for (const a of family === 4 ? ['10.77.1.11', '10.77.1.12'] : ['2001:db8::11', '2001:db8::12'])
    eng.table.addDest(id, { addr: a, port: 80, fwd, weight: 1, uThreshold: 0, lThreshold: 0 });
  const parser = new PacketParser();
  const pkt = family === 4 ? synPacket(0, 0) : syn6Packet();
  // the table's own arrays grow by doubling: warm it to the size measured so the figure is the entries' cost
  let x = 0x0b000000;
  const fill = (n: number) => {
    for (let i = 0; i < n; i++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      const src = (0x0b000000 | (x & 0x00ffffff)) >>> 0;
      const sport = 1024 + (i % 60000);
      if (family === 4) pkt.set(synPacket(src, sport).subarray(12, 24), 12);
      else {
        pkt[20] = src >>> 24;
        pkt[21] = (src >>> 16) & 0xff;
        pkt[22] = (src >>> 8) & 0xff;
        pkt[23] = src & 0xff;
        pkt[40] = sport >> 8;
        pkt[41] = sport & 0xff;
      }
      parser.parse(pkt);
      eng.process(parser.pkt);
    }
  };
  const before = heap();
  fill(N);
  const after = heap();
  const entries = eng.conns.size;
  return { fwd: family === 4 ? fwd : `${fwd} IPv6`, entries, bytesPerEntry: Math.round((after - before) / entries) };
}

const rows = [measure('route'), measure('masq'), measure('route', 6), measure('masq', 6)];
for (const r of rows) console.log(`${r.fwd}: ${r.entries} entries, ${r.bytesPerEntry} bytes per entry`);
const out = join(dirname(fileURLToPath(import.meta.url)), 'results', 'conn-bytes.json');
mkdirSync(dirname(out), { recursive: true });
writeFileSync(
  out,
  `${JSON.stringify({ date: new Date().toISOString(), node: process.version, n: N, rows }, null, 2)}\n`,
);
