/**
 * What a worker counts per listener (the primary adds every worker's up, ../stats.ts): sessions, bytes, request
 * errors, HTTP responses by class, and per server connections, bytes, errors, retries and redispatches.
 */
import type net from 'node:net';
import { emptyListenerStats, emptyServerStats, type WorkerListenerStats, type WorkerServerStats } from '../stats.js';
import { sentBytes } from './send-now.js';

export class ListenerCounters {
  readonly stats: WorkerListenerStats = emptyListenerStats();
  /** client connections open now (their bytes are added live to a snapshot) */
  readonly sockets = new Set<net.Socket>();
  /** client connections spliced in the kernel: the bytes it carried, [from the client, to the client] */
  readonly kernel = new Map<net.Socket, () => [number, number]>();

  server(name: string): WorkerServerStats {
    return (this.stats.servers[name] ??= emptyServerStats());
  }

  /** an HTTP response with status `code` left (1xx..5xx, other) */
  hrsp(code: number): void {
    const c = code >= 100 && code < 600 ? `${Math.floor(code / 100)}xx` : 'other';
    this.stats.hrsp[c] = (this.stats.hrsp[c] ?? 0) + 1;
  }

  /** a client connection was accepted */
  opened(sock: net.Socket): void {
    const st = this.stats;
    st.scur++;
    st.stot++;
    if (st.scur > st.smax) st.smax = st.scur;
    this.sockets.add(sock);
  }

  /** a client connection closed: its bytes */
  closed(sock: net.Socket): void {
    const st = this.stats;
    st.scur--;
    st.bin += sock.bytesRead;
    st.bout += sentBytes(sock);
    this.addKernelBytes(st, sock);
    this.kernel.delete(sock);
    this.sockets.delete(sock);
  }

  /** The counters now, the bytes of connections still open included. */
  snapshot(): WorkerListenerStats {
    const st = structuredClone(this.stats);
    for (const s of this.sockets) {
      st.bin += s.bytesRead;
      st.bout += sentBytes(s);
      this.addKernelBytes(st, s);
    }
    return st;
  }

  /** a spliced connection's bytes the kernel carried: in bin/bout, and in splice_bytes */
  private addKernelBytes(st: WorkerListenerStats, sock: net.Socket): void {
    const k = this.kernel.get(sock);
    if (!k) return;
    const [i, o] = k();
    st.bin += i;
    st.bout += o;
    st.splice_bytes += i + o;
  }
}
