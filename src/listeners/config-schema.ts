/**
 * JSON schema (and TypeScript shape) of the `listeners` config section: the L7 listeners of an LB node, in the
 * manner of HAProxy's `listen` sections (frontend + backend in one). Keys are snake_case like the rest of the tierlb
 * config; the HAProxy keyword each one mirrors is noted beside it. Cross-field rules (duplicate names and binds,
 * addresses, durations, balance expressions) are checked by the validator registered at the bottom, so the config
 * loader reports them at file:line:col with everything else.
 *
 *   listeners:
 *     workers: 2                        # cluster workers (default: one per CPU)
 *     control: /run/tierlb/listeners.sock
 *     stats: { bind: 127.0.0.1:9101 }   # Prometheus /metrics (and /stats.json)
 *     defaults: { timeout: {...}, retries: 3, redispatch: true }
 *     listen:
 *       - name: web
 *         bind: 0.0.0.0:80
 *         mode: http
 *         balance: roundrobin
 *         check: { type: http, uri: /health, expect: { status: 200 }, inter: 2s, rise: 2, fall: 3 }
 *         servers:
 *           - { name: web1, address: 10.0.0.11:8080, weight: 100 }
 */
import { ConfigValueError } from '../config/problems.js';
import { registerSection, type SectionContext } from '../config/registry.js';
import { type RawSsl, type RawTls, sslSchema, tlsSchema, validateTls } from './tls-schema.js';

/** A duration: milliseconds as a number, or a string with a unit (`500ms`, `5s`, `2m`, `1h`, `1d`). */
const duration = {
  anyOf: [
    { type: 'integer', minimum: 0 },
    { type: 'string', pattern: '^\\s*\\d+(\\.\\d+)?\\s*(us|ms|s|m|h|d)?\\s*$' },
  ],
} as const;

const sendProxy = { enum: [false, 'v1', 'v2'] } as const;

const timeoutSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    connect: duration, // timeout connect
    client: duration, // timeout client
    server: duration, // timeout server
    http_request: duration, // timeout http-request
    http_keep_alive: duration, // timeout http-keep-alive
    queue: duration, // timeout queue
    tunnel: duration, // timeout tunnel
    check: duration, // timeout check
  },
} as const;

const expectSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    status: { type: 'integer', minimum: 100, maximum: 599 }, // http-check expect status
    string: { type: 'string' }, // http-check expect string
  },
} as const;

const checkSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    type: { enum: ['tcp', 'http'] }, // option tcp-check / option httpchk
    method: { type: 'string', pattern: '^[A-Z]+$' },
    uri: { type: 'string', pattern: '^/' },
    host: { type: 'string' },
    expect: expectSchema,
    inter: duration,
    rise: { type: 'integer', minimum: 1, maximum: 1000 },
    fall: { type: 'integer', minimum: 1, maximum: 1000 },
  },
} as const;

const agentSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['port'],
  properties: {
    port: { type: 'integer', minimum: 1, maximum: 65535 }, // agent-port
    address: { type: 'string' }, // agent-addr
    inter: duration, // agent-inter
    send: { type: 'string' }, // agent-send
  },
} as const;

const serverSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'address'],
  properties: {
    name: { type: 'string', pattern: '^[A-Za-z0-9_.:-]+$' },
    address: { type: 'string' }, // host:port ([v6]:port)
    weight: { type: 'integer', minimum: 0, maximum: 256 },
    maxconn: { type: 'integer', minimum: 0 },
    backup: { type: 'boolean' },
    slowstart: duration,
    check: { type: 'boolean' }, // default: true when the listener has a `check`
    send_proxy: sendProxy, // send-proxy / send-proxy-v2 (overrides the listener's)
    agent: agentSchema, // agent-check
    disabled: { type: 'boolean' },
    ssl: sslSchema, // ssl verify none|required ca-file FILE sni NAME (./tls-schema.ts)
  },
} as const;

const listenerSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'bind', 'servers'],
  properties: {
    name: { type: 'string', pattern: '^[A-Za-z0-9_.-]+$' },
    bind: { type: 'string' }, // host:port
    mode: { enum: ['tcp', 'http'] },
    balance: { type: 'string' },
    accept_proxy: { type: 'boolean' }, // bind ... accept-proxy
    send_proxy: sendProxy,
    forwardfor: { type: 'boolean' }, // option forwardfor (+ X-Forwarded-Proto/-Host)
    timeout: timeoutSchema,
    retries: { type: 'integer', minimum: 0, maximum: 100 },
    redispatch: { type: 'boolean' }, // option redispatch
    maxqueue: { type: 'integer', minimum: 0 },
    check: checkSchema,
    servers: { type: 'array', items: serverSchema },
    tls: tlsSchema, // bind ... ssl crt ... (TLS termination, ./tls-schema.ts)
    ssl: sslSchema, // every server's ssl unless it says its own
  },
} as const;

export const listenersSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    workers: { type: 'integer', minimum: 1, maximum: 256 },
    control: { type: 'string' },
    stats: {
      type: 'object',
      additionalProperties: false,
      properties: { bind: { type: 'string' }, enabled: { type: 'boolean' } },
    },
    defaults: {
      type: 'object',
      additionalProperties: false,
      properties: {
        timeout: timeoutSchema,
        retries: listenerSchema.properties.retries,
        redispatch: { type: 'boolean' },
        forwardfor: { type: 'boolean' },
        check: checkSchema,
      },
    },
    listen: { type: 'array', items: listenerSchema },
  },
} as const;

// ---- TypeScript shape of the raw section (what the YAML holds) ----

export type RawDuration = number | string;
export type SendProxy = false | 'v1' | 'v2';
export interface RawTimeouts {
  connect?: RawDuration;
  client?: RawDuration;
  server?: RawDuration;
  http_request?: RawDuration;
  http_keep_alive?: RawDuration;
  queue?: RawDuration;
  tunnel?: RawDuration;
  check?: RawDuration;
}
export interface RawCheck {
  type?: 'tcp' | 'http';
  method?: string;
  uri?: string;
  host?: string;
  expect?: { status?: number; string?: string };
  inter?: RawDuration;
  rise?: number;
  fall?: number;
}
export interface RawServer {
  name: string;
  address: string;
  weight?: number;
  maxconn?: number;
  backup?: boolean;
  slowstart?: RawDuration;
  check?: boolean;
  send_proxy?: SendProxy;
  agent?: { port: number; address?: string; inter?: RawDuration; send?: string };
  disabled?: boolean;
  ssl?: RawSsl;
}
export interface RawListener {
  name: string;
  bind: string;
  mode?: 'tcp' | 'http';
  balance?: string;
  accept_proxy?: boolean;
  send_proxy?: SendProxy;
  forwardfor?: boolean;
  timeout?: RawTimeouts;
  retries?: number;
  redispatch?: boolean;
  maxqueue?: number;
  check?: RawCheck;
  servers: RawServer[];
  tls?: RawTls;
  ssl?: RawSsl;
}
export interface ListenersSection {
  workers?: number;
  control?: string;
  stats?: { bind?: string; enabled?: boolean };
  defaults?: { timeout?: RawTimeouts; retries?: number; redispatch?: boolean; forwardfor?: boolean; check?: RawCheck };
  listen?: RawListener[];
}

// ---- semantic checks (registered with the config loader) ----

const DURATION_RE = /^\s*(\d+(?:\.\d+)?)\s*(us|ms|s|m|h|d)?\s*$/;
const UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** A duration in milliseconds (HAProxy's default unit is ms too). Throws on garbage. */
export function parseDuration(v: RawDuration): number {
  if (typeof v === 'number') return v;
  const m = DURATION_RE.exec(v);
  if (!m) throw new ConfigValueError(`bad duration '${v}'`);
  return Math.round(Number(m[1]) * UNIT_MS[m[2] ?? 'ms']);
}

/** `host:port`, `[v6]:port` or `:port` (all addresses) → host and port. Throws with a reason. */
export function parseHostPort(s: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(s.trim());
  if (!m) throw new ConfigValueError(`'${s}' is not host:port`);
  const port = Number(m[3]);
  if (port < 1 || port > 65535) throw new ConfigValueError(`port ${port} out of range 1..65535`);
  const host = m[1] ?? (m[2] || '0.0.0.0');
  if (host === '*') return { host: '0.0.0.0', port };
  return { host, port };
}

/** balance expressions: roundrobin, static-rr, leastconn, source, first, random, random(N), uri, hdr(name) */
export const BALANCE_RE =
  /^(roundrobin|static-rr|leastconn|source|first|uri|random(?:\((\d+)\))?|hdr\(([A-Za-z0-9_-]+)\))$/;

function validateListeners(section: unknown, ctx: SectionContext): void {
  if (!section || typeof section !== 'object') return;
  const sec = section as ListenersSection;
  const durations = (obj: unknown, path: (string | number)[]) => {
    if (!obj || typeof obj !== 'object') return;
    for (const [k, v] of Object.entries(obj)) {
      if (typeof v === 'string' && !DURATION_RE.test(v)) ctx.report([...path, k], `bad duration '${v}'`);
    }
  };
  if (sec.stats?.bind !== undefined) {
    try {
      parseHostPort(sec.stats.bind);
    } catch (e) {
      ctx.report(['stats', 'bind'], (e as Error).message);
    }
  }
  durations(sec.defaults?.timeout, ['defaults', 'timeout']);
  if (!Array.isArray(sec.listen)) return;
  const names = new Map<string, number>();
  const binds = new Map<string, number>();
  sec.listen.forEach((l, i) => {
    if (!l || typeof l !== 'object') return;
    if (typeof l.name === 'string') {
      const first = names.get(l.name);
      if (first !== undefined)
        ctx.report(
          ['listen', i, 'name'],
          `listener '${l.name}' is defined twice (first at line ${ctx.positionOf(['listen', first, 'name']).line})`,
        );
      else names.set(l.name, i);
    }
    if (typeof l.bind === 'string') {
      try {
        const b = parseHostPort(l.bind);
        const key = `${b.host}:${b.port}`;
        const first = binds.get(key);
        if (first !== undefined) ctx.report(['listen', i, 'bind'], `${key} is already bound by listen[${first}]`);
        else binds.set(key, i);
      } catch (e) {
        ctx.report(['listen', i, 'bind'], (e as Error).message);
      }
    }
    if (typeof l.balance === 'string' && !BALANCE_RE.test(l.balance))
      ctx.report(
        ['listen', i, 'balance'],
        `unknown balance '${l.balance}' (roundrobin, static-rr, leastconn, source, first, random, random(N), uri, hdr(name))`,
      );
    if (l.balance && /^(uri|hdr\()/.test(l.balance) && l.mode !== 'http')
      ctx.report(['listen', i, 'balance'], `balance ${l.balance} needs mode: http`);
    durations(l.timeout, ['listen', i, 'timeout']);
    validateTls(l, ['listen', i], ctx);
    if (l.check && typeof l.check.inter === 'string' && !DURATION_RE.test(l.check.inter))
      ctx.report(['listen', i, 'check', 'inter'], `bad duration '${l.check.inter}'`);
    if (!Array.isArray(l.servers)) return;
    if (l.servers.length === 0) ctx.report(['listen', i, 'servers'], 'a listener needs at least one server');
    const snames = new Map<string, number>();
    l.servers.forEach((s, j) => {
      if (!s || typeof s !== 'object') return;
      if (typeof s.name === 'string') {
        if (snames.has(s.name)) ctx.report(['listen', i, 'servers', j, 'name'], `server '${s.name}' is defined twice`);
        else snames.set(s.name, j);
      }
      if (typeof s.address === 'string') {
        try {
          parseHostPort(s.address);
        } catch (e) {
          ctx.report(['listen', i, 'servers', j, 'address'], (e as Error).message);
        }
      }
      if (typeof s.slowstart === 'string' && !DURATION_RE.test(s.slowstart))
        ctx.report(['listen', i, 'servers', j, 'slowstart'], `bad duration '${s.slowstart}'`);
    });
  });
}

/** The `listeners` section: its schema and checks, registered with the loader by importing this module. */
registerSection({ name: 'listeners', schema: listenersSchema, validate: validateListeners });
