/**
 * Mode tcp: pick a server, connect (at most `timeout connect`, on the injected timers), send the PROXY header when
 * the server has send-proxy, then pipe both ways with half-close. A failed connect is tried again up to `retries`
 * times (another server with `option redispatch`); none left, or no server at all: the client is closed. Once
 * relaying, `timeout client` and `timeout server` are the two sockets' inactivity timeouts.
 *
 * The relay is two direct writes, no stream pipe: each side's bytes are read into a buffer of its own (net's
 * `onread`; 4 KiB, larger while reads fill it), reused for every read whose write to the other side completes at
 * once (the usual case), so no allocation per chunk; a write left pending keeps its buffer and the next read gets a
 * fresh one. The writes are sent at once on the descriptor while Node holds nothing for the socket (./send-now.ts).
 * The client's socket gets its `onread` when the listener opens the accepted descriptor itself (`relayedClient`,
 * through ./accept-batch.ts: plain mode tcp without accept_proxy); otherwise its reads are Node's own buffers,
 * written straight on.
 */
import net from 'node:net';
import tls from 'node:tls';
import { log } from '../../common/log.js';
import type { Timers } from '../../common/timers.js';
import type { PickRequest } from '../balance/index.js';
import type { ServerTarget } from '../ipc.js';
import { encode, headerFor } from '../proxy-protocol.js';
import type { SplicedPair, Splicer } from '../splice/splice.js';
import type { ClientInfo } from './client-conn.js';
import type { RelaySpec } from './groups.js';
import type { ListenerCounters } from './runtime.js';
import { sentBytes, writeNow } from './send-now.js';
import type { PickReply } from './server-picks.js';

/** What the relay needs of its listener. */
export interface TcpHost {
  readonly spec: RelaySpec;
  readonly counters: ListenerCounters;
  /** the listener's counters (its FRONTEND row, the client's bytes), when they are not `counters` */
  readonly frontend?: ListenerCounters;
  readonly timers: Timers;
  /** the worker's in-kernel splice, when the listener's `splice` mode and the process allow it */
  readonly splicer?: Splicer;
  pick(req: PickRequest, exclude: readonly string[]): Promise<PickReply>;
  release(server: string): void;
  /** open a connection to a server (net.connect; tests give fakes, which ignore `onread` and emit 'data') */
  connect(host: string, port: number, onread?: net.OnReadOpts): net.Socket;
}

export const netConnect = (host: string, port: number, onread?: net.OnReadOpts): net.Socket =>
  net.connect({ host, port, allowHalfOpen: true, onread });

/** a server connection's read buffer: small while reads are small (an idle connection holds 4 KiB), four times
 * larger after each read that filled it (bulk data: fewer reads), back to small after a small read */
const MIN_READ = 4 * 1024;
const MAX_READ = 64 * 1024;

/** One side's bytes to the other (`from` → `to`): read into a buffer of its own (onread), written on as they come. */
class Reads {
  private buf: Buffer | undefined = undefined;
  private size = MIN_READ;
  private to: net.Socket | undefined = undefined;
  private from: net.Socket | undefined = undefined;
  /** bytes read before the relay began (none expected: the relay begins in the connect's continuation) */
  private early: Buffer[] | undefined = undefined;
  readonly onread: net.OnReadOpts = {
    buffer: () => {
      this.buf ??= Buffer.allocUnsafeSlow(this.size);
      return this.buf;
    },
    // (the buffer given is ours, from buffer(): its first n bytes are the read, no view made for them)
    callback: (n: number, b: Uint8Array) => this.read(b as Buffer, n),
  };
  private readonly resume = (): void => {
    this.from?.resume();
  };

  /** The first `n` bytes of `chunk` were read. false: stop reading until the other side drains. */
  read(chunk: Buffer, n = chunk.length): boolean {
    const c = this.to;
    if (!c) {
      (this.early ??= []).push(Buffer.from(chunk.subarray(0, n)));
      return true;
    }
    const ok = writeNow(c, chunk, n);
    const own = chunk === this.buf;
    // a write left pending holds the buffer: the next read gets another one
    if (own && c.writableLength > 0) this.buf = undefined;
    if (own) {
      if (n === this.size && this.size < MAX_READ) {
        this.size *= 4;
        this.buf = undefined;
      } else if (n <= this.size >> 3 && this.size > MIN_READ) {
        this.size = MIN_READ;
        this.buf = undefined;
      }
    }
    if (ok) return true;
    c.once('drain', this.resume);
    return false;
  }

  begin(to: net.Socket, from: net.Socket): void {
    this.to = to;
    this.from = from;
    const early = this.early;
    this.early = undefined;
    if (early) for (const b of early) to.write(b);
  }
}

const CLIENT_READS = Symbol('tierlb.clientReads');
type WithReads = net.Socket & { [CLIENT_READS]?: Reads };

/** An accepted client descriptor of a plain mode tcp listener, opened paused with its own `onread` (the relay's). */
export const relayedClient = (fd: number): net.Socket => {
  const reads = new Reads();
  const s = new net.Socket({
    fd,
    readable: true,
    writable: true,
    allowHalfOpen: true,
    pauseOnCreate: true,
    onread: reads.onread,
  } as net.SocketConstructorOpts) as WithReads;
  s[CLIENT_READS] = reads;
  return s;
};

/** Relay `client` (its first bytes `head`, read with the PROXY header) to a server. */
export async function relayTcp(
  x: TcpHost,
  client: net.Socket,
  info: ClientInfo,
  pick: PickRequest,
  head: Buffer | undefined,
): Promise<void> {
  const { spec, counters } = x;
  const tried = new Set<string>();
  let closed = false;
  client.once('close', () => (closed = true));
  let target: ServerTarget | undefined;
  for (let attempt = 0; ; attempt++) {
    const redispatch = attempt > 0 && spec.redispatch;
    if (!target || redispatch) {
      if (target) x.release(target.name);
      const r = await x.pick(pick, [...tried]);
      if (!r.server) {
        client.destroy();
        return;
      }
      if (target && r.server.name !== target.name) counters.server(r.server.name).wredis++;
      target = r.server;
    }
    if (closed) {
      x.release(target.name);
      return;
    }
    tried.add(target.name);
    const ss = counters.server(target.name);
    const reads = new Reads();
    const up = await connect(x, target, info, reads);
    if (up) {
      ss.stot++;
      pipe(x, client, up, target, head, reads);
      return;
    }
    ss.econ++;
    if (attempt >= spec.retries || closed) {
      x.release(target.name);
      client.destroy();
      return;
    }
    ss.wretr++;
  }
}

/** A connection to `t` (the PROXY header sent first when it has send-proxy; then the TLS handshake when it has
 * ssl, all within timeout connect), or null after an error or timeout. The server's bytes come through `reads`
 * (onread) on a plain connection, as 'data' of the TLS socket on an ssl one. */
function connect(x: TcpHost, t: ServerTarget, info: ClientInfo, reads: Reads): Promise<net.Socket | null> {
  return new Promise((resolve) => {
    let s = x.connect(t.host, t.port, t.ssl ? undefined : reads.onread);
    const timer = x.timers.set(x.spec.timeout.connect, () => {
      s.destroy();
      resolve(null);
    });
    const ready = () => {
      x.timers.clear(timer);
      s.removeAllListeners('error');
      resolve(s);
    };
    s.once('connect', () => {
      if (!t.ssl) return ready();
      const ssl = t.ssl;
      s = tls.connect({
        socket: s,
        servername: ssl.sni ?? (net.isIP(t.host) ? undefined : t.host),
        rejectUnauthorized: ssl.verify === 'required',
        ...(ssl.caPem ? { ca: ssl.caPem } : {}),
      });
      s.once('secureConnect', ready);
      s.once('error', () => {
        x.timers.clear(timer);
        resolve(null);
      });
    });
    s.once('error', () => {
      x.timers.clear(timer);
      resolve(null);
    });
    if (t.sendProxy)
      s.write(encode(headerFor(info.src, info.srcPort, info.dst, info.dstPort), t.sendProxy === 'v1' ? 1 : 2));
  });
}

function pipe(
  x: TcpHost,
  client: net.Socket,
  server: net.Socket,
  t: ServerTarget,
  head: Buffer | undefined,
  reads: Reads,
): void {
  const ss = x.counters.server(t.name);
  let done = false;
  let spliced: SplicedPair | undefined;
  const finish = () => {
    if (done) return;
    done = true;
    const [up, down] = spliced ? spliced.bytes() : [0, 0];
    ss.bin += sentBytes(server) + up;
    ss.bout += server.bytesRead + down;
    x.release(t.name);
  };
  server.on('error', () => {
    ss.eresp++;
    client.destroy();
  });
  client.on('error', () => server.destroy());
  // (a FIN waiting for the kernel to send the bytes before it is an end already: see endWhenDrained)
  server.once('close', () => {
    spliced?.closed();
    finish();
    if (!client.writableEnded && !ending.has(client)) client.destroy();
  });
  client.once('close', () => {
    spliced?.closed();
    if (!server.destroyed && !server.writableEnded && !ending.has(server)) server.destroy();
  });
  // inactivity timeouts; a spliced pair is busy while the kernel's byte counts move
  const kernelBytes = () => spliced?.total();
  idleTimeout(client, server, x.spec.timeout.client, kernelBytes);
  idleTimeout(server, client, x.spec.timeout.server, kernelBytes);
  if (head?.length) server.write(head);
  // client → server: onread (opened by the listener with it), or 'data'
  const clientReads = (client as WithReads)[CLIENT_READS];
  if (clientReads) clientReads.begin(server, client);
  else {
    const resumeClient = () => client.resume();
    client.on('data', (d: Buffer) => {
      if (!writeNow(server, d)) {
        client.pause();
        server.once('drain', resumeClient);
      }
    });
  }
  // server → client: onread (a real socket), or 'data' (a socket opened without it)
  reads.begin(client, server);
  server.on('data', (d: Buffer) => {
    if (!reads.read(d)) server.pause();
  });
  // in the kernel from here, once Node holds none of the pair's bytes (not over TLS). Bytes Node read already (a
  // PROXY header's leftovers, reads before the relay began) are written out first; while writes are pending the
  // pair is tried again at each 'drain', a few times (a pair that stays busy in Node stays there)
  const splicer = x.splicer;
  let tries = 0;
  const trySplice = (): void => {
    if (!splicer || spliced || client.readableEnded || server.readableEnded) return;
    // (read() hands buffered bytes to the 'data' handler above, which writes them on)
    while (client.readableLength > 0 && client.read() !== null);
    while (server.readableLength > 0 && server.read() !== null);
    try {
      spliced = splicer.splice(client, server);
    } catch (e) {
      tries = SPLICE_TRIES;
      log.warn({ listener: x.spec.name, err: (e as Error).message }, 'TCP splice failed: relaying in Node');
      return;
    }
    if (!spliced) {
      if (++tries < SPLICE_TRIES) {
        client.once('drain', trySplice);
        server.once('drain', trySplice);
      }
      return;
    }
    client.off('drain', trySplice);
    server.off('drain', trySplice);
    const pair = spliced;
    const fe = x.frontend ?? x.counters;
    fe.stats.splice_tot++;
    fe.kernel.set(client, () => pair.bytes());
  };
  if (splicer && !(client instanceof tls.TLSSocket) && !(server instanceof tls.TLSSocket)) trySplice();
  // a FIN goes on as a FIN (half-close), both ways
  // (the client's may have come already, with its PROXY header); spliced, once the kernel sent the bytes before it
  const endServer = () => (spliced ? endWhenDrained(x, spliced, 1, server) : server.end());
  if (client.readableEnded) endServer();
  else client.once('end', endServer);
  server.once('end', () => (spliced ? endWhenDrained(x, spliced, 0, client) : client.end()));
  client.resume();
}

/** Close `sock` and then `other` after `ms` without activity on `sock`; while the pair is spliced, a moved count of
 * the kernel's bytes (`kernelBytes`, undefined before the splice; it starts at 0) is activity. */
function idleTimeout(sock: net.Socket, other: net.Socket, ms: number, kernelBytes: () => number | undefined): void {
  let seen = 0;
  sock.setTimeout(ms);
  sock.on('timeout', () => {
    const n = kernelBytes();
    if (n !== undefined && n !== seen) {
      seen = n;
      sock.setTimeout(ms);
      return;
    }
    sock.destroy();
    other.destroy();
  });
}

/** how many times a pair is tried for the splice (at the start, then at 'drain's) before it stays in Node */
const SPLICE_TRIES = 8;

/** a FIN waiting for the kernel to send the spliced bytes before it checks again after 1 ms, then twice as long each
 * time up to 64 ms (a peer that does not read can hold them until a timeout) */
const DRAIN_POLL_MS = 1;
const DRAIN_POLL_MAX_MS = 64;

/** shutdown(SHUT_WR) `sock` (side `to` of the pair) once every byte the kernel redirected to it was handed to TCP. */
function endWhenDrained(x: TcpHost, pair: SplicedPair, to: 0 | 1, sock: net.Socket, wait = DRAIN_POLL_MS): void {
  if (sock.destroyed || pair.drained(to)) {
    ending.delete(sock);
    sock.end();
    return;
  }
  ending.add(sock);
  x.timers.set(wait, () => endWhenDrained(x, pair, to, sock, Math.min(wait * 2, DRAIN_POLL_MAX_MS)));
}

/** spliced sockets whose FIN waits for the kernel to send the bytes before it */
const ending = new WeakSet<net.Socket>();
