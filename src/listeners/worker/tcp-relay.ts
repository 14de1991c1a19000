/**
 * Mode tcp: pick a server, connect (at most `timeout connect`, on the injected timers), send the PROXY header when
 * the server has send-proxy, then pipe both ways with half-close. A failed connect is tried again up to `retries`
 * times (another server with `option redispatch`); none left, or no server at all: the client is closed. Once
 * relaying, `timeout client` and `timeout server` are the two sockets' inactivity timeouts.
 */
import net from 'node:net';
import type { Timers } from '../../common/timers.js';
import type { PickRequest } from '../balance/index.js';
import type { ServerTarget } from '../ipc.js';
import { encode, headerFor } from '../proxy-protocol.js';
import type { ClientInfo } from './client-conn.js';
import type { RelaySpec } from './groups.js';
import type { ListenerCounters } from './runtime.js';
import type { PickReply } from './server-picks.js';

/** What the relay needs of its listener. */
export interface TcpHost {
  readonly spec: RelaySpec;
  readonly counters: ListenerCounters;
  readonly timers: Timers;
  pick(req: PickRequest, exclude: readonly string[]): Promise<PickReply>;
  release(server: string): void;
  /** open a connection to a server (net.connect; tests give fakes) */
  connect(host: string, port: number): net.Socket;
}

export const netConnect = (host: string, port: number): net.Socket => net.connect({ host, port, allowHalfOpen: true });

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
    const up = await connect(x, target, info);
    if (up) {
      ss.stot++;
      pipe(x, client, up, target, head);
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

/** A connection to `t` (the PROXY header sent first when it has send-proxy), or null after an error or timeout. */
function connect(x: TcpHost, t: ServerTarget, info: ClientInfo): Promise<net.Socket | null> {
  return new Promise((resolve) => {
    const s = x.connect(t.host, t.port);
    const timer = x.timers.set(x.spec.timeout.connect, () => {
      s.destroy();
      resolve(null);
    });
    s.once('connect', () => {
      x.timers.clear(timer);
      s.removeAllListeners('error');
      resolve(s);
    });
    s.once('error', () => {
      x.timers.clear(timer);
      resolve(null);
    });
    if (t.sendProxy)
      s.write(encode(headerFor(info.src, info.srcPort, info.dst, info.dstPort), t.sendProxy === 'v1' ? 1 : 2));
  });
}

function pipe(x: TcpHost, client: net.Socket, server: net.Socket, t: ServerTarget, head: Buffer | undefined): void {
  const ss = x.counters.server(t.name);
  let done = false;
  const finish = () => {
    if (done) return;
    done = true;
    ss.bin += server.bytesWritten;
    ss.bout += server.bytesRead;
    x.release(t.name);
  };
  server.on('error', () => {
    ss.eresp++;
    client.destroy();
  });
  client.on('error', () => server.destroy());
  server.once('close', () => {
    finish();
    if (!client.writableEnded) client.destroy();
  });
  client.once('close', () => {
    if (!server.destroyed && !server.writableEnded) server.destroy();
  });
  client.setTimeout(x.spec.timeout.client, () => {
    client.destroy();
    server.destroy();
  });
  server.setTimeout(x.spec.timeout.server, () => {
    server.destroy();
    client.destroy();
  });
  if (head?.length) server.write(head);
  client.pipe(server); // client FIN → server FIN (half-close), and the other way:
  server.pipe(client);
  client.resume();
}
