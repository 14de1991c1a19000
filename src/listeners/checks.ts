/**
 * Health checks, run by the cluster primary only (one prober per server, however many workers): tcp connect,
 * http (method, uri, expect status or string) and HAProxy's agent-check. rise/fall turn results into state
 * changes; the pool is updated at once and published to the shared memory (or read by the primary's own picks
 * without it), so a state change is in effect for every worker from the next pick on.
 */
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import type { CheckSpec } from './config.js';
import type { ServerState } from './pool.js';
import type { SslSpec } from './tls-schema.js';

export interface CheckResult {
  ok: boolean;
  /** HAProxy check_status: L4OK L4TOUT L4CON L7OK L7STS L7RSP L7TOUT SOCKERR */
  status: string;
  code?: number;
  desc: string;
}

/** Apply one check result (rise/fall). Returns 'up' / 'down' when the server changed state. */
export function applyResult(s: ServerState, r: CheckResult, spec: CheckSpec, now: number): 'up' | 'down' | null {
  s.checkStatus = r.status;
  s.checkCode = r.code ?? 0;
  s.checkDesc = r.desc;
  if (!r.ok) s.chkfail++;
  if (s.healthy) {
    s.health = r.ok ? 0 : s.health + 1;
    if (s.health >= spec.fall) {
      s.healthy = false;
      s.health = 0;
      s.chkdown++;
      s.lastchg = now;
      return 'down';
    }
  } else {
    s.health = r.ok ? s.health + 1 : 0;
    if (s.health >= spec.rise) {
      s.healthy = true;
      s.health = 0;
      s.upSince = now;
      s.lastchg = now;
      return 'up';
    }
  }
  return null;
}

/** What an agent said (HAProxy agent-check: comma/space separated words, e.g. "up 75%", "drain", "maint"). */
export interface AgentReply {
  admin?: 'ready' | 'drain' | 'maint';
  /** 'up' / 'down' force the operational state (down: "down", "failed", "stopped") */
  oper?: 'up' | 'down';
  weightPct?: number;
  desc?: string;
}

export function parseAgentReply(line: string): AgentReply {
  const out: AgentReply = {};
  const [words, ...descParts] = line.trim().split('#');
  if (descParts.length) out.desc = descParts.join('#').trim();
  for (const w of (words ?? '')
    .toLowerCase()
    .split(/[\s,]+/)
    .filter(Boolean)) {
    const pct = /^(\d+)%$/.exec(w);
    if (pct) out.weightPct = Math.min(256, Number(pct[1]));
    else if (w === 'ready') out.admin = 'ready';
    else if (w === 'drain') out.admin = 'drain';
    else if (w === 'maint') out.admin = 'maint';
    else if (w === 'up') out.oper = 'up';
    else if (w === 'down' || w === 'failed' || w === 'fail' || w === 'stopped') out.oper = 'down';
  }
  return out;
}

/** One check of one server (over TLS when the server has `ssl`, as HAProxy's check-ssl). Never throws. */
export function runCheck(
  host: string,
  port: number,
  spec: CheckSpec,
  timeout: number,
  ssl?: SslSpec,
): Promise<CheckResult> {
  if (spec.type === 'http') return httpCheck(host, port, spec, timeout, ssl);
  return ssl ? sslCheck(host, port, timeout, ssl) : tcpCheck(host, port, timeout);
}

/** the TLS options of a check to a server with `ssl` */
function sslOptions(host: string, ssl: SslSpec): tls.ConnectionOptions {
  return {
    servername: ssl.sni ?? (net.isIP(host) ? undefined : host),
    rejectUnauthorized: ssl.verify === 'required',
    ...(ssl.caPem ? { ca: ssl.caPem } : {}),
  };
}

/** connect and handshake (HAProxy's L6 check) */
function sslCheck(host: string, port: number, timeout: number, ssl: SslSpec): Promise<CheckResult> {
  return new Promise((resolve) => {
    let connected = false;
    const sock = tls.connect({ host, port, ...sslOptions(host, ssl) });
    const t = checkTimer(timeout, () => {
      sock.destroy();
      resolve(connected ? { ok: false, status: 'L6TOUT', desc: 'TLS handshake timeout' } : l4tout());
    });
    sock.once('connect', () => (connected = true));
    sock.once('secureConnect', () => {
      clearTimeout(t);
      sock.destroy();
      resolve({ ok: true, status: 'L6OK', desc: 'Layer6 check passed' });
    });
    sock.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(t);
      resolve(
        connected
          ? { ok: false, status: 'L6RSP', desc: `TLS: ${e.code ?? e.message}` }
          : { ok: false, status: 'L4CON', desc: e.code ?? e.message },
      );
    });
  });
}

/**
 * A check's timeout. The verdict waits one turn of the event loop past the timer: an answer already in the socket
 * when a late timer fires (the checking process was slow to run, not the server to answer) is read first and counts
 * (the first verdict stands).
 */
function checkTimer(ms: number, onTimeout: () => void): NodeJS.Timeout {
  return setTimeout(() => setImmediate(onTimeout), ms);
}

function l4tout(): CheckResult {
  return { ok: false, status: 'L4TOUT', desc: 'connect timeout' };
}

function tcpCheck(host: string, port: number, timeout: number): Promise<CheckResult> {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port });
    const t = checkTimer(timeout, () => {
      sock.destroy();
      resolve(l4tout());
    });
    sock.once('connect', () => {
      clearTimeout(t);
      sock.destroy();
      resolve({ ok: true, status: 'L4OK', desc: 'Layer4 check passed' });
    });
    sock.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(t);
      resolve({ ok: false, status: 'L4CON', desc: e.code ?? e.message });
    });
  });
}

function httpCheck(
  host: string,
  port: number,
  spec: CheckSpec,
  timeout: number,
  ssl: SslSpec | undefined,
): Promise<CheckResult> {
  return new Promise((resolve) => {
    let settled = false;
    const finish = (r: CheckResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(t);
      req.destroy();
      resolve(r);
    };
    const req = (ssl ? https : http).request({
      ...(ssl ? sslOptions(host, ssl) : {}),
      host,
      port,
      method: spec.method,
      path: spec.uri,
      agent: false,
      headers: { host: spec.host ?? `${host}:${port}`, 'user-agent': 'tierlb-check', connection: 'close' },
    });
    const t = checkTimer(timeout, () => finish({ ok: false, status: 'L7TOUT', desc: 'check timeout' }));
    req.on('error', (e: NodeJS.ErrnoException) =>
      finish({ ok: false, status: e.code === 'ECONNREFUSED' ? 'L4CON' : 'SOCKERR', desc: e.code ?? e.message }),
    );
    req.on('response', (res) => {
      const code = res.statusCode ?? 0;
      const statusOk = spec.expectStatus !== undefined ? code === spec.expectStatus : code >= 200 && code < 400;
      if (!statusOk) {
        res.resume();
        finish({ ok: false, status: 'L7STS', code, desc: `HTTP status ${code}` });
        return;
      }
      if (spec.expectString === undefined) {
        res.resume();
        finish({ ok: true, status: 'L7OK', code, desc: 'Layer7 check passed' });
        return;
      }
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        body += d;
        if (body.includes(spec.expectString!)) finish({ ok: true, status: 'L7OK', code, desc: 'Layer7 check passed' });
        if (body.length > 65536) body = body.slice(-spec.expectString!.length);
      });
      res.on('end', () => finish({ ok: false, status: 'L7RSP', code, desc: 'expected string not found' }));
      res.on('error', () => finish({ ok: false, status: 'L7RSP', code, desc: 'response error' }));
    });
    req.end();
  });
}

/** Ask an agent (HAProxy agent protocol: connect, optionally send a string, read one line). null = no answer. */
export function runAgent(
  host: string,
  port: number,
  send: string | undefined,
  timeout: number,
): Promise<AgentReply | null> {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port });
    let buf = '';
    let settled = false;
    const finish = (r: AgentReply | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(t);
      sock.destroy();
      resolve(r);
    };
    const t = checkTimer(timeout, () => finish(buf ? parseAgentReply(buf) : null));
    sock.setEncoding('utf8');
    sock.on('connect', () => {
      if (send) sock.write(send);
    });
    sock.on('data', (d: string) => {
      buf += d;
      const nl = buf.search(/[\r\n]/);
      if (nl >= 0) finish(parseAgentReply(buf.slice(0, nl)));
    });
    sock.on('end', () => finish(buf ? parseAgentReply(buf) : null));
    sock.on('error', () => finish(null));
  });
}
