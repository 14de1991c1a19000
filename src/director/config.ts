/**
 * The `director` config section → what the service table needs (ServiceSpec / DestSpec), its semantic checks, and
 * the diff between two plans so a reload edits the live table in place (established flows keep their real server).
 */

import { isIPv4 } from 'node:net';
import { canonicalAddr, type Family, familyOf, hostPort, isMulticast4, prefixToMask4 } from '../common/addr.js';
import { ManualClock } from '../common/clock.js';
import { AdmError } from '../common/errors.js';
import type { ConfigPath } from '../config/problems.js';
import { registerSection, type SectionContext } from '../config/registry.js';
import type { PlanMatch } from '../fwmark/plan.js';
import { healthFromService } from '../ha/checks-config.js';
import type { VirtualServerHealth } from '../ha/checks-types.js';
import { DEFAULT_TIMEOUTS } from '../l4/adm/table-target.js';
import type { Timeouts } from '../l4/adm/target.js';
import { destKey, type FwdMethod, MAX_WEIGHT } from '../l4/dest.js';
import { DEFAULT_SCHEDULER, hasScheduler, SCHEDULERS } from '../l4/schedulers/index.js';
import {
  DEFAULT_PERSISTENCE_S,
  describeService,
  type ServiceId,
  SVC_F_ONEPACKET,
  SVC_F_SCHED1,
  SVC_F_SCHED2,
  SVC_F_SCHED3,
  serviceKey,
} from '../l4/service.js';
import { type DestSpec, type ServiceSpec, ServiceTable } from '../l4/services.js';
import { type DirectorConfig, directorSchema, type FastpathMode, FWD_ALIASES } from './config-schema.js';

/** ip_vs kernel defaults (ipvsadm --set): tcp 900 s, tcpfin 120 s, udp 300 s; the engine's timeout tables. */
export { DEFAULT_TIMEOUTS };

/** The net.ipv4.vs.* sysctls the director honours. */
export interface DirectorSysctl {
  expireNodestConn: boolean;
  expireQuiescentTemplate: boolean;
  sloppyTcp: boolean;
  sloppySctp: boolean;
  connReuseMode: number;
  /** The memory defenses and the table's bound, when the config sets them (the worker applies DEFENSE_DEFAULTS) */
  dropEntry?: number;
  dropPacket?: number;
  secureTcp?: number;
  /** 4 KiB pages, as the kernel's */
  amemthresh?: number;
  amDroprate?: number;
  connTableBytes?: number;
}

/**
 * The director's defaults for the memory defenses: on, driven by the connection table's memory bound. The table is
 * held to 256 MiB of estimated entries (about 987,000 at CONN_ENTRY_BYTES); below 4 MiB (1024 pages, the kernel's
 * amemthresh) of room left, drop_entry starts dropping half-open and idle entries and secure_tcp switches to the
 * stricter state table, both back off when the room returns. drop_packet stays off: with the table full it would
 * refuse every new connection (rate amemthresh / (amemthresh - free) reaches 1), legitimate clients included,
 * where the table instead evicts a half-open entry for each new one (the SYN flood's, not the clients').
 */
export const DEFENSE_DEFAULTS = {
  dropEntry: 1,
  dropPacket: 0,
  secureTcp: 1,
  amemthresh: 1024,
  amDroprate: 10,
  connTableBytes: 256 * 1024 * 1024,
} as const;

export const DEFAULT_SYSCTL: DirectorSysctl = {
  expireNodestConn: false,
  expireQuiescentTemplate: false,
  sloppyTcp: false,
  sloppySctp: false,
  connReuseMode: 1,
};

export interface PlannedService {
  /** the optional label from the config */
  name?: string;
  spec: ServiceSpec;
  /** in config order (added in this order, so the table lists the last one first, as the kernel does) */
  dests: DestSpec[];
  /** health checks (keepalived's checkers); absent: the service is not under the checker */
  health?: VirtualServerHealth;
  /** fwmark services: the listener ports the director marks with the service's mark (`match:`) */
  match?: PlanMatch[];
}

export interface DirectorPlan {
  services: PlannedService[];
  /** the mark rules of all fwmark services (their `match:` entries, in config order); absent = none */
  marks?: PlanMatch[];
  timeouts: Timeouts;
  sysctl: DirectorSysctl;
  /** the kernel fast path (`fastpath:`), when the config sets it; read at start, not on reload */
  fastpath?: FastpathMode;
}

type Report = (path: ConfigPath, message: string) => void;

const SCHED_FLAG_BITS: Record<string, { bit: number; sched?: string }> = {
  'flag-1': { bit: SVC_F_SCHED1 },
  'flag-2': { bit: SVC_F_SCHED2 },
  'flag-3': { bit: SVC_F_SCHED3 },
  'sh-fallback': { bit: SVC_F_SCHED1, sched: 'sh' },
  'sh-port': { bit: SVC_F_SCHED2, sched: 'sh' },
  'mh-fallback': { bit: SVC_F_SCHED1, sched: 'mh' },
  'mh-port': { bit: SVC_F_SCHED2, sched: 'mh' },
};

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isInt = (v: unknown, lo: number, hi: number): v is number =>
  Number.isInteger(v) && (v as number) >= lo && (v as number) <= hi;

/** `tcp 10.0.0.1:80` (port 0: `tcp 10.0.0.1:*`) */
function describeMatch(m: PlanMatch): string {
  return `${m.protocol} ${hostPort(m.addr, m.port === 0 ? '*' : m.port, m.family)}`;
}

/** Two mark rules that would tag the same packets (port 0 is every port). */
function overlaps(a: PlanMatch, b: PlanMatch): boolean {
  return (
    a.family === b.family &&
    a.addr === b.addr &&
    a.protocol === b.protocol &&
    (a.port === b.port || a.port === 0 || b.port === 0)
  );
}

/** A fwmark service's `match:` → its mark rules; problems reported (paths relative to the service). */
function planMatches(raw: Record<string, unknown>, id: ServiceId | undefined, bad: Report): (PlanMatch | undefined)[] {
  if (!Array.isArray(raw.match)) return [];
  const out: (PlanMatch | undefined)[] = [];
  for (const [i, m] of raw.match.entries()) {
    out.push(undefined);
    if (!isObj(m) || typeof m.vip !== 'string' || !isInt(m.port, 0, 65535)) continue;
    const proto = m.protocol ?? 'tcp';
    if (proto !== 'tcp' && proto !== 'udp') continue;
    const fam = familyOf(m.vip);
    if (fam === 0) bad(['match', i, 'vip'], `'${m.vip}' is not an IP address`);
    else if (id && fam !== id.family)
      bad(
        ['match', i, 'vip'],
        `${m.vip} is IPv${fam} but the service is IPv${id.family} (family ${id.family === 6 ? 'inet6' : 'inet'})`,
      );
    else if (id?.fwmark) {
      const pm: PlanMatch = { family: fam, addr: canonicalAddr(m.vip), protocol: proto, port: m.port, mark: id.fwmark };
      const j = out.findIndex((o) => o && overlaps(o, pm));
      if (j >= 0) bad(['match', i], `${describeMatch(pm)} is listed twice (also match[${j}])`);
      else out[i] = pm;
    }
  }
  return out;
}

/**
 * One service entry → its plan. Problems the schema cannot see are reported (paths relative to the entry); a value
 * of the wrong type or out of range is the schema's to report and only makes the result undefined.
 */
export function planService(raw: unknown, report: Report): PlannedService | undefined {
  return checkService(raw, report).plan;
}

/** planService, plus the service's id whenever vip/fwmark are usable (to find duplicates among invalid entries). */
function checkService(
  raw: unknown,
  report: Report,
): { id?: ServiceId; plan?: PlannedService; matches?: (PlanMatch | undefined)[] } {
  if (!isObj(raw)) return {};
  let ok = true;
  const bad = (path: ConfigPath, message: string) => {
    report(path, message);
    ok = false;
  };
  const hasVip = raw.vip !== undefined;
  const hasFwm = raw.fwmark !== undefined;
  let id: ServiceId | undefined;
  const persistent = raw.persistent === true ? DEFAULT_PERSISTENCE_S : raw.persistent === false ? 0 : raw.persistent;
  const timeout = isInt(persistent, 1, 0x7fffffff) ? persistent : 0;
  if (persistent !== undefined && persistent !== 0 && timeout === 0) ok = false;

  if (!hasVip && !hasFwm) bad([], 'a service needs a vip (with port) or a fwmark');
  else if (hasVip && hasFwm) bad(['fwmark'], 'a service has either a vip or a fwmark, not both');
  else if (hasVip) {
    const proto = raw.protocol ?? 'tcp';
    if (typeof raw.vip !== 'string' || (proto !== 'tcp' && proto !== 'udp' && proto !== 'sctp')) ok = false;
    else if (familyOf(raw.vip) === 0) bad(['vip'], `'${raw.vip}' is not an IP address`);
    else {
      const family = familyOf(raw.vip) as Family;
      if (raw.family !== undefined && raw.family !== (family === 6 ? 'inet6' : 'inet'))
        bad(['family'], `family ${String(raw.family)} does not match the vip ${raw.vip}`);
      if (raw.port === undefined && timeout === 0)
        bad([], 'missing required key \'port\' (port 0, "all ports", needs persistent)');
      else if (raw.port !== undefined && !isInt(raw.port, 0, 65535)) ok = false;
      else if (raw.port === 0 && timeout === 0) bad(['port'], 'port 0 ("all ports") needs persistent');
      id = { kind: proto, family, addr: canonicalAddr(raw.vip), port: (raw.port as number | undefined) ?? 0 };
    }
  } else {
    if (raw.protocol !== undefined) bad(['protocol'], 'a fwmark service matches every protocol: remove protocol');
    if (raw.port !== undefined) bad(['port'], 'a fwmark service has no port: the mark rules select the ports');
    if (
      !isInt(raw.fwmark, 1, 0xffffffff) ||
      (raw.family !== undefined && raw.family !== 'inet' && raw.family !== 'inet6')
    )
      ok = false;
    else id = { kind: 'fwm', family: raw.family === 'inet6' ? 6 : 4, fwmark: raw.fwmark };
  }
  if (hasVip && raw.match !== undefined)
    bad(['match'], 'match is for fwmark services (a vip service takes the packets for its own vip:port)');
  const matches = hasFwm && !hasVip ? planMatches(raw, id, bad) : [];

  const sched = raw.scheduler ?? DEFAULT_SCHEDULER;
  if (typeof sched !== 'string') ok = false;
  else if (!hasScheduler(sched)) {
    const avail = Object.keys(SCHEDULERS).join(', ');
    bad(raw.scheduler === undefined ? [] : ['scheduler'], `unknown scheduler '${sched}' (available: ${avail})`);
  }

  let flags = 0;
  if (Array.isArray(raw.sched_flags)) {
    raw.sched_flags.forEach((f, i) => {
      const def = typeof f === 'string' ? SCHED_FLAG_BITS[f] : undefined;
      if (!def) ok = false;
      else if (def.sched && def.sched !== sched) bad(['sched_flags', i], `'${f}' needs scheduler ${def.sched}`);
      else flags |= def.bit;
    });
  } else if (raw.sched_flags !== undefined) ok = false;

  if (raw.ops === true) {
    if (id && id.kind !== 'udp' && id.kind !== 'fwm')
      bad(['ops'], 'one-packet scheduling is only for udp and fwmark services');
    flags |= SVC_F_ONEPACKET;
  }

  let netmask = id?.family === 6 ? 128 : 0xffffffff;
  if (raw.netmask !== undefined && id) {
    const m = raw.netmask;
    if (id.family === 6) {
      if (isInt(m, 1, 128)) netmask = m;
      else bad(['netmask'], `an IPv6 service's netmask is a prefix length 1..128, got ${String(m)}`);
    } else if (isInt(m, 1, 32)) netmask = prefixToMask4(m);
    else if (typeof m === 'string' && isIPv4(m) && maskOk(m)) netmask = mask4(m);
    else
      bad(['netmask'], `an IPv4 netmask is a dotted mask (255.255.255.0) or a prefix length 1..32, got ${String(m)}`);
  }

  const dests: DestSpec[] = [];
  const seen = new Map<string, number>();
  if (Array.isArray(raw.real_servers)) {
    raw.real_servers.forEach((rs, i) => {
      const d = planDest(rs, id, (p, msg) => bad(['real_servers', i, ...p], msg));
      const k = destId(rs, id);
      const first = k === undefined ? undefined : seen.get(k);
      if (k !== undefined && first === undefined) seen.set(k, i);
      if (!d) {
        ok = false;
        if (first !== undefined)
          bad(['real_servers', i], `this real server is listed twice (also real_servers[${first}])`);
        return;
      }
      if (first !== undefined) {
        bad(
          ['real_servers', i],
          `real server ${hostPort(d.addr, d.port, familyOf(d.addr) || 4)} is listed twice (also real_servers[${first}])`,
        );
        return;
      }
      dests.push(d);
    });
  } else if (raw.real_servers !== undefined) ok = false;

  if (!ok || !id || typeof sched !== 'string') return { id, matches };
  const plan: PlannedService = { spec: { id, sched, flags, timeout, netmask }, dests };
  if (typeof raw.name === 'string') plan.name = raw.name;
  if (matches.length) plan.match = matches.filter((m) => m !== undefined);
  try {
    const health = healthFromService(raw, dests);
    if (health) plan.health = health;
  } catch (e) {
    report([], (e as Error).message);
    return { id, matches };
  }
  return { id, plan, matches };
}

/** A real server entry's address|port key when its address and port are usable. */
function destId(raw: unknown, svc: ServiceId | undefined): string | undefined {
  if (!isObj(raw) || typeof raw.address !== 'string' || familyOf(raw.address) === 0) return undefined;
  const port = raw.port ?? (svc?.kind === 'fwm' ? 0 : svc?.port);
  return isInt(port, 0, 65535) ? destKey(canonicalAddr(raw.address), port) : undefined;
}

function mask4(m: string): number {
  return m.split('.').reduce((a, o) => ((a << 8) | Number(o)) >>> 0, 0);
}

/** A dotted mask: contiguous ones, not all zero. */
function maskOk(m: string): boolean {
  const n = mask4(m);
  return n !== 0 && ((~n >>> 0) & ((~n >>> 0) + 1)) === 0;
}

function planDest(raw: unknown, svc: ServiceId | undefined, report: Report): DestSpec | undefined {
  if (!isObj(raw) || typeof raw.address !== 'string') return undefined;
  const fam = familyOf(raw.address);
  if (fam === 0) {
    report(['address'], `'${raw.address}' is not an IP address`);
    return undefined;
  }
  const method = raw.method ?? 'route';
  const fwd: FwdMethod | undefined = typeof method === 'string' ? FWD_ALIASES[method] : undefined;
  const weight = raw.weight ?? 1;
  const u = raw.u_threshold ?? 0;
  const l = raw.l_threshold ?? 0;
  if (!fwd || !isInt(weight, 0, MAX_WEIGHT) || !isInt(u, 0, 0xffffffff) || !isInt(l, 0, 0xffffffff)) return undefined;
  if (raw.port !== undefined && !isInt(raw.port, 0, 65535)) return undefined;
  let ok = true;
  if (l > u && u !== 0) {
    report(['l_threshold'], `lower threshold ${l} is above the upper threshold ${u}`);
    ok = false;
  }
  if (svc && fam !== svc.family && fwd !== 'tunnel') {
    report(
      ['address'],
      `${raw.address} is IPv${fam} but the service is IPv${svc.family}: mixed families need method tunnel`,
    );
    ok = false;
  }
  const svcPort = svc?.kind === 'fwm' ? 0 : (svc?.port ?? 0);
  // ipvsadm: only masquerading maps ports; DR and tunnel real servers take the service's port
  if (svc && svc.kind !== 'fwm' && fwd !== 'masq' && raw.port !== undefined && raw.port !== svcPort) {
    report(['port'], `only method masq can map ports: a ${fwd} real server's port is the service's (${svcPort})`);
    ok = false;
  }
  if (!ok || !svc) return undefined;
  return {
    addr: canonicalAddr(raw.address),
    port: (raw.port as number | undefined) ?? svcPort,
    fwd,
    weight,
    uThreshold: u,
    lThreshold: l,
  };
}

function planSysctl(s: DirectorConfig['sysctl']): DirectorSysctl {
  return {
    expireNodestConn: s?.expire_nodest_conn ?? DEFAULT_SYSCTL.expireNodestConn,
    expireQuiescentTemplate: s?.expire_quiescent_template ?? DEFAULT_SYSCTL.expireQuiescentTemplate,
    sloppyTcp: s?.sloppy_tcp ?? DEFAULT_SYSCTL.sloppyTcp,
    sloppySctp: s?.sloppy_sctp ?? DEFAULT_SYSCTL.sloppySctp,
    connReuseMode: s?.conn_reuse_mode ?? DEFAULT_SYSCTL.connReuseMode,
    // the defenses only as the config sets them: the worker applies DEFENSE_DEFAULTS under them
    ...(s?.drop_entry !== undefined && { dropEntry: s.drop_entry }),
    ...(s?.drop_packet !== undefined && { dropPacket: s.drop_packet }),
    ...(s?.secure_tcp !== undefined && { secureTcp: s.secure_tcp }),
    ...(s?.amemthresh !== undefined && { amemthresh: s.amemthresh }),
    ...(s?.am_droprate !== undefined && { amDroprate: s.am_droprate }),
    ...(s?.conn_table_bytes !== undefined && { connTableBytes: s.conn_table_bytes }),
  };
}

/**
 * A loaded config (its `director` section; absent = no services) → the plan. The config must have passed the
 * loader's checks: a problem here throws an AdmError('EINVAL').
 */
export function directorFromConfig(cfg: { director?: DirectorConfig }): DirectorPlan {
  const d = cfg.director ?? {};
  const services = (d.services ?? []).map((raw, i) => {
    const p = planService(raw, (path, msg) => {
      throw new AdmError('EINVAL', `director.services[${i}]${path.length ? `.${path.join('.')}` : ''}: ${msg}`);
    });
    if (!p) throw new AdmError('EINVAL', `director.services[${i}] is invalid (load the config through src/config)`);
    return p;
  });
  const marks = services.flatMap((s) => s.match ?? []);
  const plan: DirectorPlan = {
    services,
    marks,
    timeouts: { ...DEFAULT_TIMEOUTS, ...d.timeouts },
    sysctl: planSysctl(d.sysctl),
  };
  if (d.fastpath) plan.fastpath = d.fastpath;
  return plan;
}

/**
 * Fill `table` with the plan: anything already in it is cleared first. Real servers are added in config order.
 * For a live reload use diffPlans + applyPlanDiff, which keep unchanged services and their connections.
 */
export function applyDirectorConfig(table: ServiceTable, plan: DirectorPlan): ServiceTable {
  table.clear();
  for (const s of plan.services) {
    table.addService(s.spec);
    for (const d of s.dests) table.addDest(s.spec.id, d);
  }
  return table;
}

export interface DestChange {
  service: ServiceId;
  dest: DestSpec;
}

export interface DestRef {
  service: ServiceId;
  addr: string;
  port: number;
}

/** What changes between two plans. Services are matched by key (protocol+VIP+port or fwmark+family). */
export interface PlanDiff {
  services: {
    /** new services, with their real servers */
    add: PlannedService[];
    /** scheduler, flags, persistence or netmask changed (ipvsadm -E) */
    edit: PlannedService[];
    del: ServiceId[];
  };
  /** real servers of services present in both plans */
  dests: { add: DestChange[]; edit: DestChange[]; del: DestRef[] };
  /** the new timeouts, or null when unchanged */
  timeouts: Timeouts | null;
  /** the new sysctls, or null when unchanged */
  sysctl: DirectorSysctl | null;
  /** the new mark rules (all of them), or null when unchanged */
  marks: PlanMatch[] | null;
}

function sameSpec(a: ServiceSpec, b: ServiceSpec): boolean {
  return a.sched === b.sched && a.flags === b.flags && a.timeout === b.timeout && a.netmask === b.netmask;
}

function sameDest(a: DestSpec, b: DestSpec): boolean {
  return a.fwd === b.fwd && a.weight === b.weight && a.uThreshold === b.uThreshold && a.lThreshold === b.lThreshold;
}

function sameRecord<T extends object>(a: T, b: T): boolean {
  const ka = Object.keys(a) as (keyof T)[];
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
}

function sameMatches(a: PlanMatch[], b: PlanMatch[]): boolean {
  return a.length === b.length && a.every((m, i) => sameRecord(m, b[i]));
}

export function diffPlans(old: DirectorPlan, next: DirectorPlan): PlanDiff {
  const diff: PlanDiff = {
    services: { add: [], edit: [], del: [] },
    dests: { add: [], edit: [], del: [] },
    timeouts: sameRecord(old.timeouts, next.timeouts) ? null : { ...next.timeouts },
    sysctl: sameRecord(old.sysctl, next.sysctl) ? null : { ...next.sysctl },
    marks: sameMatches(old.marks ?? [], next.marks ?? []) ? null : [...(next.marks ?? [])],
  };
  const before = new Map(old.services.map((s) => [serviceKey(s.spec.id), s]));
  const after = new Map(next.services.map((s) => [serviceKey(s.spec.id), s]));
  for (const [k, s] of before) if (!after.has(k)) diff.services.del.push(s.spec.id);
  for (const [k, s] of after) {
    const o = before.get(k);
    if (!o) {
      diff.services.add.push(s);
      continue;
    }
    if (!sameSpec(o.spec, s.spec)) diff.services.edit.push(s);
    const od = new Map(o.dests.map((d) => [destKey(d.addr, d.port), d]));
    const nd = new Map(s.dests.map((d) => [destKey(d.addr, d.port), d]));
    for (const [dk, d] of od) if (!nd.has(dk)) diff.dests.del.push({ service: s.spec.id, addr: d.addr, port: d.port });
    for (const [dk, d] of nd) {
      const prev = od.get(dk);
      if (!prev) diff.dests.add.push({ service: s.spec.id, dest: d });
      else if (!sameDest(prev, d)) diff.dests.edit.push({ service: s.spec.id, dest: d });
    }
  }
  return diff;
}

/** True when the diff changes nothing. */
export function isEmptyDiff(d: PlanDiff): boolean {
  return (
    d.timeouts === null &&
    d.sysctl === null &&
    !d.marks &&
    [d.services.add, d.services.edit, d.services.del, d.dests.add, d.dests.edit, d.dests.del].every(
      (l) => l.length === 0,
    )
  );
}

/**
 * Apply a diff to a live table in place (ipvsadm -d, -D, -E, -A, -a, -e), so unchanged services and real servers —
 * and the connections bound to them — stay. Timeouts and sysctls are the caller's (they are not the table's).
 */
export function applyPlanDiff(table: ServiceTable, diff: PlanDiff): void {
  for (const d of diff.dests.del) table.delDest(d.service, d.addr, d.port);
  for (const id of diff.services.del) table.delService(id);
  for (const s of diff.services.edit) table.editService(s.spec);
  for (const s of diff.services.add) {
    table.addService(s.spec);
    for (const d of s.dests) table.addDest(s.spec.id, d);
  }
  for (const d of diff.dests.edit) table.editDest(d.service, d.dest);
  for (const d of diff.dests.add) table.addDest(d.service, d.dest);
}

function rejected(what: string, e: unknown): string {
  if (e instanceof AdmError) return `the director rejects this ${what}: ${e.message}`;
  return `internal error while building this ${what}: ${e instanceof Error ? e.message : String(e)}`;
}

/** The sync daemon's group: IPv4 multicast (the daemon speaks IPv4 only). */
function checkSyncGroup(sync: unknown, ctx: SectionContext): void {
  if (!isObj(sync) || typeof sync.group !== 'string') return;
  const g = sync.group;
  if (familyOf(g) === 6) ctx.report(['sync', 'group'], `'${g}': an IPv6 sync group is not supported (IPv4 only)`);
  else if (!isMulticast4(g)) ctx.report(['sync', 'group'], `'${g}' is not an IPv4 multicast address (224.0.0.0/4)`);
}

/** The director section's semantic checks (registered with the loader). */
export function validateDirector(section: unknown, ctx: SectionContext): void {
  if (!isObj(section)) return;
  checkSyncGroup(section.sync, ctx);
  if (!Array.isArray(section.services)) return;
  const keys = new Map<string, number>();
  const names = new Map<string, number>();
  const marked: { m: PlanMatch; at: ConfigPath }[] = [];
  // the same service table the daemon would build, so "config check: ok" means the director accepts it
  const scratch = new ServiceTable({ clock: new ManualClock(), random: Math.random });
  section.services.forEach((raw, i) => {
    const at = (p: ConfigPath): ConfigPath => ['services', i, ...p];
    if (isObj(raw) && typeof raw.name === 'string') {
      const first = names.get(raw.name);
      if (first !== undefined)
        ctx.report(
          at(['name']),
          `service name '${raw.name}' is used twice (first at line ${ctx.positionOf(['services', first]).line})`,
        );
      else names.set(raw.name, i);
    }
    const { id, plan, matches } = checkService(raw, (p, msg) => ctx.report(at(p), msg));
    matches?.forEach((m, j) => {
      if (!m) return;
      const other = marked.find((o) => overlaps(o.m, m) && o.at[1] !== i);
      if (other)
        ctx.report(
          at(['match', j]),
          `${describeMatch(m)} is already marked ${other.m.mark} by services[${other.at[1]}] (line ${ctx.positionOf(other.at).line}): a packet carries one mark`,
        );
      else marked.push({ m, at: at(['match', j]) });
    });
    if (!id) return;
    const key = serviceKey(id);
    const first = keys.get(key);
    if (first !== undefined) {
      ctx.report(
        at([]),
        `duplicate service ${describeService(id)} (first at line ${ctx.positionOf(['services', first]).line})`,
      );
      return;
    }
    keys.set(key, i);
    if (!plan) return;
    try {
      scratch.addService(plan.spec);
    } catch (e) {
      ctx.report(at([]), rejected('service', e));
      return;
    }
    plan.dests.forEach((d) => {
      try {
        scratch.addDest(plan.spec.id, d);
      } catch (e) {
        const j = (raw as { real_servers: unknown[] }).real_servers.findIndex(
          (r) =>
            isObj(r) && typeof r.address === 'string' && familyOf(r.address) && canonicalAddr(r.address) === d.addr,
        );
        ctx.report(
          at(j >= 0 ? ['real_servers', j] : []),
          `the director rejects this real server: ${(e as Error).message}`,
        );
      }
    });
  });
}

declare module '../config/registry.js' {
  interface SectionTypes {
    director: DirectorConfig;
  }
}

/** The `director` section: its schema and checks, registered with the loader by importing this module. */
registerSection({ name: 'director', schema: directorSchema, validate: validateDirector });
