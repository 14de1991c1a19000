/** Messages to a worker process, made safe against the worker dying under the primary's hands. */
import type { Worker } from 'node:cluster';
import { log } from '../common/log.js';
import { type AcceptTarget, bindKey, type ListenHandle } from './acceptor.js';
import type { ListenersConfig } from './config.js';
import type { ToWorker } from './ipc.js';

/**
 * Send to a worker without ever throwing or leaving an 'error' event behind: a worker killed a moment ago may still
 * look connected, and the write then fails asynchronously with EPIPE (the callback takes it). False when the
 * message could not be handed to the channel.
 */
export function sendToWorker(
  worker: { isConnected(): boolean; send(m: unknown, cb: (e: Error | null) => void): boolean },
  m: unknown,
): boolean {
  if (!worker.isConnected()) return false;
  try {
    worker.send(m, (e) => {
      if (e) log.debug({ err: String(e) }, 'listeners: a message to a worker was lost (it is exiting)');
    });
    return true;
  } catch {
    return false;
  }
}

/** Shared accept: pass a worker the bound socket of its listener `name` (it listens and accepts on it). */
export function passListenSocket(worker: Worker, name: string, handle: ListenHandle | undefined): void {
  if (!handle || !worker.isConnected()) return;
  const lost = (e: unknown) =>
    log.debug({ worker: worker.id, err: String(e) }, 'listeners: a listening socket was not passed');
  try {
    worker.send({ t: 'listen', l: name } satisfies ToWorker, handle as never, { keepOpen: true }, (e) => e && lost(e));
  } catch (e) {
    lost(e);
  }
}

/** A worker as the acceptor sees it: it takes connections while `takes()`, for the addresses of its config. */
export function acceptTarget(worker: Worker, takes: () => boolean, cfg: ListenersConfig): AcceptTarget {
  return {
    id: worker.id,
    takes: () => takes() && worker.isConnected(),
    listenerAt: (bind) => cfg.listeners.find((l) => bindKey(l.host, l.port) === bind)?.name,
    send: (l, socket, done) => {
      try {
        worker.send({ t: 'conn', l } satisfies ToWorker, socket, { keepOpen: false }, (e) => done(e ?? null));
      } catch (e) {
        done(e as Error);
      }
    },
  };
}
