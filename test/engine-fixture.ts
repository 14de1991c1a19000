/** Shared setup for the connection-table and engine tests: manual clock, seeded random, packet builders, invariants. */
import type { ExecutionContext } from 'ava';
import { ManualClock } from '../src/common/clock.js';
import type { FwdMethod, RealServer } from '../src/l4/dest.js';
import { Engine, type EngineOptions, type PacketMeta } from '../src/l4/engine.js';
import type { ServiceId } from '../src/l4/service.js';
import { seeded } from './seeded.js';

/** TCP flag bits, as the packets the tests build carry them */
export { TH_ACK as ACK, TH_FIN as FIN, TH_PSH as PSH, TH_RST as RST, TH_SYN as SYN } from '../src/l4/conn/tcp.js';
export { seeded };

export function setup(o: Omit<EngineOptions, 'clock'> = {}): { clock: ManualClock; eng: Engine } {
  const clock = new ManualClock(1_000_000);
  const eng = new Engine({ random: seeded(42), ...o, clock });
  return { clock, eng };
}

export interface SvcOpts {
  id?: ServiceId;
  vip?: string;
  port?: number;
  proto?: 'tcp' | 'udp';
  sched?: string;
  timeout?: number;
  netmask?: number;
  flags?: number;
  fwd?: FwdMethod;
  dests?: (string | { addr: string; port?: number; weight?: number; fwd?: FwdMethod })[];
}

/** Add a service (rr by default) with real servers; returns the servers in the order given. */
export function addService(eng: Engine, o: SvcOpts = {}): { id: ServiceId; dests: RealServer[] } {
  const id: ServiceId = o.id ?? { kind: o.proto ?? 'tcp', family: 4, addr: o.vip ?? '10.0.0.1', port: o.port ?? 80 };
  eng.table.addService({
    id,
    sched: o.sched ?? 'rr',
    flags: o.flags ?? 0,
    timeout: o.timeout ?? 0,
    netmask: o.netmask ?? (id.family === 6 ? 128 : 0xffffffff),
  });
  const dests: RealServer[] = [];
  for (const d of o.dests ?? ['192.168.1.1', '192.168.1.2']) {
    const spec = typeof d === 'string' ? { addr: d } : d;
    dests.push(
      eng.table.addDest(id, {
        addr: spec.addr,
        port: spec.port ?? o.port ?? 80,
        fwd: spec.fwd ?? o.fwd ?? 'route',
        weight: spec.weight ?? 1,
        uThreshold: 0,
        lThreshold: 0,
      }),
    );
  }
  return { id, dests };
}

export function pkt(o: Partial<PacketMeta> = {}): PacketMeta {
  return {
    family: 4,
    protocol: 6,
    saddr: '172.16.0.1',
    sport: 40000,
    daddr: '10.0.0.1',
    dport: 80,
    fwmark: 0,
    tcpFlags: 0,
    length: 60,
    ...o,
  };
}

/** The reply to a client packet, as it leaves a NAT real server. */
export function reply(p: PacketMeta, dest: RealServer, o: Partial<PacketMeta> = {}): PacketMeta {
  return { ...p, saddr: dest.addr, sport: dest.port, daddr: p.saddr, dport: p.sport, ...o };
}

/**
 * The counters every real server must agree with: ActiveConn + InActConn equal the live connections bound to it,
 * split by their INACTIVE flag, PersistConn the live templates; n_control of each template equals its connections.
 */
export function checkInvariants(t: ExecutionContext, eng: Engine, servers: Iterable<RealServer>): void {
  const entries = eng.conns.entries();
  const active = new Map<RealServer, number>();
  const inact = new Map<RealServer, number>();
  const persist = new Map<RealServer, number>();
  const controlled = new Map<unknown, number>();
  for (const c of entries) {
    t.true(c.live);
    const d = c.dest;
    if (!d) continue;
    const m = c.template ? persist : c.inactive ? inact : active;
    m.set(d, (m.get(d) ?? 0) + 1);
    if (c.controlledBy) {
      t.true(c.controlledBy.live, 'a controlling template is in the table');
      controlled.set(c.controlledBy, (controlled.get(c.controlledBy) ?? 0) + 1);
    }
  }
  for (const c of entries) t.is(c.nControl, controlled.get(c) ?? 0, 'n_control');
  for (const d of servers) {
    t.is(d.activeConns, active.get(d) ?? 0, `${d} ActiveConn`);
    t.is(d.inactConns, inact.get(d) ?? 0, `${d} InActConn`);
    t.is(d.persistConns, persist.get(d) ?? 0, `${d} PersistConn`);
  }
  t.is(eng.stats().size, entries.length);
}
