/**
 * Health checks in the YAML `director` section, with keepalived's keywords: per service delay_loop, quorum,
 * hysteresis, sorry_server, alpha, omega, ha_suspend, virtualhost, quorum_up/down; per real server
 * inhibit_on_failure, notify_up/down and `checks` (TCP_CHECK, HTTP_GET, SSL_GET, MISC_CHECK with connect_timeout,
 * retry, delay_before_retry, delay_loop, …). Turned into the same VirtualServerHealth the keepalived.conf reader
 * builds (src/ha/checks-types.ts), with keepalived's defaults.
 *
 * ```yaml
 * director:
 *   services:
 *     - vip: 10.0.0.100
 *       port: 80
 *       delay_loop: 2
 *       real_servers:
 *         - address: 10.0.0.11
 *           inhibit_on_failure: true
 *           checks:
 *             - { type: HTTP_GET, url: [{ path: /, status_code: [200] }], connect_timeout: 1, retry: 2 }
 * ```
 */
import { ConfigValueError } from '../config/problems.js';
import type {
  CheckCommon,
  HttpUrlCheck,
  RealServerCheck,
  RealServerHealth,
  VirtualServerHealth,
} from './checks-types.js';

const secs = { type: 'number', exclusiveMinimum: 0 } as const;
const port = { type: 'integer', minimum: 0, maximum: 65535 } as const;
const command = { type: 'string', minLength: 1 } as const;

export const checkSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['type'],
  properties: {
    type: { enum: ['TCP_CHECK', 'HTTP_GET', 'SSL_GET', 'MISC_CHECK'] },
    connect_ip: { type: 'string' },
    connect_port: port,
    bindto: { type: 'string' },
    bind_port: port,
    connect_timeout: secs,
    retry: { type: 'integer', minimum: 0 },
    delay_before_retry: { type: 'number', minimum: 0 },
    delay_loop: secs,
    warmup: { type: 'number', minimum: 0 },
    virtualhost: { type: 'string' },
    url: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['path'],
        properties: {
          path: { type: 'string', minLength: 1 },
          status_code: { type: 'array', items: { type: ['integer', 'string'] } },
          digest: { type: 'string', pattern: '^[0-9a-fA-F]{32}$' },
        },
      },
    },
    misc_path: command,
    misc_timeout: secs,
    misc_dynamic: { type: 'boolean' },
  },
} as const;

/** keys a real server entry gains */
export const realServerHealthProps = {
  inhibit_on_failure: { type: 'boolean' },
  notify_up: command,
  notify_down: command,
  checks: { type: 'array', items: checkSchema },
} as const;

/** keys a service entry gains */
export const serviceHealthProps = {
  delay_loop: secs,
  quorum: { type: 'integer', minimum: 1 },
  hysteresis: { type: 'integer', minimum: 0 },
  quorum_up: command,
  quorum_down: command,
  alpha: { type: 'boolean' },
  omega: { type: 'boolean' },
  ha_suspend: { type: 'boolean' },
  virtualhost: { type: 'string' },
  sorry_server: {
    type: 'object',
    additionalProperties: false,
    required: ['address', 'port'],
    properties: { address: { type: 'string' }, port, inhibit: { type: 'boolean' } },
  },
} as const;

export interface CheckConfig {
  type: 'TCP_CHECK' | 'HTTP_GET' | 'SSL_GET' | 'MISC_CHECK';
  connect_ip?: string;
  connect_port?: number;
  bindto?: string;
  bind_port?: number;
  connect_timeout?: number;
  retry?: number;
  delay_before_retry?: number;
  delay_loop?: number;
  warmup?: number;
  virtualhost?: string;
  url?: { path: string; status_code?: (number | string)[]; digest?: string }[];
  misc_path?: string;
  misc_timeout?: number;
  misc_dynamic?: boolean;
}

type Obj = Record<string, unknown>;

function statusCodes(list: (number | string)[] | undefined): number[] {
  if (!list) return Array.from({ length: 100 }, (_, i) => 200 + i);
  const out: number[] = [];
  for (const v of list) {
    const m = /^(\d{3})(?:-(\d{3}))?$/.exec(String(v));
    if (!m) throw new ConfigValueError(`bad status_code '${v}'`);
    for (let i = Number(m[1]); i <= Number(m[2] ?? m[1]); i++) out.push(i);
  }
  return out;
}

function checkOf(c: CheckConfig): RealServerCheck {
  if (c.type === 'MISC_CHECK') {
    if (!c.misc_path) throw new ConfigValueError('MISC_CHECK without misc_path');
    return {
      type: 'misc',
      path: c.misc_path,
      dynamic: c.misc_dynamic ?? false,
      ...(c.misc_timeout !== undefined ? { timeout: c.misc_timeout } : {}),
      ...(c.delay_loop !== undefined ? { delayLoop: c.delay_loop } : {}),
      ...(c.warmup !== undefined ? { warmup: c.warmup } : {}),
    };
  }
  const opt: Partial<CheckCommon> = {
    connectIp: c.connect_ip,
    connectPort: c.connect_port,
    bindTo: c.bindto,
    bindPort: c.bind_port,
    delayLoop: c.delay_loop,
    warmup: c.warmup,
  };
  const common: CheckCommon = {
    connectTimeout: c.connect_timeout ?? 5,
    retry: c.retry ?? 1,
    delayBeforeRetry: c.delay_before_retry ?? 1,
    ...(Object.fromEntries(Object.entries(opt).filter(([, v]) => v !== undefined)) as Partial<CheckCommon>),
  };
  if (c.type === 'TCP_CHECK') return { type: 'tcp', ...common };
  const urls: HttpUrlCheck[] = (c.url ?? []).map((u) => ({
    path: u.path,
    statusCodes: statusCodes(u.status_code),
    ...(u.digest ? { digest: u.digest.toLowerCase() } : {}),
  }));
  return {
    type: 'http',
    tls: c.type === 'SSL_GET',
    urls,
    ...common,
    ...(c.virtualhost ? { virtualhost: c.virtualhost } : {}),
  };
}

const HEALTH_KEYS = Object.keys(serviceHealthProps);

/**
 * A service entry's health configuration, or undefined when it has none (no health keys, no checks): such a
 * service is not under the checker.
 */
export function healthFromService(raw: Obj, dests: { addr: string; port: number }[]): VirtualServerHealth | undefined {
  const rsRaw = Array.isArray(raw.real_servers) ? (raw.real_servers as Obj[]) : [];
  const any = HEALTH_KEYS.some((k) => raw[k] !== undefined) || rsRaw.some((r) => Array.isArray(r.checks));
  if (!any) return undefined;
  const realServers: RealServerHealth[] = dests.map((d, i) => {
    const r = rsRaw[i] ?? {};
    return {
      addr: d.addr,
      port: d.port,
      inhibitOnFailure: r.inhibit_on_failure === true,
      checks: ((r.checks as CheckConfig[] | undefined) ?? []).map(checkOf),
      ...(typeof r.notify_up === 'string' ? { notifyUp: r.notify_up } : {}),
      ...(typeof r.notify_down === 'string' ? { notifyDown: r.notify_down } : {}),
    };
  });
  const sorry = raw.sorry_server as { address: string; port: number; inhibit?: boolean } | undefined;
  return {
    delayLoop: (raw.delay_loop as number | undefined) ?? 60,
    quorum: (raw.quorum as number | undefined) ?? 1,
    hysteresis: (raw.hysteresis as number | undefined) ?? 0,
    alpha: raw.alpha === true,
    omega: raw.omega === true,
    haSuspend: raw.ha_suspend === true,
    realServers,
    ...(sorry ? { sorryServer: { addr: sorry.address, port: sorry.port, inhibit: sorry.inhibit === true } } : {}),
    ...(typeof raw.quorum_up === 'string' ? { quorumUp: raw.quorum_up } : {}),
    ...(typeof raw.quorum_down === 'string' ? { quorumDown: raw.quorum_down } : {}),
    ...(typeof raw.virtualhost === 'string' ? { virtualhost: raw.virtualhost } : {}),
  };
}
