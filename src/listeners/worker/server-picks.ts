/**
 * A worker's way to a server for each group (a listener's own servers are the group named after it): its own Picker over the node's shared memory (../shared-picker.ts:
 * the pick is a few atomic operations, the answer comes at once) or, without the shared memory, a round trip to the
 * primary, whose Pool picks (../pool.ts). Either way the answer is a PickReply: the server's target, or why none.
 * Requests waiting in a local queue are served on a release here and on a short timer (slots other workers free).
 */
import { log } from '../../common/log.js';
import type { Timer, Timers } from '../../common/timers.js';
import type { PickRequest } from '../balance/index.js';
import type { ListenersConfig } from '../config.js';
import type { FromWorker, ToWorker } from '../ipc.js';
import { openRegion, type ShmInfo } from '../shared.js';
import { SharedPicker } from '../shared-picker.js';

export type PickReply = Extract<ToWorker, { t: 'picked' }>;

/** how often a worker retries its queued requests (slots freed by other workers) */
export const QUEUE_POLL_MS = 5;

export const NO_EXCLUDE: readonly string[] = [];

interface Local {
  picker: SharedPicker;
  /** the replies, made once: a server's target never changes within a generation */
  replies: PickReply[];
}

export class ServerPicks {
  private readonly pending = new Map<number, (r: PickReply) => void>();
  private nextId = 1;
  /** group → its balancing over the shared memory; empty when the worker asks the primary for every pick */
  private readonly local = new Map<string, Local>();
  private queueTimer: Timer | undefined = undefined;
  private polling = false;
  /** the shared memory as this worker mapped it (undefined: none) */
  region: { words: Int32Array; shm: ShmInfo } | undefined = undefined;

  constructor(
    cfg: ListenersConfig,
    private readonly timers: Timers,
    private readonly send: (m: FromWorker) => void,
    shm?: ShmInfo,
    /** the shared memory as mapped (tests give a SharedArrayBuffer's words) */
    words?: Int32Array,
  ) {
    if (shm) this.attach(cfg, shm, words);
  }

  private attach(cfg: ListenersConfig, shm: ShmInfo, mapped: Int32Array | undefined): void {
    let words: Int32Array;
    try {
      words = mapped ?? openRegion(shm.path);
    } catch (e) {
      log.warn({ err: String(e) }, 'listeners: no shared memory, picking through the primary');
      return;
    }
    this.region = { words, shm };
    // one picker per group (HAProxy backend; a listener's own servers are the group named after it)
    for (const spec of cfg.groups) {
      const l = shm.listeners[spec.name];
      if (!l) continue;
      const picker = new SharedPicker(
        words,
        l.slot,
        spec.servers.map((s, i) => ({ name: s.name, maxconn: s.maxconn, slot: l.servers[i]! })),
        shm.worker,
        { balance: spec.balance, maxqueue: spec.maxqueue, queueTimeout: spec.timeout.queue, clock: this.timers.clock },
      );
      const replies = spec.servers.map(
        (s): PickReply => ({
          t: 'picked',
          id: 0,
          server: { name: s.name, host: s.host, port: s.port, sendProxy: s.sendProxy, ssl: s.ssl },
        }),
      );
      this.local.set(spec.name, { picker, replies });
    }
  }

  pick(group: string, req: PickRequest, ex: readonly string[]): Promise<PickReply> {
    return new Promise((resolve) => this.pickThen(group, req, ex, resolve));
  }

  /** pick(), calling `done` (at once when a server is free and the picks are local) instead of a promise */
  pickThen(group: string, req: PickRequest, ex: readonly string[], done: (r: PickReply) => void): void {
    const local = this.local.get(group);
    if (local) {
      const { picker, replies } = local;
      let exclude: Set<number> | undefined;
      if (ex.length) {
        exclude = new Set();
        for (const n of ex) {
          const i = picker.index(n);
          if (i !== undefined) exclude.add(i);
        }
      }
      picker.acquire(req, exclude, (r) => done(typeof r === 'number' ? replies[r]! : { t: 'picked', id: 0, err: r }));
      if (picker.waiting) this.armQueueTimer();
      return;
    }
    const id = this.nextId++;
    this.pending.set(id, done);
    this.send({ t: 'pick', id, l: group, req, ex: ex.length ? [...ex] : undefined });
  }

  /** the primary's answer to a pick */
  onPicked(m: PickReply): void {
    const r = this.pending.get(m.id);
    if (!r) return;
    this.pending.delete(m.id);
    r(m);
  }

  release(group: string, server: string): void {
    const local = this.local.get(group);
    if (local) {
      const i = local.picker.index(server);
      if (i !== undefined) local.picker.release(i);
      return;
    }
    this.send({ t: 'release', l: group, s: server });
  }

  /** While requests wait for a slot: serve them every few ms (slots freed by other workers, weights raised). */
  private armQueueTimer(): void {
    if (this.polling) return;
    this.polling = true;
    (this.queueTimer ??= this.timers.timer(() => this.serveQueues())).arm(QUEUE_POLL_MS);
  }

  private serveQueues(): void {
    let waiting = 0;
    for (const { picker } of this.local.values()) {
      picker.serveQueue();
      waiting += picker.waiting;
    }
    if (waiting > 0) this.queueTimer!.arm(QUEUE_POLL_MS);
    else this.polling = false;
  }
}
