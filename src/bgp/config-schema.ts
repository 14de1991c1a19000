/**
 * JSON schema (and TypeScript shape) of the `bgp` config section (owned by src/bgp): how this director announces its
 * VIPs to the upstream router(s) through BIRD 2, so that several directors share the traffic by ECMP.
 *
 * ```yaml
 * bgp:
 *   router_id: 10.90.0.11        # default: local_address, else the first IPv4 neighbor's local side is not guessed
 *   local_as: 65001
 *   local_address: 10.90.0.11    # source of the sessions (optional)
 *   hold_time: 9                 # seconds (BIRD's default 240); keepalive is a third of it unless given
 *   keepalive_time: 3
 *   bfd: { interval_ms: 100, multiplier: 3 }   # timers of the BFD sessions the neighbors ask for
 *   communities: ["65000:100"]   # added to every VIP (optional)
 *   neighbors:
 *     - { address: 10.90.0.1, as: 65000, bfd: true }
 *   vips:                        # optional: default every VIP of the director's services
 *     - { address: 10.99.0.1, communities: ["65000:201"] }
 *   require: all                 # all (default): every service of a VIP has quorum; any: at least one
 *   withdraw_delay_ms: 2000      # on SIGTERM: withdraw, wait this long for the router to move the flows, then stop
 * ```
 */
import { ipv4Schema } from '../config/common-schema.js';
import { registerSection } from '../config/registry.js';
import { bgpProblems } from './semantics.js';

const asn = { type: 'integer', minimum: 1, maximum: 4294967295 } as const;
/** a standard community `ASN16:VALUE16` or a large one `ASN:V1:V2` */
const community = { type: 'string', pattern: '^\\d{1,10}:\\d{1,10}(:\\d{1,10})?$' } as const;
const address = { type: 'string', minLength: 2 } as const;

export const bgpNeighborSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['address', 'as'],
  properties: {
    /** the BIRD protocol is named `n_<name>` (default `n_<address>`) */
    name: { type: 'string', pattern: '^[A-Za-z0-9_]{1,30}$' },
    address,
    as: asn,
    bfd: { type: 'boolean' },
    /** eBGP multihop TTL (the router is not on a shared link) */
    multihop: { type: 'integer', minimum: 1, maximum: 255 },
    /** TCP MD5 (no quotes or backslashes: BIRD's strings have no escapes) */
    password: { type: 'string', pattern: '^[^"\\\\\\n]{1,80}$' },
    port: { type: 'integer', minimum: 1, maximum: 65535 },
  },
} as const;

export const bgpSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['local_as', 'neighbors'],
  properties: {
    router_id: ipv4Schema,
    local_as: asn,
    local_address: address,
    hold_time: { type: 'integer', minimum: 3, maximum: 65535 },
    keepalive_time: { type: 'integer', minimum: 1, maximum: 65535 },
    bfd: {
      type: 'object',
      additionalProperties: false,
      properties: {
        interval_ms: { type: 'integer', minimum: 10, maximum: 60000 },
        multiplier: { type: 'integer', minimum: 1, maximum: 255 },
      },
    },
    communities: { type: 'array', items: community, uniqueItems: true },
    neighbors: { type: 'array', minItems: 1, items: bgpNeighborSchema },
    vips: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['address'],
        properties: { address, communities: { type: 'array', items: community, uniqueItems: true } },
      },
    },
    require: { enum: ['all', 'any'] },
    withdraw_delay_ms: { type: 'integer', minimum: 0, maximum: 600000 },
    /** the daemon's programs (default: bird and birdc on the PATH, /usr/sbin) */
    bird: { type: 'string', minLength: 1 },
    birdc: { type: 'string', minLength: 1 },
  },
} as const;

export interface BgpNeighborConfig {
  name?: string;
  address: string;
  as: number;
  bfd?: boolean;
  multihop?: number;
  password?: string;
  port?: number;
}

export interface BgpConfig {
  router_id?: string;
  local_as: number;
  local_address?: string;
  hold_time?: number;
  keepalive_time?: number;
  bfd?: { interval_ms?: number; multiplier?: number };
  communities?: string[];
  neighbors: BgpNeighborConfig[];
  vips?: { address: string; communities?: string[] }[];
  require?: 'all' | 'any';
  withdraw_delay_ms?: number;
  bird?: string;
  birdc?: string;
}

registerSection({
  name: 'bgp',
  schema: bgpSchema,
  validate: (section, ctx) => {
    for (const p of bgpProblems(section)) ctx.report(p.path, p.message);
  },
});
