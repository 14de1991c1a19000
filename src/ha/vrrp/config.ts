/**
 * The `vrrp` YAML section (validated by src/ha/config-schema.ts) → the in-memory VrrpConfig, and the checks that a
 * schema cannot express (references, intervals per version, duplicate VRIDs). Pure.
 */
import { isIPv4, isIPv6 } from 'node:net';
import {
  instanceDefaults,
  instanceFamily,
  isLinkLocal6,
  scriptDefaults,
  type VirtualAddress,
  type VrrpConfig,
  type VrrpInstanceConfig,
  type VrrpNotify,
} from './types.js';

type NotifySection = {
  notify_master?: string;
  notify_backup?: string;
  notify_fault?: string;
  notify_stop?: string;
  notify?: string;
};

export interface VrrpInstanceSection extends NotifySection {
  name: string;
  interface: string;
  virtual_router_id: number;
  priority?: number;
  advert_int?: number;
  version?: 2 | 3;
  state?: 'MASTER' | 'BACKUP';
  nopreempt?: boolean;
  preempt_delay?: number;
  authentication?: { auth_type: 'PASS'; auth_pass: string };
  virtual_ipaddress?: (string | { address: string; dev?: string; label?: string })[];
  unicast_src_ip?: string;
  unicast_peer?: string[];
  track_interface?: (string | { name: string; weight?: number })[];
  track_script?: (string | { name: string; weight?: number })[];
  garp_master_delay?: number;
  garp_master_repeat?: number;
}

export interface VrrpSection {
  instances: VrrpInstanceSection[];
  scripts?: {
    name: string;
    script: string;
    interval?: number;
    timeout?: number;
    weight?: number;
    rise?: number;
    fall?: number;
  }[];
  sync_groups?: ({ name: string; group: string[] } & NotifySection)[];
}

/** "10.0.0.1/24" → { addr, prefixLen }; no length means /32 (IPv6: /128) as in keepalived. */
export function parseAddrPrefix(s: string): { addr: string; prefixLen: number } {
  const [addr, len] = s.split('/');
  return { addr, prefixLen: len === undefined ? (addr.includes(':') ? 128 : 32) : Number(len) };
}

/** keepalived's message for a virtual address of the other family (vrrp_data.c alloc_vrrp_vip). */
export function familyMismatch(instance: string, addr: string): string {
  return `(${instance}): address family must match VRRP instance [${addr}]`;
}

function notifyOf(s: NotifySection): VrrpNotify {
  const n: VrrpNotify = {};
  if (s.notify_master) n.master = s.notify_master;
  if (s.notify_backup) n.backup = s.notify_backup;
  if (s.notify_fault) n.fault = s.notify_fault;
  if (s.notify_stop) n.stop = s.notify_stop;
  if (s.notify) n.notify = s.notify;
  return n;
}

export function vrrpFromSection(sec: VrrpSection): VrrpConfig {
  const instances = sec.instances.map((i) => {
    const vips: VirtualAddress[] = (i.virtual_ipaddress ?? []).map((v) =>
      typeof v === 'string'
        ? parseAddrPrefix(v)
        : { ...parseAddrPrefix(v.address), ...(v.dev ? { dev: v.dev } : {}), ...(v.label ? { label: v.label } : {}) },
    );
    const cfg: VrrpInstanceConfig = instanceDefaults({
      name: i.name,
      interface: i.interface,
      virtualRouterId: i.virtual_router_id,
      virtualIpaddress: vips,
      unicastPeer: i.unicast_peer ?? [],
      trackInterface: (i.track_interface ?? []).map((t) =>
        typeof t === 'string' ? { name: t, weight: 0 } : { name: t.name, weight: t.weight ?? 0 },
      ),
      trackScript: (i.track_script ?? []).map((t) =>
        typeof t === 'string' ? { name: t } : t.weight === undefined ? { name: t.name } : { ...t },
      ),
      notify: notifyOf(i),
    });
    if (i.priority !== undefined) cfg.priority = i.priority;
    if (i.advert_int !== undefined) cfg.advertInt = i.advert_int;
    if (i.version !== undefined) cfg.version = i.version;
    // keepalived: an IPv6 instance without a version is VRRPv3 (VRRPv2 is IPv4 only)
    else if (instanceFamily(cfg) === 6) cfg.version = 3;
    if (i.state !== undefined) cfg.state = i.state;
    if (i.nopreempt !== undefined) cfg.nopreempt = i.nopreempt;
    if (i.preempt_delay !== undefined) cfg.preemptDelay = i.preempt_delay;
    if (i.authentication) cfg.authPass = i.authentication.auth_pass;
    if (i.unicast_src_ip) cfg.unicastSrcIp = i.unicast_src_ip;
    if (i.garp_master_delay !== undefined) cfg.garpMasterDelay = i.garp_master_delay;
    if (i.garp_master_repeat !== undefined) cfg.garpMasterRepeat = i.garp_master_repeat;
    return cfg;
  });
  return {
    instances,
    scripts: (sec.scripts ?? []).map((s) => scriptDefaults({ ...s })),
    syncGroups: (sec.sync_groups ?? []).map((g) => ({ name: g.name, group: [...g.group], notify: notifyOf(g) })),
  };
}

/**
 * RFC 5798 5.2.9 / keepalived: the first address of an IPv6 advertisement should be a link-local one. keepalived only
 * logs this (an error in vrrp_strict mode); the addresses are sent in the configured order. One message per instance.
 */
export function vrrpWarnings(cfg: VrrpConfig): string[] {
  const out: string[] = [];
  for (const i of cfg.instances)
    if (instanceFamily(i) === 6 && i.unicastPeer.length === 0 && !isLinkLocal6(i.virtualIpaddress[0].addr))
      out.push(`vrrp instance ${i.name}: (${i.name}) the first IPv6 VIP address should be link local`);
  return out;
}

/** Problems the schema cannot see; each message names the instance. Empty when the config can run. */
export function checkVrrpConfig(cfg: VrrpConfig): string[] {
  const problems: string[] = [];
  const scripts = new Set(cfg.scripts.map((s) => s.name));
  const names = new Set<string>();
  const vrids = new Map<string, string>();
  for (const i of cfg.instances) {
    const at = `vrrp instance ${i.name}`;
    if (names.has(i.name)) problems.push(`${at}: duplicate instance name`);
    names.add(i.name);
    const key = `${i.interface}/${i.virtualRouterId}`;
    const other = vrids.get(key);
    if (other)
      problems.push(`${at}: virtual_router_id ${i.virtualRouterId} on ${i.interface} already used by ${other}`);
    vrids.set(key, i.name);
    if (!Number.isInteger(i.virtualRouterId) || i.virtualRouterId < 1 || i.virtualRouterId > 255)
      problems.push(`${at}: virtual_router_id must be 1..255`);
    if (!Number.isInteger(i.priority) || i.priority < 1 || i.priority > 255)
      problems.push(`${at}: priority must be 1..255`);
    if (i.version === 2 && (!Number.isInteger(i.advertInt) || i.advertInt < 1 || i.advertInt > 255))
      problems.push(`${at}: advert_int must be a whole number of seconds 1..255 with VRRPv2`);
    if (i.version === 3) {
      const cs = Math.round(i.advertInt * 100);
      if (cs < 1 || cs > 4095 || Math.abs(cs - i.advertInt * 100) > 1e-6)
        problems.push(`${at}: advert_int must be 0.01..40.95 s in steps of 0.01 with VRRPv3`);
      if (i.authPass) problems.push(`${at}: authentication is not part of VRRPv3`);
    }
    if (i.authPass !== undefined && (i.authPass.length === 0 || Buffer.byteLength(i.authPass) > 8))
      problems.push(`${at}: auth_pass must be 1..8 bytes`);
    if (i.virtualIpaddress.length === 0) problems.push(`${at}: no virtual_ipaddress`);
    // an instance is one family, its first address's (keepalived); the others must match
    const six = instanceFamily(i) === 6;
    for (const v of i.virtualIpaddress) {
      const max = six ? 128 : 32;
      if (v.addr.includes(':') !== six) problems.push(`${at}: ${familyMismatch(i.name, v.addr)}`);
      else if (!(six ? isIPv6(v.addr) : isIPv4(v.addr)) || v.addr.includes('%'))
        problems.push(`${at}: virtual address ${v.addr} is not an IPv${six ? 6 : 4} address`);
      else if (!(Number.isInteger(v.prefixLen) && v.prefixLen >= 0 && v.prefixLen <= max))
        problems.push(`${at}: virtual address ${v.addr}/${v.prefixLen}: prefix length must be 0..${max}`);
    }
    if (six) {
      if (i.version === 2) problems.push(`${at}: VRRPv2 is IPv4 only: an IPv6 instance needs version 3`);
      if (i.unicastPeer.length > 0) problems.push(`${at}: unicast_peer with IPv6 is not supported by tierlb`);
      if (i.unicastSrcIp !== undefined && !isIPv6(i.unicastSrcIp))
        problems.push(`${at}: ${familyMismatch(i.name, i.unicastSrcIp)}`);
    } else if (i.unicastSrcIp !== undefined && isIPv6(i.unicastSrcIp))
      problems.push(`${at}: ${familyMismatch(i.name, i.unicastSrcIp)}`);
    for (const p of i.unicastPeer) if (!six && !isIPv4(p)) problems.push(`${at}: ${familyMismatch(i.name, p)}`);
    for (const t of i.trackScript)
      if (!scripts.has(t.name)) problems.push(`${at}: track_script ${t.name} is not defined`);
  }
  const groupOf = new Map<string, string>();
  for (const g of cfg.syncGroups)
    for (const n of g.group) {
      if (!names.has(n)) problems.push(`vrrp sync group ${g.name}: instance ${n} is not defined`);
      const other = groupOf.get(n);
      if (other !== undefined)
        problems.push(`vrrp sync group ${g.name}: instance ${n} is already in sync group ${other} (one group each)`);
      else groupOf.set(n, g.name);
    }
  return problems;
}
