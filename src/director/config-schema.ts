/**
 * JSON schema (and TypeScript shape) of the `director` config section: the IPVS services, their real servers,
 * the connection timeouts and the ip_vs sysctls. Cross-field rules (vip xor fwmark, duplicates, thresholds, the
 * scheduler names) are checked in ./config.ts.
 */

export const FWD_METHODS = ['route', 'masq', 'tunnel'] as const;
/** ipvsadm's long names and the usual abbreviations, accepted as aliases of FWD_METHODS. */
export const FWD_ALIASES: Record<string, (typeof FWD_METHODS)[number]> = {
  route: 'route',
  dr: 'route',
  gatewaying: 'route',
  masq: 'masq',
  nat: 'masq',
  masquerading: 'masq',
  tunnel: 'tunnel',
  tun: 'tunnel',
  ipip: 'tunnel',
};

/** ipvsadm -b names */
export const SCHED_FLAG_NAMES = [
  'flag-1',
  'flag-2',
  'flag-3',
  'sh-fallback',
  'sh-port',
  'mh-fallback',
  'mh-port',
] as const;

import { portSchema } from '../config/common-schema.js';
import { type CheckConfig, realServerHealthProps, serviceHealthProps } from '../ha/checks-config.js';

const u16 = { type: 'integer', minimum: 0, maximum: 65535 } as const;
const u32 = { type: 'integer', minimum: 0, maximum: 0xffffffff } as const;
const seconds = { type: 'integer', minimum: 1, maximum: 0x7fffffff } as const;

export const realServerSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['address'],
  properties: {
    address: { type: 'string' },
    port: u16,
    method: { enum: Object.keys(FWD_ALIASES) },
    weight: u16,
    u_threshold: u32,
    l_threshold: u32,
    ...realServerHealthProps,
  },
} as const;

/** A listener port of a VIP whose packets carry a fwmark service's mark (the director installs the mark rule). */
export const matchSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['vip', 'port'],
  properties: {
    vip: { type: 'string' },
    port: u16,
    protocol: { enum: ['tcp', 'udp'] },
  },
} as const;

export const serviceSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    name: { type: 'string', minLength: 1 },
    vip: { type: 'string' },
    port: u16,
    protocol: { enum: ['tcp', 'udp', 'sctp'] },
    fwmark: { type: 'integer', minimum: 1, maximum: 0xffffffff },
    family: { enum: ['inet', 'inet6'] },
    scheduler: { type: 'string', minLength: 1 },
    sched_flags: { type: 'array', items: { enum: [...SCHED_FLAG_NAMES] }, uniqueItems: true },
    persistent: { type: ['boolean', 'integer'], minimum: 1, maximum: 0x7fffffff },
    netmask: { type: ['string', 'integer'] },
    ops: { type: 'boolean' },
    match: { type: 'array', items: matchSchema },
    real_servers: { type: 'array', items: realServerSchema },
    ...serviceHealthProps,
  },
} as const;

export const directorSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    timeouts: {
      type: 'object',
      additionalProperties: false,
      properties: { tcp: seconds, tcpfin: seconds, udp: seconds },
    },
    sysctl: {
      type: 'object',
      additionalProperties: false,
      properties: {
        expire_nodest_conn: { type: 'boolean' },
        expire_quiescent_template: { type: 'boolean' },
        sloppy_tcp: { type: 'boolean' },
        sloppy_sctp: { type: 'boolean' },
        conn_reuse_mode: { enum: [0, 1, 2, 3] },
        /** the memory defenses, as the kernel's: 0 off, 1 automatic (on while memory is short), 2 short now, 3 always */
        drop_entry: { enum: [0, 1, 2, 3] },
        drop_packet: { enum: [0, 1, 2, 3] },
        secure_tcp: { enum: [0, 1, 2, 3] },
        /** memory counts as short when less than this many 4 KiB pages are free under conn_table_bytes */
        amemthresh: { type: 'integer', minimum: 0 },
        /** drop_packet 3 drops one new connection in this many */
        am_droprate: { type: 'integer', minimum: 1 },
        /** tierlb's own: the connection table's memory bound in bytes (the kernel's is the machine's memory) */
        conn_table_bytes: { type: 'integer', minimum: 65536 },
      },
    },
    services: { type: 'array', items: serviceSchema },
    /**
     * the kernel fast path (a tc BPF program forwarding established flows): auto (the default) uses it when BPF can
     * be loaded and otherwise logs why and runs without it, on refuses to start without it, off keeps every packet on
     * the NFQUEUE path. Read at start only (a reload does not change it).
     */
    fastpath: { enum: ['auto', 'on', 'off'] },
    /**
     * the connection sync daemon started with the director (as `tierlb adm --start-daemon`; interface, maxlen, group,
     * port and ttl are --mcast-interface, --sync-maxlen, --mcast-group, --mcast-port and --mcast-ttl)
     */
    sync: {
      type: 'object',
      additionalProperties: false,
      required: ['state', 'syncid'],
      properties: {
        state: { enum: ['master', 'backup', 'vrrp'] },
        syncid: { type: 'integer', minimum: 0, maximum: 255 },
        interface: { type: 'string', minLength: 1, maxLength: 15 },
        instance: { type: 'string', minLength: 1 },
        maxlen: { type: 'integer', minimum: 1, maximum: 65535 - 20 - 8 },
        /** an IPv4 multicast address (checked in ./config.ts) */
        group: { type: 'string', minLength: 1 },
        port: portSchema,
        ttl: { type: 'integer', minimum: 1, maximum: 255 },
      },
    },
    /** Prometheus /metrics */
    metrics: {
      type: 'object',
      additionalProperties: false,
      required: ['bind'],
      properties: {
        bind: { type: 'string', minLength: 1 },
        /** the status page's admin mode (real server weights), HTTP Basic; off without it */
        admin: {
          type: 'object',
          additionalProperties: false,
          required: ['user', 'password'],
          properties: { user: { type: 'string', minLength: 1 }, password: { type: 'string', minLength: 1 } },
        },
      },
    },
  },
} as const;

export type FwdMethodName = keyof typeof FWD_ALIASES;

export const FASTPATH_MODES = ['auto', 'on', 'off'] as const;
export type FastpathMode = (typeof FASTPATH_MODES)[number];

export interface RealServerConfig {
  address: string;
  /** default: the service's port (0 for fwmark services) */
  port?: number;
  /** default route (DR) */
  method?: FwdMethodName;
  /** default 1 */
  weight?: number;
  u_threshold?: number;
  l_threshold?: number;
  inhibit_on_failure?: boolean;
  notify_up?: string;
  notify_down?: string;
  checks?: CheckConfig[];
}

export interface MatchConfig {
  vip: string;
  /** 0 = every port of the VIP */
  port: number;
  /** default tcp */
  protocol?: 'tcp' | 'udp';
}

export interface ServiceConfig {
  name?: string;
  vip?: string;
  port?: number;
  /** default tcp; not for fwmark services */
  protocol?: 'tcp' | 'udp' | 'sctp';
  fwmark?: number;
  /** fwmark services only (default inet); a VIP's family is the VIP's */
  family?: 'inet' | 'inet6';
  /** default wlc */
  scheduler?: string;
  sched_flags?: (typeof SCHED_FLAG_NAMES)[number][];
  /** seconds; true = 360 */
  persistent?: boolean | number;
  /** IPv4: dotted mask or prefix length; IPv6: prefix length */
  netmask?: string | number;
  /** one-packet scheduling (udp and fwmark services) */
  ops?: boolean;
  /** fwmark services: the VIP ports the director marks with this service's fwmark */
  match?: MatchConfig[];
  real_servers?: RealServerConfig[];
  delay_loop?: number;
  quorum?: number;
  hysteresis?: number;
  quorum_up?: string;
  quorum_down?: string;
  alpha?: boolean;
  omega?: boolean;
  ha_suspend?: boolean;
  virtualhost?: string;
  sorry_server?: { address: string; port: number; inhibit?: boolean };
}

export interface DirectorConfig {
  timeouts?: { tcp?: number; tcpfin?: number; udp?: number };
  sysctl?: {
    expire_nodest_conn?: boolean;
    expire_quiescent_template?: boolean;
    sloppy_tcp?: boolean;
    sloppy_sctp?: boolean;
    conn_reuse_mode?: number;
    drop_entry?: number;
    drop_packet?: number;
    secure_tcp?: number;
    amemthresh?: number;
    am_droprate?: number;
    conn_table_bytes?: number;
  };
  services?: ServiceConfig[];
  /** default auto */
  fastpath?: FastpathMode;
  /** state vrrp: master while the VRRP instance `instance` (default: the first) is MASTER, backup otherwise */
  sync?: {
    state: 'master' | 'backup' | 'vrrp';
    syncid: number;
    interface?: string;
    instance?: string;
    /** defaults as ipvsadm's: the kernel's sync_maxlen, 224.0.0.81, 8848, 1 */
    maxlen?: number;
    group?: string;
    port?: number;
    ttl?: number;
  };
  metrics?: { bind: string; admin?: { user: string; password: string } };
}
