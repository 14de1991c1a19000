/**
 * The I/O half of the health checks: TCP_CHECK (connect within connect_timeout), HTTP_GET / SSL_GET (keepalived's
 * request, status code and genhash digest) and MISC_CHECK (a command run without a shell, killed after misc_timeout).
 * A probe can carry a `mark`: the socket gets SO_MARK before it connects, so in DR the probe to VIP:port follows the
 * same policy route as the traffic forwarded to that real server.
 */
import { createHash } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { TierlbError } from '../../common/errors.js';
import { markedTcpSocket } from '../../fwmark/somark.js';
import { type Runner, run } from '../../sys/exec.js';
import { runScript } from '../../sys/script.js';
import type { TcpCheck } from '../checks-types.js';
import type { CheckOutcome } from './state.js';

export interface ProbeTarget {
  host: string;
  port: number;
  /** bindto */
  bindTo?: string;
  /** bind_port */
  bindPort?: number;
  /** SO_MARK for the probe's socket (the real server's mark in DR) */
  mark?: number;
  /** connect_timeout: for the connection and, for HTTP, for each read */
  timeoutMs: number;
}

/** Why a probe's connection or request failed; the message is the check's reason (ECONNREFUSED, timeout, ...). */
export class ProbeError extends TierlbError {
  constructor(
    override readonly code: 'EPROBE_NO_IP' | 'EPROBE_TIMEOUT' | 'EPROBE_READ_TIMEOUT' | 'EPROBE_SOCKET',
    message: string,
  ) {
    super(code, message);
    this.name = 'ProbeError';
  }
}

/** A TCP socket towards the target, SO_MARK set before connecting when a mark is given. */
export function connectSocket(t: ProbeTarget): net.Socket {
  const opts: net.TcpNetConnectOpts = { host: t.host, port: t.port };
  if (t.bindTo) opts.localAddress = t.bindTo;
  if (t.bindPort) opts.localPort = t.bindPort;
  if (!t.mark) return net.connect(opts);
  const fam = net.isIP(t.host);
  if (fam === 0)
    throw new ProbeError('EPROBE_NO_IP', `probe with a mark needs an IP address, got ${t.host} (give the address)`);
  const fd = markedTcpSocket(fam === 6 ? 6 : 4, t.mark);
  // manualStart: do not read from the socket before it is connected
  const sock = new net.Socket({ fd, readable: true, writable: true, manualStart: true } as net.SocketConstructorOpts);
  return sock.connect(opts);
}

function fail(reason: string): CheckOutcome {
  return { ok: false, reason };
}

/** TCP_CHECK: the connection is accepted within the timeout. */
export function tcpProbe(t: ProbeTarget): Promise<CheckOutcome> {
  return new Promise((resolve) => {
    let sock: net.Socket;
    try {
      sock = connectSocket(t);
    } catch (e) {
      resolve(fail(`socket: ${(e as Error).message}`));
      return;
    }
    const timer = setTimeout(() => done(fail('connect timeout')), t.timeoutMs);
    const done = (o: CheckOutcome) => {
      clearTimeout(timer);
      sock.removeAllListeners();
      sock.on('error', () => {});
      sock.destroy();
      resolve(o);
    };
    sock.once('connect', () => done({ ok: true }));
    sock.once('error', (e: NodeJS.ErrnoException) => done(fail(e.code ?? e.message)));
  });
}

export interface HttpUrl {
  path: string;
  /** accepted status codes; empty = 200-299 */
  statusCodes: number[];
  /** lower-case hex MD5 of the body, as genhash prints it */
  digest?: string;
}

export interface HttpProbeOptions {
  urls: HttpUrl[];
  /** SSL_GET */
  tls?: boolean;
  /** Host header value (without it: addr:port) */
  virtualhost?: string;
}

/** The request keepalived's HTTP_GET sends (HTTP/1.0, its User-Agent, Host as virtualhost or addr:port). */
export function httpRequest(path: string, host: string, port: number, virtualhost?: string): string {
  const h = virtualhost ?? (net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`);
  return `GET ${path} HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: ${h}\r\n\r\n`;
}

export interface ParsedResponse {
  /** 0 when the status line cannot be read */
  status: number;
  /** the body: what follows the first CRLFCRLF, cut at Content-Length when there is one */
  body: Buffer;
  /** undefined when there is no header end */
  headerEnd?: number;
}

/**
 * Split a raw response as keepalived does (extract_status_code, extract_html, extract_content_length): the status
 * is the 3 digits after the first space, the body starts after the first CRLFCRLF and is cut at Content-Length.
 * The body is taken as sent — a chunked body is hashed with its chunk framing, as genhash does.
 */
export function parseResponse(raw: Buffer): ParsedResponse {
  const m = /^[^ \r]* (\d{3}) /.exec(raw.subarray(0, Math.min(raw.length, 256)).toString('latin1'));
  const status = m ? Number(m[1]) : 0;
  const i = raw.indexOf('\r\n\r\n');
  if (i < 0) return { status, body: Buffer.alloc(0) };
  const headerEnd = i + 4;
  let body = raw.subarray(headerEnd);
  const cl = /Content-Length:\s*(\d+)\r?\n/.exec(raw.subarray(0, headerEnd).toString('latin1'));
  if (cl) body = body.subarray(0, Number(cl[1]));
  return { status, body, headerEnd };
}

/** genhash: lower-case hex MD5 of the response body. */
export function bodyDigest(body: Uint8Array): string {
  return createHash('md5').update(body).digest('hex');
}

/** Whether a status code passes a url's status_code list (keepalived's default: 200-299). */
export function statusAccepted(status: number, codes: readonly number[]): boolean {
  return codes.length === 0 ? status >= 200 && status <= 299 : codes.includes(status);
}

/** Fetch one URL: the whole response until the server closes (HTTP/1.0). */
export function httpFetch(t: ProbeTarget, path: string, o: { tls?: boolean; virtualhost?: string }): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let raw: net.Socket;
    try {
      raw = connectSocket(t);
    } catch (e) {
      reject(e);
      return;
    }
    const chunks: Buffer[] = [];
    let stream: net.Socket = raw;
    let timer = setTimeout(() => finish(new ProbeError('EPROBE_TIMEOUT', 'timeout')), t.timeoutMs);
    const finish = (err?: Error) => {
      clearTimeout(timer);
      stream.removeAllListeners('data');
      stream.on('error', () => {});
      raw.on('error', () => {});
      stream.destroy();
      raw.destroy();
      if (err) reject(err);
      else resolve(Buffer.concat(chunks));
    };
    const send = () => {
      stream.write(httpRequest(path, t.host, t.port, o.virtualhost));
      stream.on('data', (d: Buffer) => {
        chunks.push(d);
        clearTimeout(timer);
        timer = setTimeout(() => finish(new ProbeError('EPROBE_READ_TIMEOUT', 'read timeout')), t.timeoutMs);
      });
      stream.once('end', () => finish());
    };
    raw.once('error', (e: NodeJS.ErrnoException) => finish(new ProbeError('EPROBE_SOCKET', e.code ?? e.message)));
    raw.once('connect', () => {
      if (!o.tls) {
        send();
        return;
      }
      const servername = o.virtualhost && !net.isIP(o.virtualhost) ? o.virtualhost : undefined;
      stream = tls.connect({ socket: raw, rejectUnauthorized: false, servername });
      stream.once('error', (e: NodeJS.ErrnoException) => finish(new ProbeError('EPROBE_SOCKET', e.code ?? e.message)));
      stream.once('secureConnect', send);
    });
  });
}

/** HTTP_GET / SSL_GET: every URL answers with an accepted status and, when configured, the right digest. */
export async function httpProbe(t: ProbeTarget, o: HttpProbeOptions): Promise<CheckOutcome> {
  for (const u of o.urls) {
    let raw: Buffer;
    try {
      raw = await httpFetch(t, u.path, o);
    } catch (e) {
      return fail(`${u.path}: ${(e as Error).message}`);
    }
    const r = parseResponse(raw);
    if (r.headerEnd === undefined) return fail(`${u.path}: no data received`);
    if (!statusAccepted(r.status, u.statusCodes)) return fail(`${u.path}: HTTP status code ${r.status}`);
    if (u.digest) {
      const d = bodyDigest(r.body);
      if (d !== u.digest.toLowerCase()) return fail(`${u.path}: MD5 digest ${d}`);
    }
  }
  return { ok: true };
}

/** After SIGTERM at the timeout, SIGKILL follows this much later (keepalived: 2 s). */
export const MISC_KILL_GRACE_MS = 2000;

/**
 * MISC_CHECK: run the command (no shell) in its own process group; its exit status is the outcome. Past `timeoutMs`
 * the group gets SIGTERM, then SIGKILL; a killed script is a failure.
 */
export async function miscProbe(command: string, timeoutMs: number, runner: Runner = run): Promise<CheckOutcome> {
  if (!command.trim()) return fail('empty misc_path');
  const r = await runScript(command, [], { timeoutMs, killGraceMs: MISC_KILL_GRACE_MS }, runner);
  if (r.error?.code === 'EEXEC_TIMEOUT') return fail('timed out');
  if (r.error) return fail(r.error.message);
  if (r.signal) return fail(`signal ${r.signal}`);
  return { ok: r.code === 0, exitCode: r.code, reason: r.code ? `exit ${r.code}` : undefined };
}

/**
 * `nc -vz host port` for each listener port of a load-balancer node, as keepalived checks: one TCP_CHECK per port
 * (connect_port), so the node is down as soon as one of its listeners is.
 */
export function listenerPortChecks(
  ports: readonly number[],
  o: { connectTimeout?: number; retry?: number; delayBeforeRetry?: number; connectIp?: string } = {},
): TcpCheck[] {
  return ports.map((port) => ({
    type: 'tcp',
    connectPort: port,
    connectIp: o.connectIp,
    connectTimeout: o.connectTimeout ?? 5,
    retry: o.retry ?? 1,
    delayBeforeRetry: o.delayBeforeRetry ?? 1,
  }));
}
