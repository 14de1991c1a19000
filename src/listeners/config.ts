/**
 * The `listeners` section, resolved: defaults applied, durations in milliseconds, addresses split. The file is read
 * by the shared config loader (src/config, file:line:col problems); `loadListenersConfig` is the one function the
 * listeners call, so the cluster primary, reload and the CLI all read configs the same way.
 */
import os from 'node:os';
import { ConfigError, ConfigValueError, loadConfigFile, loadConfigString, problemAt } from '../config/index.js';
import {
  BALANCE_RE,
  type ListenersSection,
  parseDuration,
  parseHostPort,
  type RawCheck,
  type RawGroup,
  type RawServer,
  type RawTimeouts,
  type SendProxy,
} from './config-schema.js';
import type { RawRoutes } from './routing/rules.js';
import { noteGroupPath, readListenerFiles } from './tls-config.js';
import { type RawSsl, resolveSsl, resolveTls, type SslSpec, type TlsSpec } from './tls-schema.js';

export interface Timeouts {
  connect: number;
  client: number;
  server: number;
  httpRequest: number;
  httpKeepAlive: number;
  queue: number;
  tunnel: number;
  check: number;
}

export interface CheckSpec {
  type: 'tcp' | 'http';
  method: string;
  uri: string;
  host?: string;
  expectStatus?: number;
  expectString?: string;
  inter: number;
  rise: number;
  fall: number;
}

export interface ServerSpec {
  name: string;
  host: string;
  port: number;
  weight: number;
  maxconn: number;
  backup: boolean;
  slowstart: number;
  check: boolean;
  sendProxy: SendProxy;
  agent?: { host: string; port: number; inter: number; send?: string };
  disabled: boolean;
  /** TLS to this server (re-encryption), and for its checks */
  ssl?: SslSpec;
}

/**
 * A server group (HAProxy backend): the unit of balancing, checks, queue, stats and metrics. Group names are unique
 * over the file; a listener with its own `servers` is a group named after the listener.
 */
export interface GroupSpec {
  name: string;
  balance: string;
  /** server-side timeouts are the group's (connect, server, queue, tunnel, check); the rest the listener's */
  timeout: Timeouts;
  retries: number;
  redispatch: boolean;
  maxqueue: number;
  check?: CheckSpec;
  servers: ServerSpec[];
}

/** `splice` when a listener does not say: off; TIERLB_SPLICE_DEFAULT=auto|on|off changes it (to run the TCP-mode
 * tests over the splice) */
function defaultSplice(): 'auto' | 'on' | 'off' {
  const e = process.env.TIERLB_SPLICE_DEFAULT;
  return e === 'auto' || e === 'on' || e === 'off' ? e : 'off';
}

/**
 * A listener (HAProxy frontend, or `listen` with its own servers). Its GroupSpec fields are its own servers' group
 * (the one named after the listener; `servers` empty when it only sends to named groups).
 */
export interface ListenerSpec extends GroupSpec {
  host: string;
  port: number;
  mode: 'tcp' | 'http';
  acceptProxy: boolean;
  /** frontend maxconn, 0: none; each worker takes its share (maxconnWorker, rounded up): beyond it, connections
   * wait unread (paused, as in the kernel's backlog) until one of the worker's closes */
  maxconn: number;
  maxconnWorker: number;
  /** connections accepted in a row per wakeup of the listening socket (HAProxy's tune.maxaccept; ./worker/accept-batch.ts) */
  maxaccept: number;
  /** listen(2) backlog: as HAProxy, the listener's maxconn when not given, else 65535; the kernel caps it at
   * net.core.somaxconn. Too small, and a burst of connects overflows it: SYNs dropped, clients retry after 1 s. */
  backlog: number;
  /** mode tcp: splice established pairs in the kernel (../splice/splice.ts): auto (when it loads), on (or refuse
   * to start), off (relay in Node) */
  splice: 'auto' | 'on' | 'off';
  forwardfor: boolean;
  /** where a request goes when no use_group rule matches */
  defaultGroup: string;
  /** http_request / use_group / http_response as written (compiled by each worker: ./routing/rules.ts) */
  routes?: RawRoutes;
  /** TLS termination */
  tls?: TlsSpec;
}

export interface ListenersConfig {
  file: string;
  workers: number;
  /** trim memory when quiet after a burst (./memory-trim.ts; HAProxy's no-memory-trimming turns it off) */
  memoryTrim: boolean;
  control: string;
  /** admin: the status page's admin mode (HTTP Basic); absent = read-only page */
  stats: { enabled: boolean; host: string; port: number; admin?: { user: string; password: string } };
  listeners: ListenerSpec[];
  /** every group of the file (listener-implied ones included), in config order: what the primary balances */
  groups: GroupSpec[];
  /** TLS session ticket keys (48 bytes, base64), made by the primary and the same in every worker */
  tlsTicketKeys?: string;
}

export const DEFAULT_CONTROL = '/run/tierlb/listeners.sock';
export const DEFAULT_STATS = '127.0.0.1:9101';
/** the largest listen(2) backlog asked for (Linux caps it at net.core.somaxconn, 4096 by default since 5.4) */
export const MAX_BACKLOG = 65535;
/** tune.maxaccept: HAProxy 1.x's default (2.6's is 4, with one thread accepting for all and handing connections on);
 * a worker takes maxaccept / (2 × workers) per wakeup (./worker/accept-batch.ts acceptBatch) */
export const DEFAULT_MAXACCEPT = 64;

/** HAProxy-like defaults (its examples' values), in ms. */
const DEFAULT_TIMEOUTS: Timeouts = {
  connect: 5000,
  client: 50_000,
  server: 50_000,
  httpRequest: 10_000,
  httpKeepAlive: 5000,
  queue: 5000,
  tunnel: 3_600_000,
  check: 2000,
};

function timeouts(base: Timeouts, raw?: RawTimeouts): Timeouts {
  if (!raw) return base;
  const d = (v: RawTimeouts[keyof RawTimeouts], dflt: number) => (v === undefined ? dflt : parseDuration(v));
  return {
    connect: d(raw.connect, base.connect),
    client: d(raw.client, base.client),
    server: d(raw.server, base.server),
    httpRequest: d(raw.http_request, base.httpRequest),
    httpKeepAlive: d(raw.http_keep_alive, base.httpKeepAlive),
    queue: d(raw.queue, base.queue),
    tunnel: d(raw.tunnel, base.tunnel),
    check: d(raw.check, base.check),
  };
}

function check(raw: RawCheck | undefined, dflt: RawCheck | undefined): CheckSpec | undefined {
  if (!raw && !dflt) return undefined;
  const c = { ...dflt, ...raw };
  return {
    type: c.type ?? (c.uri || c.expect ? 'http' : 'tcp'),
    method: c.method ?? 'GET',
    uri: c.uri ?? '/',
    host: c.host,
    expectStatus: c.expect?.status,
    expectString: c.expect?.string,
    inter: c.inter === undefined ? 2000 : parseDuration(c.inter),
    rise: c.rise ?? 2,
    fall: c.fall ?? 3,
  };
}

function servers(
  raw: RawServer[],
  chk: CheckSpec | undefined,
  sendProxy: SendProxy | undefined,
  ssl: RawSsl | undefined,
): ServerSpec[] {
  return raw.map((s) => {
    const a = parseHostPort(s.address);
    return {
      name: s.name,
      host: a.host,
      port: a.port,
      weight: s.weight ?? 1,
      maxconn: s.maxconn ?? 0,
      backup: s.backup ?? false,
      slowstart: s.slowstart === undefined ? 0 : parseDuration(s.slowstart),
      check: chk ? (s.check ?? true) : false,
      sendProxy: s.send_proxy ?? sendProxy ?? false,
      agent: s.agent
        ? {
            host: s.agent.address ?? a.host,
            port: s.agent.port,
            inter: s.agent.inter === undefined ? (chk?.inter ?? 2000) : parseDuration(s.agent.inter),
            send: s.agent.send,
          }
        : undefined,
      disabled: s.disabled ?? false,
      ssl: resolveSsl(s.ssl, ssl),
    };
  });
}

/** What a group inherits when it does not say: its listener's settings (or the defaults, for a file-level group). */
interface Inherited {
  timeout: Timeouts;
  retries: number;
  redispatch: boolean;
  maxqueue: number;
  sendProxy?: SendProxy;
  check?: RawCheck;
  /** the servers' `ssl` unless they say their own */
  ssl?: RawSsl;
}

function group(g: RawGroup, base: Inherited): GroupSpec {
  const balance = g.balance ?? 'roundrobin';
  if (!BALANCE_RE.test(balance)) throw new ConfigValueError(`unknown balance ${balance}`);
  const chk = check(g.check, base.check);
  return {
    name: g.name,
    balance,
    timeout: timeouts(base.timeout, g.timeout),
    retries: g.retries ?? base.retries,
    redispatch: g.redispatch ?? base.redispatch,
    maxqueue: g.maxqueue ?? base.maxqueue,
    check: chk,
    servers: servers(g.servers, chk, g.send_proxy ?? base.sendProxy, g.ssl ?? base.ssl),
  };
}

/** Resolve a schema-valid section (the loader has already checked it). */
export function resolveListeners(sec: ListenersSection, file: string): ListenersConfig {
  const d = sec.defaults ?? {};
  const base = timeouts(DEFAULT_TIMEOUTS, d.timeout);
  const stats = parseHostPort(sec.stats?.bind ?? DEFAULT_STATS);
  const fileBase: Inherited = {
    timeout: base,
    retries: d.retries ?? 3,
    redispatch: d.redispatch ?? true,
    maxqueue: 0,
    check: d.check,
  };
  const groups: GroupSpec[] = [];
  const workers = sec.workers ?? Math.max(1, os.availableParallelism?.() ?? os.cpus().length);
  const listeners = (sec.listen ?? []).map((l, i): ListenerSpec => {
    const bind = parseHostPort(l.bind);
    const inherited: Inherited = {
      timeout: timeouts(base, l.timeout),
      retries: l.retries ?? fileBase.retries,
      redispatch: l.redispatch ?? fileBase.redispatch,
      maxqueue: l.maxqueue ?? 0,
      sendProxy: l.send_proxy,
      check: d.check,
      ssl: l.ssl,
    };
    const own = group({ ...l, servers: l.servers ?? [] }, inherited);
    if (l.servers) groups.push(own);
    (l.groups ?? []).forEach((g, k) => {
      const spec = group(g, inherited);
      noteGroupPath(spec, ['listen', i, 'groups', k]);
      groups.push(spec);
    });
    const routes: RawRoutes | undefined =
      l.http_request || l.use_group || l.http_response
        ? { http_request: l.http_request, use_group: l.use_group, http_response: l.http_response }
        : undefined;
    return {
      ...own,
      host: bind.host,
      port: bind.port,
      mode: l.mode ?? 'tcp',
      tls: resolveTls(l.tls, l.mode ?? 'tcp'),
      acceptProxy: l.accept_proxy ?? false,
      maxconn: l.maxconn ?? 0,
      maxconnWorker: l.maxconn ? Math.ceil(l.maxconn / workers) : 0,
      maxaccept: sec.maxaccept ?? DEFAULT_MAXACCEPT,
      backlog: l.backlog ?? (l.maxconn ? Math.min(l.maxconn, MAX_BACKLOG) : MAX_BACKLOG),
      splice: l.splice ?? defaultSplice(),
      forwardfor: l.forwardfor ?? d.forwardfor ?? false,
      defaultGroup: l.default_group ?? (l.servers ? l.name : (l.groups?.[0]?.name ?? l.name)),
      routes,
    };
  });
  (sec.groups ?? []).forEach((g, k) => {
    const spec = group(g, fileBase);
    noteGroupPath(spec, ['groups', k]);
    groups.push(spec);
  });
  return {
    file,
    workers,
    memoryTrim: sec.memory_trim ?? true,
    control: sec.control ?? DEFAULT_CONTROL,
    stats: { enabled: sec.stats?.enabled ?? true, ...stats, ...(sec.stats?.admin ? { admin: sec.stats.admin } : {}) },
    listeners,
    groups,
  };
}

/** What a proxy name (a listener, or a group) serves: its mode and the addresses it is reached on — a group takes
 * them from the listeners that send to it (its own listener, default_group, use_group). For the runtime API's
 * `show stat` and the status page. */
export function proxyInfo(listeners: readonly ListenerSpec[]): Map<string, { mode: string; binds: string[] }> {
  const out = new Map<string, { mode: string; binds: string[] }>();
  const add = (name: string, l: ListenerSpec) => {
    const bind = `${l.host}:${l.port}`;
    const e = out.get(name);
    if (!e) out.set(name, { mode: l.mode, binds: [bind] });
    else if (!e.binds.includes(bind)) e.binds.push(bind);
  };
  for (const l of listeners) {
    add(l.name, l);
    add(l.defaultGroup, l);
    for (const u of l.routes?.use_group ?? []) if (typeof u?.group === 'string') add(u.group, l);
  }
  return out;
}

function pick(config: { listeners?: unknown }, file: string): ListenersConfig {
  if (!config.listeners)
    throw new ConfigError([{ file, line: 0, column: 0, path: '', message: 'no listeners section' }]);
  return resolveListeners(config.listeners as ListenersSection, file);
}

/** Load and resolve the `listeners` section of a config file, its TLS files read. Throws ConfigError
 * (file:line:col: reason). */
export async function loadListenersConfig(file: string): Promise<ListenersConfig> {
  const { config, source } = await loadConfigFile(file, { sections: ['listeners'] });
  const cfg = pick(config, file);
  const problems = readListenerFiles(cfg);
  if (problems.length)
    throw new ConfigError(problems.map((p) => problemAt(source, ['listeners', ...p.path], p.message)));
  return cfg;
}

/** Same from YAML text (tests). */
export function loadListenersConfigString(text: string, file = '<string>'): ListenersConfig {
  return pick(loadConfigString(text, file, { sections: ['listeners'] }).config, file);
}
