/** Messages between the cluster primary and its workers (process.send / worker.send, JSON). */
import type { PickRequest } from './balance/index.js';
import type { ListenersConfig } from './config.js';
import type { PickError } from './picker.js';
import type { ShmInfo } from './shared.js';
import type { WorkerSnapshot } from './stats.js';
import type { SslSpec } from './tls-schema.js';

/** What a worker needs to reach a server. */
export interface ServerTarget {
  name: string;
  host: string;
  port: number;
  sendProxy: false | 'v1' | 'v2';
  /** TLS to the server (re-encryption) */
  ssl?: SslSpec;
}

export type ToWorker =
  /** shm: the cluster's shared balancing state (./shared.ts); without it the worker asks the primary per pick */
  /** handoff: the primary accepts and hands each connection over (`conn`); shared: the worker listens on the
   * primary's sockets (`listen`, ./acceptor.ts); neither: the worker listens itself */
  | { t: 'config'; gen: number; cfg: ListenersConfig; shm?: ShmInfo; handoff?: boolean; shared?: boolean }
  /** the bound socket of listener `l`, as the message's handle: listen and accept on it */
  | { t: 'listen'; l: string }
  /** a client connection for listener `l`, the socket as the message's handle */
  | { t: 'conn'; l: string }
  | { t: 'picked'; id: number; server?: ServerTarget; err?: PickError }
  | { t: 'drain'; deadline: number }
  | { t: 'stats?'; id: number };

export type FromWorker =
  | { t: 'hello' }
  | { t: 'ready'; gen: number }
  | { t: 'fatal'; error: string }
  /** l: the group (a listener's own servers are the group named after it) */
  | { t: 'pick'; id: number; l: string; req: PickRequest; ex?: string[] }
  | { t: 'release'; l: string; s: string }
  | { t: 'stats'; id: number; snap: WorkerSnapshot };
