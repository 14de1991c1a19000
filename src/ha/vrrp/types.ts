/**
 * The in-memory VRRP configuration: what the `vrrp` YAML section (src/ha/config-schema.ts) and a keepalived.conf
 * (src/ha/keepalived/) both turn into. Times are in seconds as in keepalived's configuration.
 */

export type VrrpVersion = 2 | 3;
export type VrrpStateName = 'INIT' | 'BACKUP' | 'MASTER' | 'FAULT';

export interface VirtualAddress {
  addr: string;
  /** prefix length; keepalived's default without /len is 32 (IPv6: 128) */
  prefixLen: number;
  /** interface the address goes on (default: the instance's interface) */
  dev?: string;
  label?: string;
}

export interface TrackInterface {
  name: string;
  /** 0: down → FAULT; > 0: added to the priority while up; < 0: subtracted while down */
  weight: number;
}

export interface TrackScriptRef {
  name: string;
  /** overrides the vrrp_script's weight */
  weight?: number;
}

export interface VrrpScriptConfig {
  name: string;
  /** command line, split like keepalived does (quotes group words); run without a shell */
  script: string;
  /** seconds between runs (keepalived default 1) */
  interval: number;
  /** seconds before a run counts as failed (default: interval) */
  timeout: number;
  /** 0: failure → FAULT; > 0 added while OK; < 0 subtracted while failing */
  weight: number;
  /** successes needed to count as OK / failures needed to count as failed */
  rise: number;
  fall: number;
}

export interface VrrpNotify {
  master?: string;
  backup?: string;
  fault?: string;
  stop?: string;
  /** called with: INSTANCE <name> <STATE> <priority> */
  notify?: string;
}

export interface VrrpInstanceConfig {
  name: string;
  interface: string;
  virtualRouterId: number;
  /** 1..255; 255 = address owner */
  priority: number;
  /** seconds; v2 whole seconds 1..255, v3 multiples of 0.01 up to 40.95 */
  advertInt: number;
  version: VrrpVersion;
  /** starting-state hint (keepalived's `state`) */
  state?: 'MASTER' | 'BACKUP';
  nopreempt: boolean;
  /** seconds after startup or after seeing a lower-priority master before preempting */
  preemptDelay: number;
  /** VRRPv2 simple text password (auth_type PASS), at most 8 characters */
  authPass?: string;
  virtualIpaddress: VirtualAddress[];
  /** source address of adverts (default: the interface's primary IPv4 address) */
  unicastSrcIp?: string;
  /** send to these peers instead of 224.0.0.18 */
  unicastPeer: string[];
  trackInterface: TrackInterface[];
  trackScript: TrackScriptRef[];
  notify: VrrpNotify;
  /** seconds after becoming master before the second round of gratuitous ARPs (keepalived default 5; 0 = none) */
  garpMasterDelay: number;
  /** gratuitous ARPs per round (keepalived default 5) */
  garpMasterRepeat: number;
}

export interface VrrpSyncGroup {
  name: string;
  group: string[];
  notify: VrrpNotify;
}

export interface VrrpConfig {
  instances: VrrpInstanceConfig[];
  scripts: VrrpScriptConfig[];
  syncGroups: VrrpSyncGroup[];
}

export const VRRP_MCAST_GROUP = '224.0.0.18';
/** RFC 5798 5.1.2.2: the IPv6 multicast address of VRRP */
export const VRRP6_MCAST_GROUP = 'ff02::12';
export const VRRP_PROTO = 112;
export const PRIO_OWNER = 255;
export const PRIO_STOP = 0;

/**
 * An instance is one family, its virtual addresses' (keepalived: the first address decides, the others must match).
 * An instance without addresses is IPv4.
 */
export function instanceFamily(c: Pick<VrrpInstanceConfig, 'virtualIpaddress'>): 4 | 6 {
  return c.virtualIpaddress[0]?.addr.includes(':') ? 6 : 4;
}

/** fe80::/10 (an IPv6 address whose first group is fe80..febf) */
export function isLinkLocal6(a: string): boolean {
  return /^fe[89ab][0-9a-f]:/i.test(a);
}

/** An instance with every optional field filled with keepalived's default. */
export function instanceDefaults(
  o: Pick<VrrpInstanceConfig, 'name' | 'interface' | 'virtualRouterId'> & Partial<VrrpInstanceConfig>,
): VrrpInstanceConfig {
  return {
    priority: 100,
    advertInt: 1,
    version: 2,
    nopreempt: false,
    preemptDelay: 0,
    virtualIpaddress: [],
    unicastPeer: [],
    trackInterface: [],
    trackScript: [],
    notify: {},
    garpMasterDelay: 5,
    garpMasterRepeat: 5,
    ...o,
  };
}

export function scriptDefaults(
  o: Pick<VrrpScriptConfig, 'name' | 'script'> & Partial<VrrpScriptConfig>,
): VrrpScriptConfig {
  const interval = o.interval ?? 1;
  return { interval, timeout: interval, weight: 0, rise: 1, fall: 1, ...o };
}
