/**
 * Prometheus /metrics on the stats port (127.0.0.1:9101 by default), built at scrape time from the same rows as
 * `tierlb listeners stats` (so aggregated over every worker). Also /stats (HAProxy CSV), /stats.json and the status
 * page (./status-page/).
 *
 * Labels: `listener` on the tierlb_listener_* families (the FRONTEND rows); the server families keep the label
 * `listener` for the server's proxy, which is its group (a listener's own servers are the group named after it);
 * the tierlb_group_* families (one per group, HAProxy backend) carry `group`.
 */
import http from 'node:http';
import { Counter, Gauge, Registry } from 'prom-client';
import { formatCsv, HRSP_CLASSES, type StatRow } from './stats.js';

export interface MetricsServer {
  close(): Promise<void>;
  port: number;
}

const n = (v: string | number) => (typeof v === 'number' ? v : Number(v) || 0);

export function buildRegistry(rows: readonly StatRow[]): Registry {
  const reg = new Registry();
  const g = (name: string, help: string, labels: string[]) =>
    new Gauge({ name, help, labelNames: labels, registers: [reg] });
  const c = (name: string, help: string, labels: string[]) =>
    new Counter({ name, help, labelNames: labels, registers: [reg] });
  const fe = ['listener'];
  const sv = ['listener', 'server'];
  const gr = ['group'];
  const m = {
    feCur: g('tierlb_listener_current_sessions', 'client connections open now (scur)', fe),
    feMax: g('tierlb_listener_max_sessions', 'peak client connections, summed over workers (smax)', fe),
    feTot: c('tierlb_listener_sessions_total', 'client connections accepted (stot)', fe),
    feIn: c('tierlb_listener_bytes_in_total', 'bytes from clients (bin)', fe),
    feOut: c('tierlb_listener_bytes_out_total', 'bytes to clients (bout)', fe),
    feReq: c(
      'tierlb_listener_request_errors_total',
      'request errors: bad requests, timeouts, bad PROXY headers (ereq)',
      fe,
    ),
    feSplice: c('tierlb_listener_spliced_total', 'mode tcp: client connections spliced in the kernel', fe),
    feSpliceBytes: c(
      'tierlb_listener_splice_bytes_total',
      'mode tcp: bytes the kernel carried for spliced connections, both ways (also in bin/bout)',
      fe,
    ),
    feHrsp: c('tierlb_listener_http_responses_total', 'HTTP responses by class (hrsp_*)', ['listener', 'code']),
    beQ: g('tierlb_listener_queue_current', 'requests waiting for a server slot (qcur)', fe),
    beQmax: g('tierlb_listener_queue_max', 'peak queue (qmax)', fe),
    sUp: g('tierlb_server_up', '1 when the server takes traffic (status UP)', sv),
    sStatus: g('tierlb_server_status', 'server status (1 for the current one)', ['listener', 'server', 'state']),
    sW: g('tierlb_server_weight', 'effective weight (agent %, slowstart)', sv),
    sCur: g('tierlb_server_current_sessions', 'connections on the server now, all workers (scur)', sv),
    sMax: g('tierlb_server_max_sessions', 'peak connections (smax)', sv),
    sTot: c('tierlb_server_sessions_total', 'connections made to the server (stot)', sv),
    sLb: c('tierlb_server_loadbalanced_total', 'times the balancer chose the server (lbtot)', sv),
    sIn: c('tierlb_server_bytes_in_total', 'bytes sent to the server (bin)', sv),
    sOut: c('tierlb_server_bytes_out_total', 'bytes received from the server (bout)', sv),
    sEcon: c('tierlb_server_connection_errors_total', 'failed connections to the server (econ)', sv),
    sEresp: c('tierlb_server_response_errors_total', 'errors while reading the response (eresp)', sv),
    sRetr: c('tierlb_server_retry_warnings_total', 'retries (wretr)', sv),
    sRedis: c('tierlb_server_redispatch_warnings_total', 'redispatches to this server (wredis)', sv),
    sChkF: c('tierlb_server_check_failures_total', 'failed checks (chkfail)', sv),
    sChkD: c('tierlb_server_check_up_down_total', 'UP→DOWN transitions (chkdown)', sv),
    gUp: g('tierlb_group_up', '1 when the group has a server taking traffic (BACKEND status UP)', gr),
    gAct: g('tierlb_group_active_servers', 'active servers UP (act)', gr),
    gBck: g('tierlb_group_backup_servers', 'backup servers UP (bck)', gr),
    gW: g('tierlb_group_weight', 'sum of the effective weights of the servers UP', gr),
    gCur: g('tierlb_group_current_sessions', 'connections on its servers now (scur)', gr),
    gTot: c('tierlb_group_sessions_total', 'connections made to its servers (stot)', gr),
    gLb: c('tierlb_group_loadbalanced_total', 'times the balancer chose one of its servers (lbtot)', gr),
    gIn: c('tierlb_group_bytes_in_total', 'bytes sent to its servers (bin)', gr),
    gOut: c('tierlb_group_bytes_out_total', 'bytes received from its servers (bout)', gr),
    gEcon: c('tierlb_group_connection_errors_total', 'failed connections to its servers (econ)', gr),
    gEresp: c('tierlb_group_response_errors_total', 'errors while reading responses (eresp)', gr),
    gQ: g('tierlb_group_queue_current', 'requests waiting for a server slot (qcur)', gr),
    gQmax: g('tierlb_group_queue_max', 'peak queue (qmax)', gr),
    gHrsp: c('tierlb_group_http_responses_total', 'HTTP responses to requests sent to the group, by class', [
      'group',
      'code',
    ]),
  };
  for (const r of rows) {
    const l = String(r.pxname);
    if (r.svname === 'FRONTEND') {
      m.feCur.set({ listener: l }, n(r.scur));
      m.feMax.set({ listener: l }, n(r.smax));
      m.feTot.inc({ listener: l }, n(r.stot));
      m.feIn.inc({ listener: l }, n(r.bin));
      m.feOut.inc({ listener: l }, n(r.bout));
      m.feReq.inc({ listener: l }, n(r.ereq));
      m.feSplice.inc({ listener: l }, n(r.splice_tot));
      m.feSpliceBytes.inc({ listener: l }, n(r.splice_bytes));
      for (const code of HRSP_CLASSES) m.feHrsp.inc({ listener: l, code }, n(r[`hrsp_${code}`]));
    } else if (r.svname === 'BACKEND') {
      m.beQ.set({ listener: l }, n(r.qcur));
      m.beQmax.set({ listener: l }, n(r.qmax));
      const grp = { group: l };
      m.gUp.set(grp, r.status === 'UP' ? 1 : 0);
      m.gAct.set(grp, n(r.act));
      m.gBck.set(grp, n(r.bck));
      m.gW.set(grp, n(r.weight));
      m.gCur.set(grp, n(r.scur));
      m.gTot.inc(grp, n(r.stot));
      m.gLb.inc(grp, n(r.lbtot));
      m.gIn.inc(grp, n(r.bin));
      m.gOut.inc(grp, n(r.bout));
      m.gEcon.inc(grp, n(r.econ));
      m.gEresp.inc(grp, n(r.eresp));
      m.gQ.set(grp, n(r.qcur));
      m.gQmax.set(grp, n(r.qmax));
      for (const code of HRSP_CLASSES) m.gHrsp.inc({ group: l, code }, n(r[`hrsp_${code}`]));
    } else {
      const s = { listener: l, server: String(r.svname) };
      m.sUp.set(s, r.status === 'UP' ? 1 : 0);
      for (const st of ['UP', 'DOWN', 'NOLB', 'MAINT']) m.sStatus.set({ ...s, state: st }, r.status === st ? 1 : 0);
      m.sW.set(s, n(r.weight));
      m.sCur.set(s, n(r.scur));
      m.sMax.set(s, n(r.smax));
      m.sTot.inc(s, n(r.stot));
      m.sLb.inc(s, n(r.lbtot));
      m.sIn.inc(s, n(r.bin));
      m.sOut.inc(s, n(r.bout));
      m.sEcon.inc(s, n(r.econ));
      m.sEresp.inc(s, n(r.eresp));
      m.sRetr.inc(s, n(r.wretr));
      m.sRedis.inc(s, n(r.wredis));
      m.sChkF.inc(s, n(r.chkfail));
      m.sChkD.inc(s, n(r.chkdown));
    }
  }
  return reg;
}

export function startMetrics(
  host: string,
  port: number,
  rows: () => Promise<StatRow[]>,
  /** more routes (the status page): true when it answered */
  extra?: (req: http.IncomingMessage, res: http.ServerResponse) => Promise<boolean>,
): Promise<MetricsServer> {
  const server = http.createServer(async (req, res) => {
    try {
      const url = (req.url ?? '/').split('?')[0];
      if (extra && (await extra(req, res))) return;
      if (url === '/metrics') {
        const reg = buildRegistry(await rows());
        res.writeHead(200, { 'content-type': reg.contentType });
        res.end(await reg.metrics());
      } else if (url === '/stats') {
        res.writeHead(200, { 'content-type': 'text/csv' });
        res.end(formatCsv(await rows()));
      } else if (url === '/stats.json') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(await rows()));
      } else {
        res.writeHead(404).end('not found\n');
      }
    } catch (e) {
      res.writeHead(500).end(`${String(e)}\n`);
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      const addr = server.address();
      resolve({
        port: typeof addr === 'object' && addr ? addr.port : port,
        close: () => new Promise<void>((r) => server.close(() => r())),
      });
    });
  });
}
