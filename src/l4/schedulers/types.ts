/**
 * The scheduler interface (struct ip_vs_scheduler). Each algorithm lives in its own file, like the kernel's
 * ip_vs_<name>.c and HAProxy's lb_*.c, and is registered in ./index.ts.
 */
import type { Family } from '../../common/addr.js';
import type { Clock } from '../../common/clock.js';
import type { RealServer } from '../dest.js';
import type { VirtualService } from '../service.js';

/** What a scheduler may look at in the packet that opens a connection. */
export interface SchedPacket {
  family: Family;
  /** IP protocol number: 6 tcp, 17 udp, 132 sctp */
  protocol: number;
  saddr: string;
  sport: number;
  daddr: string;
  dport: number;
}

export interface Scheduler {
  readonly name: string;
  /**
   * Called after the service's destination list or a destination's weight changed (add_dest, del_dest, upd_dest in
   * the kernel). Schedulers with tables (wrr, sh, mh, dh) rebuild here.
   */
  update(svc: VirtualService): void;
  /** Pick a real server for a new connection, or null when none can take it ("no destination available"). */
  schedule(svc: VirtualService, pkt: SchedPacket): RealServer | null;
  /** Periodic housekeeping for schedulers that keep per-client state (lblc, lblcr expire their entries). */
  tick?(now: number): void;
}

export interface SchedulerContext {
  clock: Clock;
  /** Random source for twos (two random choices); tests pass a seeded one. Returns [0, 1). */
  random: () => number;
}

export type SchedulerFactory = (svc: VirtualService, ctx: SchedulerContext) => Scheduler;
