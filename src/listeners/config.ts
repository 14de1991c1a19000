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
  type RawTimeouts,
  type SendProxy,
} from './config-schema.js';
import { readListenerFiles } from './tls-config.js';
import { resolveSsl, resolveTls, type SslSpec, type TlsSpec } from './tls-schema.js';

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

export interface ListenerSpec {
  name: string;
  host: string;
  port: number;
  mode: 'tcp' | 'http';
  balance: string;
  acceptProxy: boolean;
  forwardfor: boolean;
  timeout: Timeouts;
  retries: number;
  redispatch: boolean;
  maxqueue: number;
  check?: CheckSpec;
  servers: ServerSpec[];
  /** TLS termination */
  tls?: TlsSpec;
}

export interface ListenersConfig {
  file: string;
  workers: number;
  control: string;
  stats: { enabled: boolean; host: string; port: number };
  listeners: ListenerSpec[];
  /** TLS session ticket keys (48 bytes, base64), made by the primary and the same in every worker */
  tlsTicketKeys?: string;
}

export const DEFAULT_CONTROL = '/run/tierlb/listeners.sock';
export const DEFAULT_STATS = '127.0.0.1:9101';

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

/** Resolve a schema-valid section (the loader has already checked it). */
export function resolveListeners(sec: ListenersSection, file: string): ListenersConfig {
  const d = sec.defaults ?? {};
  const base = timeouts(DEFAULT_TIMEOUTS, d.timeout);
  const stats = parseHostPort(sec.stats?.bind ?? DEFAULT_STATS);
  return {
    file,
    workers: sec.workers ?? Math.max(1, os.availableParallelism?.() ?? os.cpus().length),
    control: sec.control ?? DEFAULT_CONTROL,
    stats: { enabled: sec.stats?.enabled ?? true, ...stats },
    listeners: (sec.listen ?? []).map((l) => {
      const bind = parseHostPort(l.bind);
      const chk = check(l.check, d.check);
      const balance = l.balance ?? 'roundrobin';
      if (!BALANCE_RE.test(balance)) throw new ConfigValueError(`unknown balance ${balance}`);
      const t = timeouts(base, l.timeout);
      const mode = l.mode ?? 'tcp';
      return {
        name: l.name,
        host: bind.host,
        port: bind.port,
        mode,
        balance,
        acceptProxy: l.accept_proxy ?? false,
        forwardfor: l.forwardfor ?? d.forwardfor ?? false,
        timeout: t,
        retries: l.retries ?? d.retries ?? 3,
        redispatch: l.redispatch ?? d.redispatch ?? true,
        maxqueue: l.maxqueue ?? 0,
        check: chk,
        servers: l.servers.map((s) => {
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
            sendProxy: s.send_proxy ?? l.send_proxy ?? false,
            agent: s.agent
              ? {
                  host: s.agent.address ?? a.host,
                  port: s.agent.port,
                  inter: s.agent.inter === undefined ? (chk?.inter ?? 2000) : parseDuration(s.agent.inter),
                  send: s.agent.send,
                }
              : undefined,
            disabled: s.disabled ?? false,
            ssl: resolveSsl(s.ssl, l.ssl),
          };
        }),
        tls: resolveTls(l.tls, mode),
      };
    }),
  };
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
