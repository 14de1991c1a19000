/**
 * A cluster worker: the listeners of one config generation (./listener.ts), its way to the servers
 * (./server-picks.ts: the node's shared balancing state, or the primary), its counters for the primary's stats, and
 * its drain: on `drain` it stops accepting, answers in-flight HTTP requests with `Connection: close`, and exits when
 * its last connection closes (or at the drain deadline).
 */
import net from 'node:net';
import { type DeadlineTimers, RealTimers } from '../../common/timers.js';
import type { ListenersConfig } from '../config.js';
import type { FromWorker, ToWorker } from '../ipc.js';
import { startMemoryTrim } from '../memory-trim.js';
import type { ShmInfo } from '../shared.js';
import type { WorkerSnapshot } from '../stats.js';
import { AcceptShare, startHeartbeat } from './accept-share.js';
import { type GroupRuntime, workerGroups } from './groups.js';
import { Listener } from './listener.js';
import { ServerPicks } from './server-picks.js';

/** how long the last releases are given to reach the primary before a drained worker exits */
const EXIT_GRACE_MS = 50;

function send(msg: FromWorker): void {
  process.send?.(msg);
}

export class WorkerRuntime {
  private readonly listeners: Listener[] = [];
  /** every group of the config (HAProxy backends): their counters and server connections, shared by listeners */
  private readonly groups: Map<string, GroupRuntime>;
  readonly picks: ServerPicks;
  private draining = false;

  constructor(
    readonly cfg: ListenersConfig,
    shm?: ShmInfo,
    private readonly timers: DeadlineTimers = new RealTimers(),
    private readonly exit: (code: number) => void = (code) => process.exit(code),
    /** the primary accepts and hands the connections over (./../acceptor.ts): do not listen */
    private readonly handoff = false,
    /** shared accept: the primary's bound socket for each listener (../acceptor.ts), to listen and accept on */
    private readonly sharedSocket?: (listener: string) => Promise<unknown>,
  ) {
    this.picks = new ServerPicks(cfg, timers, send, shm);
    this.groups = workerGroups(cfg.groups);
  }

  async start(): Promise<void> {
    // shared accept with other workers: connections spread by load through the shared memory (./accept-share.ts)
    const region = this.sharedSocket && this.cfg.workers > 1 ? this.picks.region : undefined;
    if (region) startHeartbeat(region.words, region.shm.worker);
    const keys = this.cfg.tlsTicketKeys ? Buffer.from(this.cfg.tlsTicketKeys, 'base64') : undefined;
    for (const spec of this.cfg.listeners) {
      const slot = region?.shm.accept?.[spec.name];
      const l = new Listener(
        spec,
        this.picks,
        this.timers,
        () => this.maybeExit(),
        this.groups,
        keys,
        this.cfg.workers,
        region && slot !== undefined ? new AcceptShare(region.words, region.shm.worker, slot) : undefined,
      );
      if (this.sharedSocket) await l.listenOn(await this.sharedSocket(spec.name));
      else if (!this.handoff) await l.listen();
      this.listeners.push(l);
    }
  }

  /** A connection the primary accepted for listener `name`. */
  accept(name: string, socket: net.Socket): void {
    const l = this.listeners.find((x) => x.spec.name === name);
    if (!l) socket.destroy();
    else l.accept(socket);
  }

  /** the counters by proxy name: each listener's (FRONTEND), each group's (servers, BACKEND); a listener's own
   * group shares its listener's */
  snapshot(): WorkerSnapshot {
    const out: WorkerSnapshot = {};
    for (const l of this.listeners) out[l.spec.name] = l.counters.snapshot();
    for (const [name, g] of this.groups) out[name] ??= g.counters.snapshot();
    return out;
  }

  drain(deadline: number): void {
    this.draining = true;
    for (const l of this.listeners) l.drain();
    this.timers.set(deadline, () => this.exit(0));
    this.maybeExit();
  }

  maybeExit(): void {
    if (!this.draining) return;
    if (this.listeners.some((l) => l.counters.sockets.size > 0)) return;
    // let the last releases reach the primary (a timer that keeps the process up until then)
    setTimeout(() => this.exit(0), EXIT_GRACE_MS);
  }
}

/** The worker process: wait for the config, listen, report ready, serve. */
export function runWorker(): void {
  let rt: WorkerRuntime | undefined;
  // shared accept: the primary's bound sockets by listener name, as they arrive (`listen` follows `config`)
  const sockets = new Map<string, unknown>();
  const socketWaiters = new Map<string, (h: unknown) => void>();
  const sharedSocket = (name: string): Promise<unknown> =>
    sockets.has(name) ? Promise.resolve(sockets.get(name)) : new Promise((r) => socketWaiters.set(name, r));
  process.on('message', (m: ToWorker, handle?: unknown) => {
    switch (m.t) {
      case 'conn':
        if (rt && handle instanceof net.Socket) rt.accept(m.l, handle);
        else (handle as net.Socket | undefined)?.destroy();
        break;
      case 'listen':
        sockets.set(m.l, handle);
        socketWaiters.get(m.l)?.(handle);
        socketWaiters.delete(m.l);
        break;
      case 'config':
        if (rt) return;
        if (m.cfg.memoryTrim) startMemoryTrim();
        rt = new WorkerRuntime(m.cfg, m.shm, undefined, undefined, m.handoff, m.shared ? sharedSocket : undefined);
        rt.start().then(
          () => send({ t: 'ready', gen: m.gen }),
          (e: NodeJS.ErrnoException) => {
            send({ t: 'fatal', error: `${e.code ?? ''} ${e.message}`.trim() });
            setTimeout(() => process.exit(3), EXIT_GRACE_MS);
          },
        );
        break;
      case 'picked':
        rt?.picks.onPicked(m);
        break;
      case 'drain':
        rt?.drain(m.deadline);
        break;
      case 'stats?':
        send({ t: 'stats', id: m.id, snap: rt?.snapshot() ?? {} });
        break;
    }
  });
  process.on('disconnect', () => process.exit(0));
  // only now can the config be received (a message sent before the listener exists would be lost)
  send({ t: 'hello' });
}
