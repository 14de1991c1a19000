/**
 * The bgp section's checks beyond the JSON schema, and the section → BgpPlan normalisation (defaults applied,
 * addresses canonical). Pure and defensive: the checks also run on configs the schema rejected.
 */
import { canonicalAddr, type Family, familyOf } from '../common/addr.js';
import type { BgpConfig } from './config-schema.js';
import { BgpError } from './errors.js';

export interface BgpProblem {
  /** relative to the `bgp` section */
  path: (string | number)[];
  message: string;
}

export interface BgpNeighbor {
  /** the BIRD protocol name (unique, [A-Za-z0-9_]) */
  name: string;
  address: string;
  family: Family;
  as: number;
  bfd: boolean;
  multihop?: number;
  password?: string;
  port?: number;
}

export interface BgpVip {
  address: string;
  family: Family;
  /** the section's communities, then the VIP's own */
  communities: string[];
}

export interface BgpPlan {
  routerId: string;
  localAs: number;
  localAddress?: string;
  holdTime?: number;
  keepaliveTime?: number;
  bfd: { intervalMs: number; multiplier: number };
  communities: string[];
  neighbors: BgpNeighbor[];
  /** explicit VIPs; absent: every VIP of the director's services */
  vips?: BgpVip[];
  require: 'all' | 'any';
  withdrawDelayMs: number;
  bird: string;
  birdc: string;
}

export const BGP_DEFAULTS = {
  bfdIntervalMs: 100,
  bfdMultiplier: 3,
  withdrawDelayMs: 2000,
  bird: 'bird',
  birdc: 'birdc',
} as const;

const isObj = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);

/** `65000:100` (both ≤ 65535) or a large community `A:B:C` (each ≤ 2^32-1); undefined when well-formed */
export function communityProblem(c: string): string | undefined {
  const parts = c.split(':').map(Number);
  if (parts.length === 2 && parts.every((p) => Number.isInteger(p) && p <= 65535)) return undefined;
  if (parts.length === 3 && parts.every((p) => Number.isInteger(p) && p <= 0xffffffff)) return undefined;
  return parts.length === 2
    ? `community '${c}': both halves must be at most 65535 (use three parts for a large community)`
    : `community '${c}': each part must be at most 4294967295`;
}

/** `n_10_90_0_1` / `n_2001_db8__1` */
function neighborName(addr: string): string {
  return `n_${addr.replace(/[.:]/g, '_')}`;
}

export function bgpProblems(section: unknown): BgpProblem[] {
  const problems: BgpProblem[] = [];
  if (!isObj(section)) return problems;
  const addr = (v: unknown, path: (string | number)[]): Family | 0 => {
    if (typeof v !== 'string') return 0;
    const f = familyOf(v);
    if (!f) problems.push({ path, message: `'${v}' is not an IP address` });
    return f;
  };
  const local = addr(section.local_address, ['local_address']);
  if (section.router_id === undefined && local !== 4)
    problems.push({ path: [], message: 'no router_id: set router_id (an IPv4 address), or an IPv4 local_address' });
  if (
    typeof section.hold_time === 'number' &&
    typeof section.keepalive_time === 'number' &&
    section.keepalive_time >= section.hold_time
  )
    problems.push({ path: ['keepalive_time'], message: 'must be less than hold_time (a third of it is usual)' });
  const comms = (v: unknown, path: (string | number)[]) => {
    if (!Array.isArray(v)) return;
    v.forEach((c, i) => {
      const p = typeof c === 'string' && /^\d+(:\d+){1,2}$/.test(c) ? communityProblem(c) : undefined;
      if (p) problems.push({ path: [...path, i], message: p });
    });
  };
  comms(section.communities, ['communities']);
  const seen = new Map<string, number>();
  const names = new Map<string, number>();
  if (Array.isArray(section.neighbors))
    section.neighbors.forEach((n: unknown, i: number) => {
      if (!isObj(n)) return;
      const f = addr(n.address, ['neighbors', i, 'address']);
      if (!f) return;
      const a = canonicalAddr(n.address as string);
      const first = seen.get(a);
      if (first !== undefined)
        problems.push({ path: ['neighbors', i, 'address'], message: `${a} is also neighbor ${first}` });
      else seen.set(a, i);
      const name = typeof n.name === 'string' ? `n_${n.name}` : neighborName(a);
      const other = names.get(name);
      if (other !== undefined && first === undefined)
        problems.push({ path: ['neighbors', i, 'name'], message: `name '${name}' is also neighbor ${other}'s` });
      else names.set(name, i);
      if (n.bfd === true && n.multihop !== undefined && !local)
        problems.push({ path: ['neighbors', i, 'bfd'], message: 'BFD on a multihop neighbor needs local_address' });
      if (local && f !== local)
        problems.push({
          path: ['neighbors', i, 'address'],
          message: `IPv${f} neighbor but local_address is IPv${local}: use a local_address of the same family`,
        });
    });
  const vips = new Map<string, number>();
  if (Array.isArray(section.vips))
    section.vips.forEach((v: unknown, i: number) => {
      if (!isObj(v)) return;
      if (!addr(v.address, ['vips', i, 'address'])) return;
      const a = canonicalAddr(v.address as string);
      const first = vips.get(a);
      if (first !== undefined) problems.push({ path: ['vips', i, 'address'], message: `${a} is also vips[${first}]` });
      else vips.set(a, i);
      comms(v.communities, ['vips', i, 'communities']);
    });
  return problems;
}

/** A schema-checked bgp section → the plan; throws with the problems when it has any. */
export function bgpPlanFromConfig(c: BgpConfig): BgpPlan {
  const p = bgpProblems(c);
  if (p.length) throw new BgpError('BGP_CONFIG', p.map((x) => `bgp.${x.path.join('.')}: ${x.message}`).join('\n'));
  const communities = c.communities ?? [];
  const local = c.local_address ? canonicalAddr(c.local_address) : undefined;
  const plan: BgpPlan = {
    routerId: c.router_id ?? (local as string),
    localAs: c.local_as,
    bfd: {
      intervalMs: c.bfd?.interval_ms ?? BGP_DEFAULTS.bfdIntervalMs,
      multiplier: c.bfd?.multiplier ?? BGP_DEFAULTS.bfdMultiplier,
    },
    communities,
    neighbors: c.neighbors.map((n) => {
      const address = canonicalAddr(n.address);
      return {
        // BIRD's protocol names share the keywords' namespace (`router`, `bgp`, ...): a given name gets a prefix
        name: n.name ? `n_${n.name}` : neighborName(address),
        address,
        family: familyOf(address) as Family,
        as: n.as,
        bfd: n.bfd ?? false,
        ...(n.multihop !== undefined ? { multihop: n.multihop } : {}),
        ...(n.password !== undefined ? { password: n.password } : {}),
        ...(n.port !== undefined ? { port: n.port } : {}),
      };
    }),
    require: c.require ?? 'all',
    withdrawDelayMs: c.withdraw_delay_ms ?? BGP_DEFAULTS.withdrawDelayMs,
    bird: c.bird ?? BGP_DEFAULTS.bird,
    birdc: c.birdc ?? BGP_DEFAULTS.birdc,
  };
  if (local) plan.localAddress = local;
  if (c.hold_time !== undefined) plan.holdTime = c.hold_time;
  if (c.keepalive_time !== undefined) plan.keepaliveTime = c.keepalive_time;
  if (c.vips)
    plan.vips = c.vips.map((v) => {
      const address = canonicalAddr(v.address);
      return {
        address,
        family: familyOf(address) as Family,
        communities: [...new Set([...communities, ...(v.communities ?? [])])],
      };
    });
  return plan;
}
