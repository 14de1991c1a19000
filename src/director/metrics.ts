/**
 * Prometheus /metrics for the director (`metrics: {bind}` in the director section, or `--metrics ADDR`): the numbers
 * `ipvsadm -L --stats --rate` and `-L -n` show, per service and per real server, the data path's and the engine's
 * drop counters, the connection table size, VRRP state and sync counters. The worker owns the numbers: every scrape
 * fetches one snapshot from it.
 */
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Registry } from 'prom-client';
import { DirectorError } from './errors.js';
import { type DirectorPageSource, handleDirectorPage } from './status-page.js';
import type { MetricsSnapshot } from './worker-ha.js';

export interface MetricsSource extends DirectorPageSource {
  snapshot(): Promise<unknown>;
  readonly vrrpStates: ReadonlyMap<string, { state: string; vrid: number; priority: number }>;
}

export interface MetricsServer {
  readonly address: string;
  close(): Promise<void>;
}

const VRRP_STATES = ['INIT', 'BACKUP', 'MASTER', 'FAULT'];

/** Build the registry's text from one snapshot. */
export async function renderMetrics(snap: MetricsSnapshot, src: Pick<MetricsSource, 'vrrpStates'>): Promise<string> {
  const reg = new Registry();
  const counter = (name: string, help: string, labelNames: string[] = []) =>
    new Counter({ name, help, labelNames, registers: [reg] });
  const gauge = (name: string, help: string, labelNames: string[] = []) =>
    new Gauge({ name, help, labelNames, registers: [reg] });
  const svcL = ['service'];
  const rsL = ['service', 'server', 'forward'];
  const sc = {
    conns: counter('tierlb_ipvs_service_connections_total', 'connections scheduled to the service', svcL),
    inpkts: counter('tierlb_ipvs_service_incoming_packets_total', 'incoming packets', svcL),
    outpkts: counter('tierlb_ipvs_service_outgoing_packets_total', 'outgoing packets', svcL),
    inbytes: counter('tierlb_ipvs_service_incoming_bytes_total', 'incoming bytes', svcL),
    outbytes: counter('tierlb_ipvs_service_outgoing_bytes_total', 'outgoing bytes', svcL),
    cps: gauge('tierlb_ipvs_service_connection_rate', 'connections per second (estimator)', svcL),
    inpps: gauge('tierlb_ipvs_service_incoming_packet_rate', 'incoming packets per second', svcL),
    outpps: gauge('tierlb_ipvs_service_outgoing_packet_rate', 'outgoing packets per second', svcL),
    inbps: gauge('tierlb_ipvs_service_incoming_byte_rate', 'incoming bytes per second', svcL),
    outbps: gauge('tierlb_ipvs_service_outgoing_byte_rate', 'outgoing bytes per second', svcL),
  };
  const rc = {
    conns: counter('tierlb_ipvs_backend_connections_total', 'connections scheduled to the real server', rsL),
    inpkts: counter('tierlb_ipvs_backend_incoming_packets_total', 'incoming packets', rsL),
    outpkts: counter('tierlb_ipvs_backend_outgoing_packets_total', 'outgoing packets', rsL),
    inbytes: counter('tierlb_ipvs_backend_incoming_bytes_total', 'incoming bytes', rsL),
    outbytes: counter('tierlb_ipvs_backend_outgoing_bytes_total', 'outgoing bytes', rsL),
    cps: gauge('tierlb_ipvs_backend_connection_rate', 'connections per second (estimator)', rsL),
    inpps: gauge('tierlb_ipvs_backend_incoming_packet_rate', 'incoming packets per second', rsL),
    outpps: gauge('tierlb_ipvs_backend_outgoing_packet_rate', 'outgoing packets per second', rsL),
    inbps: gauge('tierlb_ipvs_backend_incoming_byte_rate', 'incoming bytes per second', rsL),
    outbps: gauge('tierlb_ipvs_backend_outgoing_byte_rate', 'outgoing bytes per second', rsL),
  };
  const active = gauge('tierlb_ipvs_backend_connections_active', 'ActiveConn', rsL);
  const inact = gauge('tierlb_ipvs_backend_connections_inactive', 'InActConn', rsL);
  const weight = gauge('tierlb_ipvs_backend_weight', 'weight', rsL);
  for (const s of snap.services) {
    const l = { service: s.service };
    for (const k of Object.keys(sc) as (keyof typeof sc)[]) {
      const m = sc[k];
      if (m instanceof Counter) m.inc(l, s.stats[k]);
      else m.set(l, s.stats[k]);
    }
    for (const d of s.dests) {
      const rl = { service: s.service, server: `${d.addr}:${d.port}`, forward: d.fwd };
      for (const k of Object.keys(rc) as (keyof typeof rc)[]) {
        const m = rc[k];
        if (m instanceof Counter) m.inc(rl, d.stats[k]);
        else m.set(rl, d.stats[k]);
      }
      active.set(rl, d.activeConns);
      inact.set(rl, d.inactConns);
      weight.set(rl, d.weight);
    }
  }
  const c = snap.counters;
  counter('tierlb_datapath_packets_total', 'packets received from the queue').inc(c.packets);
  const fwd = counter('tierlb_datapath_forwarded_packets_total', 'packets forwarded, by method', ['method']);
  for (const [k, v] of Object.entries(c.forwarded)) fwd.inc({ method: k }, v);
  counter('tierlb_datapath_passed_packets_total', 'packets passed to the local stack').inc(c.passed);
  counter('tierlb_datapath_dropped_packets_total', 'packets dropped').inc(c.dropped);
  const bad = counter('tierlb_datapath_bad_packets_total', 'bad packets, by reason', ['reason']);
  for (const [k, v] of Object.entries(c.bad)) bad.inc({ reason: k }, v ?? 0);
  if (snap.engine) {
    gauge('tierlb_ipvs_connection_table_size', 'entries in the connection table (templates included)').set(
      snap.engine.size,
    );
    gauge('tierlb_ipvs_connection_table_max', 'bound of the connection table').set(snap.engine.maxConns);
    // an estimate, entries × the bytes one entry was measured to cost (bench/conn-bytes.ts), not a heap reading
    gauge(
      'tierlb_ipvs_connection_table_bytes',
      'connection table memory, estimated: entries x measured bytes per entry (tierlb_ipvs_connection_entry_bytes)',
    ).set(snap.engine.tableBytes);
    gauge('tierlb_ipvs_connection_table_max_bytes', 'the memory bound the table is held to (conn_table_bytes)').set(
      snap.engine.maxTableBytes,
    );
    gauge('tierlb_ipvs_connection_entry_bytes', 'bytes per connection entry used for the estimate (measured)').set(
      snap.engine.bytesPerEntry,
    );
    const drops = counter('tierlb_ipvs_dropped_packets_total', 'packets the engine dropped, by reason', ['reason']);
    for (const [k, v] of Object.entries(snap.engine.drops)) drops.inc({ reason: k }, v);
    counter('tierlb_ipvs_expired_connections_total', 'entries expired').inc(snap.engine.expired);
    counter('tierlb_ipvs_rescheduled_connections_total', 'connections rescheduled').inc(snap.engine.rescheduled);
  }
  const vrrp = gauge('tierlb_vrrp_state', '1 for the state the instance is in', ['instance', 'vrid', 'state']);
  const prio = gauge('tierlb_vrrp_priority', 'effective priority', ['instance', 'vrid']);
  for (const [name, st] of src.vrrpStates) {
    for (const s of VRRP_STATES) vrrp.set({ instance: name, vrid: String(st.vrid), state: s }, s === st.state ? 1 : 0);
    prio.set({ instance: name, vrid: String(st.vrid) }, st.priority);
  }
  const daemons = gauge('tierlb_sync_daemon_running', 'sync daemons running', ['state', 'syncid']);
  for (const d of snap.sync.daemons) daemons.set({ state: d.state, syncid: String(d.syncid) }, 1);
  const sent = snap.sync.master;
  const sm = counter('tierlb_sync_master_messages_total', 'sync messages sent');
  const sconns = counter('tierlb_sync_master_conns_total', 'connections sent');
  if (sent) {
    sm.inc(sent.messages);
    sconns.inc(sent.conns);
  }
  const b = snap.sync.backup;
  const bm = counter('tierlb_sync_backup_messages_total', 'sync messages received');
  const binst = counter('tierlb_sync_backup_installed_total', 'synced entries, by outcome', ['outcome']);
  const bdrop = counter('tierlb_sync_backup_dropped_messages_total', 'sync messages dropped, by reason', ['reason']);
  if (b) {
    bm.inc(b.messages);
    for (const [k, v] of Object.entries(b.installed)) binst.inc({ outcome: k }, v ?? 0);
    for (const [k, v] of Object.entries(b.dropped)) bdrop.inc({ reason: k }, v ?? 0);
  }
  return reg.metrics();
}

/** Serve /metrics and the status page (./status-page.ts) on `addr` (host:port, [v6]:port or a port). */
export async function startMetrics(addr: string, src: MetricsSource): Promise<MetricsServer> {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(addr);
  const host = m ? (m[1] ?? m[2]) : '127.0.0.1';
  const port = Number(m ? m[3] : addr);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new DirectorError(
      'EDIRECTOR_METRICS_ADDRESS',
      `bad metrics address '${addr}': give host:port, [v6 address]:port or a port (0-65535)`,
    );
  const server: Server = createServer(async (req, res) => {
    if (req.url !== '/metrics') {
      try {
        // the status page: /, /status, /status/admin
        if (await handleDirectorPage(req, res, src)) return;
      } catch (e) {
        res.writeHead(500).end(`${(e as Error).message}\n`);
        return;
      }
      res.writeHead(404).end('not found\n');
      return;
    }
    src
      .snapshot()
      .then((snap) => renderMetrics(snap as MetricsSnapshot, src))
      .then(
        (text) => res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(text),
        (e: Error) => res.writeHead(500).end(`${e.message}\n`),
      );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return {
    address: `${host}:${(server.address() as { port: number }).port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
