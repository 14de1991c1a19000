/**
 * JSON schema (and TypeScript shape) of the `cluster` config section (owned by src/cluster): one description of a
 * whole active-active cluster, from which every node's own config is derived (`tierlb cluster render --node NAME`).
 *
 * ```yaml
 * cluster:
 *   vips: [{ name: front, address: 10.99.0.1 }]
 *   scheduler: mh                 # the directors' scheduler (default mh: consistent across directors)
 *   sched_flags: [mh-port]
 *   listeners:                    # on every LB node; each gets a fwmark from 0x2710 up (stable, see fwmark.ts)
 *     - { name: web, vip: front, port: 80, mode: http, backend_port: 8080 }
 *   bgp:                          # shared by the directors (router_id / local_address: each director's address)
 *     local_as: 65001
 *     neighbors: [{ address: 10.90.0.1, as: 65000, bfd: true }]
 *   directors: [{ name: d1, address: 10.90.0.11 }]
 *   lb_nodes: [{ name: lb1, address: 10.90.0.21, underlay: 10.200.0.21, overlay: 172.16.100.1 }]
 *   hypervisors: [{ name: hv1, underlay: 10.200.0.1 }]
 *   overlay: { vni: 100, subnet: 172.16.100.0/24, mtu: 1450, dstport: 4789 }
 *   backends: [{ name: be1, address: 172.16.100.11 }]
 * ```
 */

import { bgpNeighborSchema } from '../bgp/config-schema.js';
import { cidr4Schema, ipv4Schema as ipv4, portSchema as port } from '../config/common-schema.js';
import { registerSection } from '../config/registry.js';
import { clusterProblems } from './semantics.js';

const name = { type: 'string', pattern: '^[a-z][a-z0-9-]{0,14}$' } as const;
const fwmark = { type: 'integer', minimum: 1, maximum: 0xffffffff } as const;

export const clusterSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['vips', 'listeners', 'directors', 'lb_nodes'],
  properties: {
    vips: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'address'],
        properties: { name, address: ipv4, communities: { type: 'array', items: { type: 'string' } } },
      },
    },
    scheduler: { type: 'string', minLength: 1 },
    sched_flags: { type: 'array', items: { type: 'string' }, uniqueItems: true },
    fwmark_base: fwmark,
    listeners: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'vip', 'port'],
        properties: {
          name,
          vip: { type: 'string' },
          port,
          mode: { enum: ['http', 'tcp'] },
          backend_port: port,
          balance: { type: 'string', minLength: 1 },
          /** pin this listener's fwmark (otherwise allocated) */
          fwmark,
        },
      },
    },
    bgp: {
      type: 'object',
      additionalProperties: false,
      required: ['local_as', 'neighbors'],
      properties: {
        local_as: { type: 'integer', minimum: 1, maximum: 4294967295 },
        hold_time: { type: 'integer', minimum: 3, maximum: 65535 },
        keepalive_time: { type: 'integer', minimum: 1, maximum: 65535 },
        communities: { type: 'array', items: { type: 'string' } },
        withdraw_delay_ms: { type: 'integer', minimum: 0 },
        neighbors: { type: 'array', minItems: 1, items: bgpNeighborSchema },
      },
    },
    directors: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'address'],
        properties: { name, address: ipv4 },
      },
    },
    lb_nodes: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'address'],
        properties: {
          name,
          address: ipv4,
          underlay: ipv4,
          overlay: ipv4,
          weight: { type: 'integer', minimum: 0, maximum: 65535 },
        },
      },
    },
    hypervisors: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'underlay'],
        properties: { name, underlay: ipv4 },
      },
    },
    overlay: {
      type: 'object',
      additionalProperties: false,
      required: ['vni', 'subnet'],
      properties: {
        vni: { type: 'integer', minimum: 1, maximum: 16777215 },
        subnet: cidr4Schema('[0-9]|[12]\\d|3[0-2]'),
        mtu: { type: 'integer', minimum: 68, maximum: 65535 },
        dstport: port,
      },
    },
    backends: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'address'],
        properties: { name, address: ipv4, weight: { type: 'integer', minimum: 0, maximum: 256 } },
      },
    },
  },
} as const;

export interface ClusterListener {
  name: string;
  vip: string;
  port: number;
  mode?: 'http' | 'tcp';
  backend_port?: number;
  balance?: string;
  fwmark?: number;
}

export interface ClusterConfig {
  vips: { name: string; address: string; communities?: string[] }[];
  scheduler?: string;
  sched_flags?: string[];
  fwmark_base?: number;
  listeners: ClusterListener[];
  bgp?: {
    local_as: number;
    hold_time?: number;
    keepalive_time?: number;
    communities?: string[];
    withdraw_delay_ms?: number;
    neighbors: {
      name?: string;
      address: string;
      as: number;
      bfd?: boolean;
      multihop?: number;
      password?: string;
      port?: number;
    }[];
  };
  directors: { name: string; address: string }[];
  lb_nodes: { name: string; address: string; underlay?: string; overlay?: string; weight?: number }[];
  hypervisors?: { name: string; underlay: string }[];
  overlay?: { vni: number; subnet: string; mtu?: number; dstport?: number };
  backends?: { name: string; address: string; weight?: number }[];
}

registerSection({
  name: 'cluster',
  schema: clusterSchema,
  validate: (section, ctx) => {
    for (const p of clusterProblems(section)) ctx.report(p.path, p.message);
  },
});
