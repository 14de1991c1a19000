/**
 * What the director wants from the kernel, as data (pure): which packets go to the queue (services, NAT replies,
 * fwmark services) and which real servers need a mark + policy route (DR). Rendered here to the exact
 * iptables-restore text of the director's own mangle chain; applied by ./kernel.ts.
 */

/** Marks owned by tierlb ("TL" in the top 16 bits), kept clear of small user fwmarks. */
export const DIVERT_MARK = 0x544c0001;
/** NAT replies from real servers, so the worker knows the direction without a lookup. */
export const REPLY_MARK = 0x544c0002;
/** DR real servers get DEST_MARK_BASE + n and routing table TABLE_BASE + n. */
export const DEST_MARK_BASE = 0x544c0100;
export const TABLE_BASE = 31000;
export const MAX_DEST_MARKS = 3000;
/** ip rule preferences: the marks, then `lookup local` moved below them. */
export const MARK_PREF = 500;
export const LOCAL_PREF = 1000;
/** The director's own mangle chain (jumped to from PREROUTING): mark rules, queue rules, NAT reply marks. */
export const CHAIN = 'TIERLB_DIVERT';

export type Fam = 4 | 6;

export interface PlanService {
  kind: 'tcp' | 'udp' | 'sctp' | 'fwm';
  family: Fam;
  addr: string;
  port: number;
  fwmark: number;
}

/** A listener port of a VIP whose packets an fwmark service takes: `-d VIP -p P --dport N -j MARK --set-mark M`. */
export interface PlanMatch {
  family: Fam;
  addr: string;
  protocol: 'tcp' | 'udp';
  /** 0: every port of the VIP */
  port: number;
  mark: number;
}

export interface PlanNatSource {
  family: Fam;
  protocol: 'tcp' | 'udp' | 'sctp';
  addr: string;
  port: number;
}

export interface PlanRoute {
  family: Fam;
  /** the real server the marked packets are routed to */
  rip: string;
  mark: number;
  table: number;
}

export interface RulePlan {
  queue: number;
  /** number of queues (queue .. queue+queues-1, --queue-balance) */
  queues: number;
  services: PlanService[];
  /** mark rules of the fwmark services (rendered only for marks some fwmark service of that family has) */
  matches: PlanMatch[];
  natSources: PlanNatSource[];
  routes: PlanRoute[];
}

export function emptyPlan(queue: number, queues = 1): RulePlan {
  return { queue, queues, services: [], matches: [], natSources: [], routes: [] };
}

const hex = (n: number) => `0x${(n >>> 0).toString(16)}`;
const host = (f: Fam, a: string) => `${a}/${f === 4 ? 32 : 128}`;
/** `-p P -m P --dport N`; port 0 (a port-zero service, a real server that keeps the client's port) matches any port. */
const l4Match = (proto: string, opt: 'dport' | 'sport', port: number) =>
  port === 0 ? `-p ${proto}` : `-p ${proto} -m ${proto} --${opt} ${port}`;

function queueTarget(plan: RulePlan): string {
  return plan.queues > 1
    ? `-j NFQUEUE --queue-balance ${plan.queue}:${plan.queue + plan.queues - 1}`
    : `-j NFQUEUE --queue-num ${plan.queue}`;
}

/**
 * The whole content of the chain for one family, as iptables-restore input for `--noflush`: the chain is declared
 * and flushed, then refilled, in one transaction. No --queue-bypass: with no reader or a full queue, packets drop.
 */
export function renderChain(plan: RulePlan, family: Fam, chain = CHAIN): string {
  const q = queueTarget(plan);
  const lines = ['*mangle', `:${chain} - [0:0]`, `-F ${chain}`];
  // fwmark services first: IPVS looks a packet up by its mark before protocol/address/port
  const marks = new Set<number>();
  for (const s of plan.services) if (s.kind === 'fwm' && s.family === family) marks.add(s.fwmark >>> 0);
  // their mark rules before the queue rules that match the marks
  const tagged = new Set<string>();
  for (const m of plan.matches) {
    const k = `${m.protocol}|${m.addr}|${m.port}`;
    if (m.family !== family || !marks.has(m.mark >>> 0) || tagged.has(k)) continue;
    tagged.add(k);
    lines.push(
      `-A ${chain} -d ${host(family, m.addr)} ${l4Match(m.protocol, 'dport', m.port)} -j MARK --set-xmark ${hex(m.mark)}/0xffffffff`,
    );
  }
  for (const m of [...marks].sort((a, b) => a - b)) lines.push(`-A ${chain} -m mark --mark ${hex(m)} ${q}`);
  let divert = false;
  for (const s of plan.services) {
    if (s.kind === 'fwm' || s.family !== family) continue;
    divert = true;
    lines.push(
      `-A ${chain} -d ${host(family, s.addr)} ${l4Match(s.kind, 'dport', s.port)} -j MARK --set-xmark ${hex(DIVERT_MARK)}/0xffffffff`,
    );
  }
  if (divert) lines.push(`-A ${chain} -m mark --mark ${hex(DIVERT_MARK)} ${q}`);
  let reply = false;
  const seen = new Set<string>();
  for (const n of plan.natSources) {
    if (n.family !== family) continue;
    const k = `${n.protocol}|${n.addr}|${n.port}`;
    if (seen.has(k)) continue;
    seen.add(k);
    reply = true;
    lines.push(
      `-A ${chain} -s ${host(family, n.addr)} ${l4Match(n.protocol, 'sport', n.port)} -j MARK --set-xmark ${hex(REPLY_MARK)}/0xffffffff`,
    );
  }
  if (reply) lines.push(`-A ${chain} -m mark --mark ${hex(REPLY_MARK)} ${q}`);
  lines.push('COMMIT', '');
  return lines.join('\n');
}
