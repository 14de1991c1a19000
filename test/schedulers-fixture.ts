/** Shared setup for the scheduler tests: a real ServiceTable with a ManualClock and a controllable random source. */
import { ManualClock } from '../src/common/clock.js';
import type { RealServer } from '../src/l4/dest.js';
import type { SchedPacket } from '../src/l4/schedulers/types.js';
import type { ServiceId, VirtualService } from '../src/l4/service.js';
import { ServiceTable } from '../src/l4/services.js';
import { seeded } from './seeded.js';

export { seeded };

/** Letters for the real servers the tests add: A = 192.168.1.1, B = .2, ... */
export const ADDR: Record<string, string> = {};
for (const [i, l] of [...'ABCDEFGHIJ'].entries()) ADDR[l] = `192.168.1.${i + 1}`;
const LETTER = Object.fromEntries(Object.entries(ADDR).map(([l, a]) => [a, l]));

export function letter(d: RealServer | null): string {
  return d ? LETTER[d.addr] : '-';
}

export function pkt(saddr: string, sport = 40000, daddr = '10.0.0.1'): SchedPacket {
  return { family: 4, protocol: 6, saddr, sport, daddr, dport: 80 };
}

export interface Fixture {
  clock: ManualClock;
  table: ServiceTable;
  id: ServiceId;
  svc: VirtualService;
  /** add real server `l` (a letter) with a weight; returns it */
  add(l: string, weight: number, opts?: { uThreshold?: number }): RealServer;
  /** add several, in this order (so the last one ends first in the list): addAll({ A: 4, B: 3 }) */
  addAll(weights: Record<string, number>): void;
  edit(l: string, weight: number): RealServer;
  del(l: string): void;
  dest(l: string): RealServer;
  pick(p?: SchedPacket): RealServer | null;
  /** n picks as a string of letters ('-' for none) */
  seq(n: number, p?: SchedPacket): string;
  /** set the connection counters of server `l` */
  load(l: string, active: number, inactive?: number): void;
}

export function fixture(sched: string, o: { flags?: number; random?: () => number } = {}): Fixture {
  const clock = new ManualClock(0);
  const table = new ServiceTable({ clock, random: o.random ?? seeded(1) });
  const id: ServiceId = { kind: 'tcp', family: 4, addr: '10.0.0.1', port: 80 };
  const svc = table.addService({ id, sched, flags: o.flags ?? 0, timeout: 0, netmask: 0xffffffff });
  const spec = (l: string, weight: number, uThreshold = 0) => ({
    addr: ADDR[l],
    port: 80,
    fwd: 'route' as const,
    weight,
    uThreshold,
    lThreshold: 0,
  });
  const dest = (l: string) => {
    const d = svc.dests.find((x) => x.addr === ADDR[l]);
    if (!d) throw new Error(`no dest ${l}`);
    return d;
  };
  const pick = (p: SchedPacket = pkt('172.16.0.1')) => svc.scheduler.schedule(svc, p);
  return {
    clock,
    table,
    id,
    svc,
    add: (l, weight, opts = {}) => table.addDest(id, spec(l, weight, opts.uThreshold)),
    addAll: (weights) => {
      for (const [l, w] of Object.entries(weights)) table.addDest(id, spec(l, w));
    },
    edit: (l, weight) => table.editDest(id, { ...spec(l, weight), uThreshold: dest(l).uThreshold }),
    del: (l) => table.delDest(id, ADDR[l], 80),
    dest,
    pick,
    seq: (n, p) => Array.from({ length: n }, () => letter(pick(p))).join(''),
    load: (l, active, inactive = 0) => {
      const d = dest(l);
      d.activeConns = active;
      d.inactConns = inactive;
    },
  };
}
