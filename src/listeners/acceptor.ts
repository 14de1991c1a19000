/**
 * The primary's listening sockets: it binds every listener's address itself, accepts (paused, nothing read) and
 * hands each connection to a worker over IPC, round-robin over the workers that serve that address — what
 * node:cluster's round-robin scheduling does, except that the socket stays open while no worker is there. A
 * connection that arrives while no worker can take it (the only worker died and its replacement is starting, a
 * reload's first worker is not ready yet) waits here, accepted, until one is ready (at most `holdMs`, then it is
 * closed), instead of being refused.
 */
import net from 'node:net';
import { log } from '../common/log.js';
import { ListenersError } from './errors.js';

/** A worker as the acceptor sees it. */
export interface AcceptTarget {
  id: number;
  /** ready and not draining */
  takes(): boolean;
  /** the name of its listener on `bind` (undefined: it has none there) */
  listenerAt(bind: string): string | undefined;
  /** hand it the connection; `done(err)` once written (err: it did not get it) */
  send(listener: string, socket: net.Socket, done: (err: Error | null) => void): void;
}

interface Held {
  socket: net.Socket;
  since: number;
  tries: number;
}

export const bindKey = (host: string, port: number): string => `${host}:${port}`;

export class Acceptor {
  private readonly servers = new Map<string, net.Server>();
  private readonly held = new Map<string, Held[]>();
  private readonly cursor = new Map<string, number>();
  private sweeper?: NodeJS.Timeout;

  constructor(
    private readonly targets: () => Iterable<AcceptTarget>,
    private readonly holdMs = 15_000,
    private readonly maxHeld = 4096,
  ) {}

  /** Bind what `binds` has and this has not (all or nothing); returns the keys of those no longer wanted. */
  async open(binds: readonly { host: string; port: number }[]): Promise<string[]> {
    const added: string[] = [];
    try {
      for (const b of binds) {
        const key = bindKey(b.host, b.port);
        if (this.servers.has(key)) continue;
        const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true }, (s) => this.arrived(key, s));
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen({ host: b.host, port: b.port }, () => {
            server.off('error', reject);
            resolve();
          });
        });
        server.on('error', (e) => log.error({ bind: key, err: String(e) }, 'listeners: listening socket'));
        this.servers.set(key, server);
        added.push(key);
      }
    } catch (e) {
      for (const k of added) this.closeOne(k);
      const err = e as NodeJS.ErrnoException;
      throw new ListenersError(
        'ELISTEN',
        `cannot listen on ${err.message.replace(/^listen /, '')}: free the address or change the listener's bind`,
      );
    }
    this.sweeper ??= setInterval(() => this.sweep(), 1000).unref();
    const want = new Set(binds.map((b) => bindKey(b.host, b.port)));
    return [...this.servers.keys()].filter((k) => !want.has(k));
  }

  /** Stop listening on `key` (its held connections are closed). */
  closeOne(key: string): void {
    this.servers.get(key)?.close();
    this.servers.delete(key);
    for (const h of this.held.get(key) ?? []) h.socket.destroy();
    this.held.delete(key);
  }

  close(): void {
    for (const k of [...this.servers.keys()]) this.closeOne(k);
    if (this.sweeper) clearInterval(this.sweeper);
  }

  /** connections waiting for a worker */
  get waiting(): number {
    let n = 0;
    for (const q of this.held.values()) n += q.length;
    return n;
  }

  /** A worker became ready (or stopped draining): give it what waits. */
  flush(): void {
    for (const [key, q] of this.held) {
      this.held.set(key, []);
      for (const h of q) this.dispatch(key, h);
    }
  }

  private arrived(key: string, socket: net.Socket): void {
    socket.on('error', () => {});
    this.dispatch(key, { socket, since: Date.now(), tries: 0 });
  }

  private dispatch(key: string, h: Held): void {
    if (h.socket.destroyed) return;
    const ts = [...this.targets()].filter((t) => t.takes() && t.listenerAt(key) !== undefined);
    if (ts.length === 0 || h.tries > 3) {
      const q = this.held.get(key) ?? [];
      if (q.length >= this.maxHeld) {
        h.socket.destroy();
        return;
      }
      q.push(h);
      this.held.set(key, q);
      return;
    }
    const c = (this.cursor.get(key) ?? 0) % ts.length;
    this.cursor.set(key, c + 1);
    const t = ts[c]!;
    t.send(t.listenerAt(key)!, h.socket, (err) => {
      if (!err) return;
      // the worker died between the choice and the write: the socket is still ours, try another
      h.tries++;
      this.dispatch(key, h);
    });
  }

  private sweep(): void {
    const now = Date.now();
    for (const [key, q] of this.held) {
      const keep = q.filter((h) => {
        if (h.socket.destroyed) return false;
        if (now - h.since < this.holdMs) return true;
        h.socket.destroy();
        return false;
      });
      this.held.set(key, keep);
    }
  }
}
