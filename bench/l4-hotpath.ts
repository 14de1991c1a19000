/**
 * `npm run bench:l4:hotpath`: the director's per-packet handling code alone, no kernel and no socket — pre-built
 * NFQUEUE datagrams go through the same steps as in the data-path worker (netlink message parse, packet parse, engine
 * decision, verdict encoded into the batch buffer), in a loop. Reports ns per packet and the share of the time spent
 * in garbage collection, per traffic shape. Writes bench/results/l4-hotpath.json.
 * L4_HOTPATH_MS sets the measuring time per round (default 400 ms, best of 5 rounds).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { PerformanceObserver, performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { ipv6ToBytes } from '../src/common/addr.js';
import { systemClock } from '../src/common/clock.js';
import { DIVERT_MARK, REPLY_MARK } from '../src/fwmark/plan.js';
import { ipv4HeaderChecksum } from '../src/l4/datapath/csum.js';
import { Forwarder } from '../src/l4/datapath/forward.js';
import { MessagePool, type NlMessage, parseMessages, VerdictBatch } from '../src/l4/datapath/nfqmsg.js';
import { Engine } from '../src/l4/engine.js';
import { packetMsg } from '../test/datapath-fixture.js';

const ROUND_MS = Number(process.env.L4_HOTPATH_MS ?? 400);
const ROUNDS = 5;
const VIP = '10.77.1.100';
const VIP6 = '2001:db8::100';

interface Row {
  system: 'tierlb';
  metric: string;
  value: number;
  unit: string;
}

const ip4 = (s: string) => s.split('.').map(Number);

/** An IPv4 or IPv6 TCP/UDP packet (checksums are not looked at on this path, except the IPv4 header's for NAT). */
function ipPacket(o: {
  family: 4 | 6;
  proto: 6 | 17;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  flags?: number;
  data?: number;
}): Uint8Array {
  const l4 = o.proto === 6 ? 20 : 8;
  const data = o.data ?? 18;
  const hl = o.family === 4 ? 20 : 40;
  const b = new Uint8Array(hl + l4 + data);
  if (o.family === 4) {
    b[0] = 0x45;
    b[2] = b.length >> 8;
    b[3] = b.length & 0xff;
    b[6] = 0x40;
    b[8] = 64;
    b[9] = o.proto;
    b.set(ip4(o.src), 12);
    b.set(ip4(o.dst), 16);
    const c = ipv4HeaderChecksum(b, 0, 20);
    b[10] = c >> 8;
    b[11] = c & 0xff;
  } else {
    b[0] = 0x60;
    b[4] = (l4 + data) >> 8;
    b[5] = (l4 + data) & 0xff;
    b[6] = o.proto;
    b[7] = 64;
    b.set(ipv6ToBytes(o.src), 8);
    b.set(ipv6ToBytes(o.dst), 24);
  }
  b[hl] = o.sport >> 8;
  b[hl + 1] = o.sport & 0xff;
  b[hl + 2] = o.dport >> 8;
  b[hl + 3] = o.dport & 0xff;
  if (o.proto === 6) {
    b[hl + 12] = 0x50;
    b[hl + 13] = o.flags ?? 0x10;
    b[hl + 14] = 0xff;
  } else {
    b[hl + 4] = (8 + data) >> 8;
    b[hl + 5] = (8 + data) & 0xff;
  }
  return b;
}

interface Scenario {
  name: string;
  /** a fresh engine + forwarder and the datagrams to feed it (a round runs over them again and again) */
  setup(): { fwd: Forwarder; datagrams: Uint8Array[]; fresh: boolean };
}

function engineWith(
  services: { kind: 'tcp' | 'udp'; family: 4 | 6; addr: string; port: number; fwd: 'route' | 'masq' }[],
) {
  const engine = new Engine({ clock: systemClock, maxConns: 1 << 22 });
  for (const s of services) {
    const id = { kind: s.kind, family: s.family, addr: s.addr, port: s.port } as const;
    engine.table.addService({ id, sched: 'rr', flags: 0, timeout: 0, netmask: s.family === 4 ? 0xffffffff : 128 });
    for (const rs of s.family === 4 ? ['10.77.1.11', '10.77.1.12'] : ['2001:db8::11', '2001:db8::12'])
      engine.table.addDest(id, { addr: rs, port: s.port, fwd: s.fwd, weight: 1, uThreshold: 0, lThreshold: 0 });
  }
  return engine;
}

/** Client i's address (spread over a /16) and port. */
const client4 = (i: number) => `10.${78 + ((i >> 16) & 7)}.${(i >> 8) & 255}.${i & 255}`;
const client6 = (i: number) => `2001:db8:1::${(i >> 16).toString(16)}:${(i & 0xffff).toString(16)}`;

/** Established flows: the first pass (warm-up) creates them, the measured passes find them. */
function established(name: string, family: 4 | 6, proto: 6 | 17, fwd: 'route' | 'masq', flows = 4096): Scenario {
  return {
    name,
    setup() {
      const vip = family === 4 ? VIP : VIP6;
      const engine = engineWith([{ kind: proto === 6 ? 'tcp' : 'udp', family, addr: vip, port: 80, fwd }]);
      const f = new Forwarder(engine, sink.io);
      const datagrams: Uint8Array[] = [];
      for (let i = 0; i < flows; i++) {
        const src = family === 4 ? client4(i) : client6(i);
        const sport = 1024 + (i % 60000);
        // open TCP flows with a SYN outside the measured loop
        if (proto === 6)
          handleOne(
            f,
            packetMsg(i, DIVERT_MARK, ipPacket({ family, proto, src, dst: vip, sport, dport: 80, flags: 0x02 })),
          );
        datagrams.push(packetMsg(i, DIVERT_MARK, ipPacket({ family, proto, src, dst: vip, sport, dport: 80 })));
      }
      return { fwd: f, datagrams, fresh: false };
    },
  };
}

/** NAT replies of established flows (RIP:80 → CIP:cport, the reply mark). */
function natReplies(flows = 4096): Scenario {
  return {
    name: 'tcp4_nat_reply',
    setup() {
      const engine = engineWith([{ kind: 'tcp', family: 4, addr: VIP, port: 80, fwd: 'masq' }]);
      const f = new Forwarder(engine, sink.io);
      const datagrams: Uint8Array[] = [];
      for (let i = 0; i < flows; i++) {
        const src = client4(i);
        const sport = 1024 + (i % 60000);
        handleOne(
          f,
          packetMsg(i, DIVERT_MARK, ipPacket({ family: 4, proto: 6, src, dst: VIP, sport, dport: 80, flags: 0x02 })),
        );
      }
      for (const c of engine.conns.entries())
        datagrams.push(
          packetMsg(
            1,
            REPLY_MARK,
            ipPacket({ family: 4, proto: 6, src: c.daddr, dst: c.caddr, sport: c.dport, dport: c.cport, flags: 0x12 }),
          ),
        );
      return { fwd: f, datagrams, fresh: false };
    },
  };
}

/** New connections: every datagram is a SYN of a flow not seen before (a fresh engine per pass). */
function newConns(flows = 32768): Scenario {
  return {
    name: 'tcp4_dr_new',
    setup() {
      const engine = engineWith([{ kind: 'tcp', family: 4, addr: VIP, port: 80, fwd: 'route' }]);
      const f = new Forwarder(engine, sink.io);
      const datagrams: Uint8Array[] = [];
      for (let i = 0; i < flows; i++)
        datagrams.push(
          packetMsg(
            i,
            DIVERT_MARK,
            ipPacket({
              family: 4,
              proto: 6,
              src: client4(i),
              dst: VIP,
              sport: 1024 + (i % 60000),
              dport: 80,
              flags: 0x02,
            }),
          ),
        );
      return { fwd: f, datagrams, fresh: true };
    },
  };
}

/** Where verdicts go: the worker's batch buffer, sent (here: dropped) every 32 verdicts as the pump does. */
const batch = new VerdictBatch(0);
const sink = {
  io: {
    verdict: (id: number, v: number, mark?: number, payload?: Uint8Array) => batch.add(id, v, mark, payload),
    sendRaw: () => true,
  },
};

const msgs: NlMessage[] = [];
const pool = new MessagePool();

function handleOne(f: Forwarder, d: Uint8Array): void {
  parseMessages(d, d.length, msgs, pool);
  for (let i = 0; i < msgs.length; i++) {
    const m = msgs[i];
    if (m.kind === 'packet') f.handle(m.pkt);
  }
  msgs.length = 0;
  if (batch.count >= 32) batch.reset();
}

let gcMs = 0;
/** measured intervals [start, end, start, end, ...]: only collections that start inside one are counted */
const windows: number[] = [];
const obs = new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    for (let i = 0; i < windows.length; i += 2)
      if (e.startTime >= windows[i] && e.startTime < windows[i + 1]) {
        gcMs += e.duration;
        break;
      }
  }
});
obs.observe({ entryTypes: ['gc'] });

/** Flush pending GC entries (the observer is called asynchronously). */
const settle = () => new Promise((r) => setTimeout(r, 20));

async function run(s: Scenario): Promise<{ ns: number; gcShare: number; packets: number }> {
  let best = { ns: Number.POSITIVE_INFINITY, gcShare: 0, packets: 0 };
  let cur = s.setup();
  // warm-up: one pass (creates the flows of established scenarios, lets the JIT settle)
  for (const d of cur.datagrams) handleOne(cur.fwd, d);
  for (let round = 0; round < ROUNDS; round++) {
    await settle();
    gcMs = 0;
    windows.length = 0;
    let packets = 0;
    let measured = 0;
    while (measured < ROUND_MS) {
      // a fresh table for each pass of new connections; its setup is not measured
      if (cur.fresh) cur = s.setup();
      const ds = cur.datagrams;
      const t0 = performance.now();
      for (let i = 0; i < ds.length; i++) handleOne(cur.fwd, ds[i]);
      const t1 = performance.now();
      windows.push(t0, t1);
      measured += t1 - t0;
      packets += ds.length;
    }
    await settle();
    const ns = (measured * 1e6) / packets;
    if (ns < best.ns) best = { ns, gcShare: gcMs / measured, packets };
  }
  return best;
}

async function main(): Promise<void> {
  const scenarios = [
    established('udp4_dr_established', 4, 17, 'route'),
    established('tcp4_dr_established', 4, 6, 'route'),
    established('tcp4_nat_established', 4, 6, 'masq'),
    natReplies(),
    established('udp6_dr_established', 6, 17, 'route'),
    newConns(),
  ];
  const only = process.argv[2];
  const rows: Row[] = [];
  for (const s of scenarios) {
    if (only && !s.name.includes(only)) continue;
    const r = await run(s);
    process.stderr.write(
      `${s.name}: ${r.ns.toFixed(0)} ns/packet (${(1e9 / r.ns / 1000).toFixed(0)}k pkt/s on one core), gc ${(r.gcShare * 100).toFixed(1)}%\n`,
    );
    rows.push({ system: 'tierlb', metric: `${s.name}_ns_per_packet`, value: Math.round(r.ns), unit: 'ns/packet' });
    rows.push({ system: 'tierlb', metric: `${s.name}_gc_share`, value: Math.round(r.gcShare * 1000) / 10, unit: '%' });
  }
  obs.disconnect();
  if (only) return;
  const out = join(dirname(fileURLToPath(import.meta.url)), 'results', 'l4-hotpath.json');
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(rows, null, 2)}\n`);
  process.stdout.write(`wrote ${out}\n`);
}

main().catch((e) => {
  process.stderr.write(`bench:l4:hotpath: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
