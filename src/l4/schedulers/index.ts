/** The scheduler registry: name → factory, as ipvsadm -s names them. */
import { RoundRobin } from './rr.js';
import type { SchedulerFactory } from './types.js';

export const SCHEDULERS: Record<string, SchedulerFactory> = {
  rr: () => new RoundRobin(),
};

export const DEFAULT_SCHEDULER = 'wlc';

export function hasScheduler(name: string): boolean {
  return Object.hasOwn(SCHEDULERS, name);
}
