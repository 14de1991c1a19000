/**
 * JSON schema (and TypeScript shape) of the `listeners` config section: the L7 listeners of an LB node, in the
 * manner of HAProxy's `listen` sections (frontend + backend in one). Keys are snake_case like the rest of the tierlb
 * config; the HAProxy keyword each one mirrors is noted beside it. Cross-field rules (duplicate names and binds,
 * addresses, durations, balance expressions) are checked by the validator registered at the bottom, so the config
 * loader reports them at file:line:col with everything else.
 *
 *   listeners:
 *     workers: 2                        # cluster workers (default: one per CPU)
 *     maxaccept: 64                     # connections a worker accepts in a row per wakeup (tune.maxaccept)
 *     memory_trim: true                 # give memory back when quiet after a burst (false: no-memory-trimming)
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
 *
 * Routing (config/listeners.yaml documents every key): a listener's own `servers` are one group named after it;
 * `groups:` (per listener, or file-level `listeners.groups:` that any listener may use) are HAProxy backends with
 * their own balance/check/servers/timeout/retries/redispatch/maxqueue/send_proxy; group names are unique over the
 * file. `default_group`, `http_request` (redirect / deny / set_header / add_header / del_header), `use_group`
 * (first match) and `http_response` (header edits) take conditions (`if:` / `unless:`) in the language of
 * ./routing/conditions.ts; ./routing/rules.ts compiles them here (problems at file:line) and in each worker.
 */
import { ConfigValueError } from '../config/problems.js';
import { registerSection, type SectionContext } from '../config/registry.js';
import type { RuleProblem } from './routing/conditions.js';
import { type RawRoutes, Router } from './routing/rules.js';
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

/** a condition (`if:` / `unless:`): its keys are checked by ./routing/conditions.ts, at file:line */
const conditionSchema = { type: 'object' } as const;
const headerSetSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'value'],
  properties: { name: { type: 'string' }, value: { type: 'string' } },
} as const;
const guard = { if: conditionSchema, unless: conditionSchema } as const;
const headerActions = {
  set_header: headerSetSchema, // http-request/http-response set-header
  add_header: headerSetSchema, // add-header
  del_header: { type: 'string' }, // del-header
} as const;

const requestRuleSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    ...guard,
    ...headerActions,
    redirect: {
      // http-request redirect scheme|location|prefix ... code N [drop-query]
      type: 'object',
      additionalProperties: false,
      properties: {
        scheme: { type: 'string' },
        location: { type: 'string' },
        prefix: { type: 'string' },
        code: { enum: [301, 302, 303, 307, 308] },
        drop_query: { type: 'boolean' },
      },
    },
    deny: { anyOf: [{ type: 'integer', minimum: 200, maximum: 599 }, { const: true }] }, // http-request deny [deny_status N]
  },
} as const;

const useGroupSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['group'],
  properties: { ...guard, group: { type: 'string' } }, // use_backend NAME if|unless ...
} as const;

const responseRuleSchema = {
  type: 'object',
  additionalProperties: false,
  properties: { ...guard, ...headerActions },
} as const;

/** A server group (HAProxy backend): its own balance, checks, servers, queue, stats and metrics. */
const groupSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'servers'],
  properties: {
    name: { type: 'string', pattern: '^[A-Za-z0-9_.-]+$' },
    balance: { type: 'string' },
    send_proxy: sendProxy, // default of its servers
    timeout: timeoutSchema, // server-side ones: connect, server, queue, tunnel, check
    retries: { type: 'integer', minimum: 0, maximum: 100 },
    redispatch: { type: 'boolean' },
    maxqueue: { type: 'integer', minimum: 0 },
    check: checkSchema,
    servers: { type: 'array', items: serverSchema },
    ssl: sslSchema, // every server's ssl unless it says its own
  },
} as const;

const listenerSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'bind'],
  properties: {
    name: { type: 'string', pattern: '^[A-Za-z0-9_.-]+$' },
    bind: { type: 'string' }, // host:port
    mode: { enum: ['tcp', 'http'] },
    balance: { type: 'string' },
    accept_proxy: { type: 'boolean' }, // bind ... accept-proxy
    maxconn: { type: 'integer', minimum: 0 }, // frontend maxconn (0: none)
    backlog: { type: 'integer', minimum: 1, maximum: 65535 }, // bind ... backlog (default: maxconn, else 65535)
    splice: { enum: ['auto', 'on', 'off'] }, // mode tcp: in-kernel splice (option splice-auto / -request / -response)
    send_proxy: sendProxy,
    forwardfor: { type: 'boolean' }, // option forwardfor (+ X-Forwarded-Proto/-Host)
    timeout: timeoutSchema,
    retries: { type: 'integer', minimum: 0, maximum: 100 },
    redispatch: { type: 'boolean' }, // option redispatch
    maxqueue: { type: 'integer', minimum: 0 },
    check: checkSchema,
    servers: { type: 'array', items: serverSchema },
    groups: { type: 'array', items: groupSchema }, // backends of this listener
    default_group: { type: 'string' }, // default_backend
    http_request: { type: 'array', items: requestRuleSchema },
    use_group: { type: 'array', items: useGroupSchema },
    http_response: { type: 'array', items: responseRuleSchema },
    tls: tlsSchema, // bind ... ssl crt ... (TLS termination, ./tls-schema.ts)
    ssl: sslSchema, // every server's ssl unless it says its own
  },
} as const;

export const listenersSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    workers: { type: 'integer', minimum: 1, maximum: 256 },
    maxaccept: { type: 'integer', minimum: 1, maximum: 1024 }, // tune.maxaccept
    memory_trim: { type: 'boolean' }, // no-memory-trimming = false
    control: { type: 'string' },
    stats: {
      type: 'object',
      additionalProperties: false,
      properties: {
        bind: { type: 'string' },
        enabled: { type: 'boolean' },
        // the status page's admin mode (drain/ready/maint, weight), behind HTTP Basic; off without it
        admin: {
          type: 'object',
          additionalProperties: false,
          required: ['user', 'password'],
          properties: { user: { type: 'string', minLength: 1 }, password: { type: 'string', minLength: 1 } },
        },
      },
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
    /** groups of no listener in particular (a backend two listeners share): any listener may use them */
    groups: { type: 'array', items: groupSchema },
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
export interface RawGroup {
  name: string;
  balance?: string;
  send_proxy?: SendProxy;
  timeout?: RawTimeouts;
  retries?: number;
  redispatch?: boolean;
  maxqueue?: number;
  check?: RawCheck;
  servers: RawServer[];
  ssl?: RawSsl;
}
export interface RawListener extends RawRoutes {
  name: string;
  bind: string;
  mode?: 'tcp' | 'http';
  balance?: string;
  accept_proxy?: boolean;
  /** frontend maxconn */
  maxconn?: number;
  /** the listening socket's accept queue (listen(2) backlog; the kernel caps it at net.core.somaxconn) */
  backlog?: number;
  /** mode tcp: in-kernel splice of established pairs (default off) */
  splice?: 'auto' | 'on' | 'off';
  send_proxy?: SendProxy;
  forwardfor?: boolean;
  timeout?: RawTimeouts;
  retries?: number;
  redispatch?: boolean;
  maxqueue?: number;
  check?: RawCheck;
  /** the listener's own servers: a group named after the listener */
  servers?: RawServer[];
  groups?: RawGroup[];
  default_group?: string;
  tls?: RawTls;
  ssl?: RawSsl;
}
export interface ListenersSection {
  workers?: number;
  maxaccept?: number;
  memory_trim?: boolean;
  control?: string;
  stats?: { bind?: string; enabled?: boolean; admin?: { user: string; password: string } };
  defaults?: { timeout?: RawTimeouts; retries?: number; redispatch?: boolean; forwardfor?: boolean; check?: RawCheck };
  groups?: RawGroup[];
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

type Path = (string | number)[];

/** servers of a listener or a group: unique names, addresses, durations */
function validateServers(servers: unknown, at: Path, what: string, ctx: SectionContext): void {
  if (!Array.isArray(servers)) return;
  if (servers.length === 0) ctx.report(at, `a ${what} needs at least one server`);
  const snames = new Map<string, number>();
  (servers as RawServer[]).forEach((s, j) => {
    if (!s || typeof s !== 'object') return;
    if (typeof s.name === 'string') {
      if (snames.has(s.name)) ctx.report([...at, j, 'name'], `server '${s.name}' is defined twice`);
      else snames.set(s.name, j);
    }
    if (typeof s.address === 'string') {
      try {
        parseHostPort(s.address);
      } catch (e) {
        ctx.report([...at, j, 'address'], (e as Error).message);
      }
    }
    if (typeof s.slowstart === 'string' && !DURATION_RE.test(s.slowstart))
      ctx.report([...at, j, 'slowstart'], `bad duration '${s.slowstart}'`);
  });
}

function validateBalance(balance: unknown, at: Path, ctx: SectionContext): void {
  if (typeof balance === 'string' && !BALANCE_RE.test(balance))
    ctx.report(
      at,
      `unknown balance '${balance}' (roundrobin, static-rr, leastconn, source, first, random, random(N), uri, hdr(name))`,
    );
}

/** Every group of the file: name → where it is defined, its balance, and the modes of the listeners using it. */
interface GroupInfo {
  at: Path;
  balance?: string;
  modes: Set<string>;
}

function validateListeners(section: unknown, ctx: SectionContext): void {
  if (!section || typeof section !== 'object') return;
  const sec = section as ListenersSection;
  const durations = (obj: unknown, path: Path) => {
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
  const listen = Array.isArray(sec.listen) ? sec.listen : [];
  // the groups: one namespace over the file (listener-implied ones included), as the runtime addresses GROUP/SERVER
  const groups = new Map<string, GroupInfo>();
  const addGroup = (name: unknown, at: Path, balance: unknown, mode?: string) => {
    if (typeof name !== 'string') return;
    const first = groups.get(name);
    if (first) {
      ctx.report(at, `group '${name}' is defined twice (first at line ${ctx.positionOf(first.at).line})`);
      return;
    }
    groups.set(name, {
      at,
      balance: typeof balance === 'string' ? balance : undefined,
      modes: new Set(mode ? [mode] : []),
    });
  };
  const checkGroup = (g: RawGroup, at: Path) => {
    validateBalance(g.balance, [...at, 'balance'], ctx);
    durations(g.timeout, [...at, 'timeout']);
    if (g.check && typeof g.check.inter === 'string' && !DURATION_RE.test(g.check.inter))
      ctx.report([...at, 'check', 'inter'], `bad duration '${g.check.inter}'`);
    validateServers(g.servers, [...at, 'servers'], 'group', ctx);
  };
  if (Array.isArray(sec.groups))
    sec.groups.forEach((g, k) => {
      if (!g || typeof g !== 'object') return;
      addGroup(g.name, ['groups', k, 'name'], g.balance);
      checkGroup(g, ['groups', k]);
    });
  listen.forEach((l, i) => {
    if (!l || typeof l !== 'object') return;
    const mode = l.mode ?? 'tcp';
    if (Array.isArray(l.servers)) addGroup(l.name, ['listen', i, 'name'], l.balance ?? 'roundrobin', mode);
    if (Array.isArray(l.groups))
      l.groups.forEach((g, k) => {
        if (!g || typeof g !== 'object') return;
        addGroup(g.name, ['listen', i, 'groups', k, 'name'], g.balance, mode);
        checkGroup(g, ['listen', i, 'groups', k]);
      });
  });
  const names = new Map<string, number>();
  const binds = new Map<string, number>();
  listen.forEach((l, i) => {
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
    validateBalance(l.balance, ['listen', i, 'balance'], ctx);
    if (l.balance && /^(uri|hdr\()/.test(l.balance) && l.mode !== 'http')
      ctx.report(['listen', i, 'balance'], `balance ${l.balance} needs mode: http`);
    durations(l.timeout, ['listen', i, 'timeout']);
    validateTls(l, ['listen', i], ctx);
    if (l.check && typeof l.check.inter === 'string' && !DURATION_RE.test(l.check.inter))
      ctx.report(['listen', i, 'check', 'inter'], `bad duration '${l.check.inter}'`);
    const mode = l.mode ?? 'tcp';
    const own = Array.isArray(l.servers);
    if (!own) {
      for (const k of ['balance', 'check'] as const)
        if (l[k] !== undefined)
          ctx.report(['listen', i, k], `${k} applies to the listener's own servers: with groups, give it to the group`);
      if (!Array.isArray(l.groups) && l.default_group === undefined)
        ctx.report(
          ['listen', i],
          "missing required key 'servers' (a listener needs its own servers, groups, or a default_group)",
        );
    }
    validateServers(l.servers, ['listen', i, 'servers'], 'listener', ctx);
    // the groups it may send to: every group of the file
    const use = (name: unknown, at: Path | undefined) => {
      if (typeof name !== 'string') return;
      const g = groups.get(name);
      if (g) g.modes.add(mode);
      else if (at) ctx.report(at, `no group '${name}' (groups: ${[...groups.keys()].join(', ') || 'none'})`);
    };
    use(l.default_group, ['listen', i, 'default_group']);
    const problems: RuleProblem[] = [];
    Router.compile(l, { http: mode === 'http', groups: new Set(groups.keys()) }, problems, ['listen', i]);
    for (const p of problems) ctx.report(p.path, p.message);
    // (unknown ones are reported by the compiler)
    if (Array.isArray(l.use_group)) for (const u of l.use_group) use(u?.group, undefined);
  });
  // a group serves one mode (HAProxy: a backend's mode is its frontends'); hashing on the request needs http
  for (const [name, g] of groups) {
    if (g.modes.size > 1) ctx.report(g.at, `group '${name}' is used by both tcp and http listeners: give each its own`);
    if (g.balance && /^(uri|hdr\()/.test(g.balance) && g.modes.has('tcp'))
      ctx.report(g.at, `group '${name}': balance ${g.balance} needs mode: http, and a tcp listener uses it`);
  }
}

/** The `listeners` section: its schema and checks, registered with the loader by importing this module. */
registerSection({ name: 'listeners', schema: listenersSchema, validate: validateListeners });
