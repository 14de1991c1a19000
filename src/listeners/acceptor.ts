/**
 * The primary's listening sockets: it binds every listener's address itself and keeps the socket open while no
 * worker is there (the only worker died and its replacement is starting, a reload's first worker is not ready yet),
 * so a connection arriving then waits instead of being refused. Two ways to give the workers the connections:
 *
 * - shared (the default): the primary binds and passes the listening socket itself to each worker once (IPC, as
 *   node:cluster's SCHED_NONE does); every worker listens and accepts on it, and while none does the kernel's accept
 *   queue holds the connections. Nothing per connection crosses the IPC channel.
 * - handoff (TIERLB_LISTENERS_HANDOFF=1, or a Node without `net._createServerHandle`): the primary accepts (paused,
 *   nothing read) and hands each connection to a worker over IPC, round-robin, as node:cluster's SCHED_RR does; a
 *   connection that arrives while no worker can take it waits here, accepted (at most `holdMs`, then it is closed).
 *   Each handed-over socket costs a round trip to a busy worker (Node sends the next handle only after the worker's
 *   ACK), so a burst of 1,000 connects waited up to ~1 s for its last ones.
 */
import { lookup } from 'node:dns/promises';
import net from 'node:net';
import { constants } from 'node:os';
import { getSystemErrorMap } from 'node:util';
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

/** A bound TCP socket as libuv holds it (node's TCPWrap), before anyone listens or accepts on it. */
export interface ListenHandle {
  readonly fd: number;
  close(cb?: () => void): void;
  /** fills `out` with {address, family, port}; returns 0 or a negative errno */
  getsockname(out: { port?: number }): number;
}

/** libuv's EADDRINUSE (-errno) */
const EADDRINUSE = -constants.errno.EADDRINUSE;

/** node's own way to bind a server socket without listening on it (what node:cluster's shared handles use) */
export const createServerHandle = (
  net as unknown as {
    _createServerHandle?: (
      address: string,
      port: number,
      addressType: number,
      fd: number | undefined,
      flags: number,
    ) => ListenHandle | number;
  }
)._createServerHandle;

/** whether the workers listen on the primary's sockets themselves (else: one IPC handoff per connection) */
export const sharedAccept = typeof createServerHandle === 'function' && process.env.TIERLB_LISTENERS_HANDOFF !== '1';

export class Acceptor {
  private readonly servers = new Map<string, net.Server>();
  /** shared mode: the bound sockets the workers listen on */
  private readonly handles = new Map<string, ListenHandle>();
  private readonly held = new Map<string, Held[]>();
  private readonly cursor = new Map<string, number>();
  private sweeper?: NodeJS.Timeout;
  private said = false;

  constructor(
    private readonly targets: () => Iterable<AcceptTarget>,
    private readonly holdMs = 15_000,
    private readonly maxHeld = 4096,
    readonly shared = sharedAccept,
  ) {}

  /** shared mode: the bound socket of `host:port`, to pass to a worker */
  handleOf(host: string, port: number): ListenHandle | undefined {
    return this.handles.get(bindKey(host, port));
  }

  /** Bind what `binds` has and this has not (all or nothing); returns the keys of those no longer wanted. */
  async open(binds: readonly { host: string; port: number; backlog?: number }[]): Promise<string[]> {
    if (!this.said) {
      this.said = true;
      const accept = this.shared ? 'shared' : 'handoff';
      log.info(
        { accept },
        `listeners: connections accepted ${this.shared ? "by the workers on the primary's sockets" : 'by the primary and handed over'}`,
      );
    }
    const added: string[] = [];
    try {
      for (const b of binds) {
        const key = bindKey(b.host, b.port);
        if (this.servers.has(key) || this.handles.has(key)) continue;
        if (this.shared && createServerHandle) {
          // a host name is resolved first, to its first address, as net.Server.listen() does
          const ip = net.isIP(b.host) ? { address: b.host, family: net.isIP(b.host) } : await lookup(b.host);
          let h = createServerHandle(ip.address, b.port, ip.family, undefined, 0);
          // libuv keeps a bind's EADDRINUSE for the listen() (uv_tcp_bind's delayed error), which the workers do on
          // their copies of the socket: unbound there, they would listen on a random port. Not bound where asked is
          // EADDRINUSE here.
          const at: { port?: number } = {};
          if (typeof h !== 'number' && b.port !== 0 && (h.getsockname(at) !== 0 || at.port !== b.port)) {
            h.close();
            h = EADDRINUSE;
          }
          if (typeof h === 'number') {
            // as net.Server's own error says it: "EADDRINUSE: address already in use 127.0.0.1:80"
            const [code, what] = getSystemErrorMap().get(h) ?? [`errno ${h}`, 'bind failed'];
            throw new ListenersError('ELISTEN', `${code}: ${what} ${key}`);
          }
          this.handles.set(key, h);
          added.push(key);
          continue;
        }
        const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true }, (s) => this.arrived(key, s));
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen({ host: b.host, port: b.port, backlog: b.backlog }, () => {
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
    return [...this.servers.keys(), ...this.handles.keys()].filter((k) => !want.has(k));
  }

  /** Stop listening on `key` (its held connections are closed). */
  closeOne(key: string): void {
    this.servers.get(key)?.close();
    this.servers.delete(key);
    this.handles.get(key)?.close();
    this.handles.delete(key);
    for (const h of this.held.get(key) ?? []) h.socket.destroy();
    this.held.delete(key);
  }

  close(): void {
    for (const k of [...this.servers.keys(), ...this.handles.keys()]) this.closeOne(k);
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
