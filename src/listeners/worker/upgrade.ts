/**
 * WebSocket (any HTTP/1.1 Upgrade) through http-proxy-3: pick a server, hand it the request and the client socket,
 * then relay both ways until either side closes; `timeout tunnel` is the socket's inactivity timeout. The server's
 * slot is released when the client socket closes (or the server cannot be reached: 502).
 */
import type http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { ProxyServer } from 'http-proxy-3';
import type { PickRequest } from '../balance/index.js';
import type { ServerTarget } from '../ipc.js';
import type { ClientConn } from './client-conn.js';
import { errorResponse } from './error-pages.js';
import type { RelaySpec } from './groups.js';
import type { ExchangeRequest } from './messages.js';
import type { ListenerCounters } from './runtime.js';
import type { PickReply } from './server-picks.js';

/** What an upgrade needs of its listener. */
export interface UpgradeHost {
  readonly spec: RelaySpec;
  readonly counters: ListenerCounters;
  /** the listener's counters when they are not the group's (a named group): its answers count there too */
  readonly frontend?: ListenerCounters;
  pick(req: PickRequest, exclude: readonly string[]): Promise<PickReply>;
  release(server: string): void;
}

export function wsProxy(): ProxyServer {
  const proxy = new ProxyServer({ xfwd: false, ws: true });
  proxy.on('econnreset', () => {});
  proxy.on('error', () => {});
  return proxy;
}

export async function relayUpgrade(
  x: UpgradeHost,
  proxy: ProxyServer,
  req: ExchangeRequest,
  socket: net.Socket,
  head: Buffer,
  conn: ClientConn,
  pick: (req: ExchangeRequest) => PickRequest,
): Promise<void> {
  const { spec, counters } = x;
  conn.stopWait();
  conn.busy++;
  const info = conn.info;
  if (spec.forwardfor) {
    const xff = req.headers['x-forwarded-for'];
    req.headers['x-forwarded-for'] = xff ? `${xff}, ${info.src}` : info.src;
    req.headers['x-forwarded-proto'] = (socket as { encrypted?: boolean }).encrypted ? 'https' : 'http';
  }
  const r = await x.pick(pick(req), []);
  if (!r.server) {
    counters.hrsp(503);
    x.frontend?.hrsp(503);
    socket.end(errorResponse(503));
    return;
  }
  const t = r.server;
  const ss = counters.server(t.name);
  ss.stot++;
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    x.release(t.name);
  };
  if (socket.destroyed) {
    release();
    return;
  }
  socket.once('close', release);
  socket.setTimeout(spec.timeout.tunnel, () => socket.destroy());
  counters.hrsp(101);
  x.frontend?.hrsp(101);
  proxy.ws(
    req as unknown as http.IncomingMessage,
    socket,
    head,
    { target: { host: t.host, port: t.port, protocol: t.ssl ? 'https:' : 'http:' }, agent: sslAgent(t) },
    () => {
      ss.econ++;
      release();
      if (!socket.destroyed) socket.end(errorResponse(502));
    },
  );
}

/** ssl servers: a one-connection agent with the server's TLS settings (the name sent: `sni`, else none for an address) */
function sslAgent(t: ServerTarget): https.Agent | false {
  const ssl = t.ssl;
  if (!ssl) return false;
  return new https.Agent({
    servername: ssl.sni ?? (net.isIP(t.host) ? '' : t.host),
    rejectUnauthorized: ssl.verify === 'required',
    ...(ssl.caPem ? { ca: ssl.caPem } : {}),
  });
}
