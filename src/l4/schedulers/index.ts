/** The scheduler registry: name → factory, as ipvsadm -s names them. One file per kernel ip_vs_<name>.c. */
import { DestinationHashing } from './dh.js';
import { FailOver } from './fo.js';
import { LocalityLeastConnection } from './lblc.js';
import { LocalityLeastConnectionReplicated } from './lblcr.js';
import { LeastConnection } from './lc.js';
import { MaglevHashing } from './mh.js';
import { NeverQueue } from './nq.js';
import { Overflow } from './ovf.js';
import { RoundRobin } from './rr.js';
import { ShortestExpectedDelay } from './sed.js';
import { SourceHashing } from './sh.js';
import { TwoChoices } from './twos.js';
import type { SchedulerFactory } from './types.js';
import { WeightedLeastConnection } from './wlc.js';
import { WeightedRoundRobin } from './wrr.js';

export const SCHEDULERS: Record<string, SchedulerFactory> = {
  rr: (svc) => new RoundRobin(svc),
  wrr: (svc) => new WeightedRoundRobin(svc),
  lc: () => new LeastConnection(),
  wlc: () => new WeightedLeastConnection(),
  sed: () => new ShortestExpectedDelay(),
  nq: () => new NeverQueue(),
  lblc: (svc, ctx) => new LocalityLeastConnection(svc, ctx),
  lblcr: (svc, ctx) => new LocalityLeastConnectionReplicated(svc, ctx),
  dh: (svc) => new DestinationHashing(svc),
  sh: (svc) => new SourceHashing(svc),
  mh: (svc) => new MaglevHashing(svc),
  fo: () => new FailOver(),
  ovf: () => new Overflow(),
  twos: (_svc, ctx) => new TwoChoices(ctx),
};

export const DEFAULT_SCHEDULER = 'wlc';

export function hasScheduler(name: string): boolean {
  return Object.hasOwn(SCHEDULERS, name);
}
