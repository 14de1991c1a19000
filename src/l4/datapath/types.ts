/** Messages between the director's main thread and its data-path worker. */
import type { MessagePort } from 'node:worker_threads';
import type { RulePlan } from '../../fwmark/plan.js';
import type { Counters } from './forward.js';

export interface WorkerData {
  queue: number;
  queues: number;
  maxLen?: number;
  port: MessagePort;
  /** the kernel fast path (src/l4/fastpath): 'off' when absent */
  fastpath?: 'auto' | 'on' | 'off';
  /** interfaces it is attached to (default: every interface with an address but loopback) */
  fastpathInterfaces?: string[];
}

/** What became of the fast path at start. */
export interface FastpathStart {
  mode: 'auto' | 'on' | 'off';
  active: boolean;
  /** why it is not active (auto: the error that made it fall back) */
  reason?: string;
  attached?: { ifindex: number; kind: string }[];
}

export type ToWorker =
  | { type: 'adm'; id: number; line: string }
  /** a PlanDiff (src/l4/config.ts) to apply to the live table */
  | { type: 'diff'; id: number; diff: unknown }
  | { type: 'stats'; id: number }
  /** an HA request (src/ha/worker-ha.ts): sync daemons, pinned routes, metrics snapshot */
  | { type: 'ha'; id: number; req: unknown }
  | { type: 'stop' };

export type FromWorker =
  | { type: 'ready'; engine: string; plan: RulePlan; fastpath?: FastpathStart }
  | { type: 'reply'; id: number; response?: string; error?: string; plan?: RulePlan }
  | { type: 'stopped'; counters: Counters }
  | { type: 'fatal'; message: string };
