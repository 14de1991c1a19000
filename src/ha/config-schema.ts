/**
 * JSON schema of the `vrrp` config section (owned by src/ha); src/ha/vrrp/config.ts turns a valid section into the
 * in-memory VrrpConfig. Keys follow keepalived's keywords.
 *
 * ```yaml
 * vrrp:
 *   scripts:
 *     - { name: chk_haproxy, script: "killall -0 haproxy", interval: 2, weight: -20, fall: 2, rise: 2 }
 *   instances:
 *     - name: VI_1
 *       interface: eth0
 *       virtual_router_id: 51
 *       priority: 150
 *       advert_int: 1
 *       version: 2
 *       state: BACKUP
 *       nopreempt: false
 *       preempt_delay: 0
 *       authentication: { auth_type: PASS, auth_pass: secret }
 *       virtual_ipaddress: [10.0.0.100/24, { address: 10.0.0.101/24, dev: eth1, label: "eth1:1" }]
 *       # or IPv6 (VRRPv3 over IPv6, one family per instance; the first address should be link-local):
 *       # virtual_ipaddress: [fe80::100, 2001:db8::100/64]
 *       unicast_src_ip: 10.0.0.2
 *       unicast_peer: [10.0.0.3]
 *       track_interface: [eth1, { name: eth2, weight: -10 }]
 *       track_script: [chk_haproxy]
 *       notify_master: /etc/tierlb/master.sh
 *       notify: /etc/tierlb/notify.sh
 *   sync_groups:
 *     - { name: G1, group: [VI_1, VI_2] }
 * ```
 */

import { ipv4Schema as ipv4, ipv4OptionalPrefixSchema } from '../config/common-schema.js';
import { registerSection, type SectionContext } from '../config/registry.js';

/** a virtual address: no length means /32, as in keepalived */
const ipv4Prefix4 = ipv4OptionalPrefixSchema('[0-9]|[12]\\d|3[0-2]');
/** an IPv6 virtual address (no length: /128); the address itself is checked by the vrrp validator below */
const ipv6Prefix = {
  type: 'string',
  pattern: '^[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(/(12[0-8]|1[01][0-9]|[1-9]?[0-9]))?$',
} as const;
const ipv6 = { type: 'string', pattern: '^[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*$' } as const;
const vipAddr = { oneOf: [ipv4Prefix4, ipv6Prefix] } as const;
const ifname = { type: 'string', minLength: 1, maxLength: 15 } as const;
const command = { type: 'string', minLength: 1 } as const;
const weight = { type: 'integer', minimum: -253, maximum: 253 } as const;

const notifyProps = {
  notify_master: command,
  notify_backup: command,
  notify_fault: command,
  notify_stop: command,
  notify: command,
} as const;

export const vrrpInstanceSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'interface', 'virtual_router_id'],
  properties: {
    name: { type: 'string', minLength: 1 },
    interface: ifname,
    virtual_router_id: { type: 'integer', minimum: 1, maximum: 255 },
    priority: { type: 'integer', minimum: 1, maximum: 255, default: 100 },
    advert_int: { type: 'number', exclusiveMinimum: 0, maximum: 255, default: 1 },
    version: { enum: [2, 3], default: 2 },
    state: { enum: ['MASTER', 'BACKUP'] },
    nopreempt: { type: 'boolean', default: false },
    preempt_delay: { type: 'number', minimum: 0, maximum: 1000, default: 0 },
    authentication: {
      type: 'object',
      additionalProperties: false,
      required: ['auth_type', 'auth_pass'],
      properties: {
        auth_type: { const: 'PASS' },
        auth_pass: { type: 'string', minLength: 1, maxLength: 8 },
      },
    },
    virtual_ipaddress: {
      type: 'array',
      minItems: 1,
      items: {
        oneOf: [
          vipAddr,
          {
            type: 'object',
            additionalProperties: false,
            required: ['address'],
            properties: { address: vipAddr, dev: ifname, label: { type: 'string', maxLength: 15 } },
          },
        ],
      },
    },
    unicast_src_ip: { oneOf: [ipv4, ipv6] },
    unicast_peer: { type: 'array', items: ipv4 },
    track_interface: {
      type: 'array',
      items: {
        oneOf: [
          ifname,
          {
            type: 'object',
            additionalProperties: false,
            required: ['name'],
            properties: { name: ifname, weight },
          },
        ],
      },
    },
    track_script: {
      type: 'array',
      items: {
        oneOf: [
          { type: 'string', minLength: 1 },
          {
            type: 'object',
            additionalProperties: false,
            required: ['name'],
            properties: { name: { type: 'string', minLength: 1 }, weight },
          },
        ],
      },
    },
    garp_master_delay: { type: 'number', minimum: 0, default: 5 },
    garp_master_repeat: { type: 'integer', minimum: 1, maximum: 100, default: 5 },
    ...notifyProps,
  },
} as const;

export const vrrpScriptSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'script'],
  properties: {
    name: { type: 'string', minLength: 1 },
    script: command,
    interval: { type: 'number', exclusiveMinimum: 0, default: 1 },
    timeout: { type: 'number', exclusiveMinimum: 0 },
    weight,
    rise: { type: 'integer', minimum: 1, default: 1 },
    fall: { type: 'integer', minimum: 1, default: 1 },
  },
} as const;

export const vrrpSyncGroupSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'group'],
  properties: {
    name: { type: 'string', minLength: 1 },
    group: { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 } },
    ...notifyProps,
  },
} as const;

export const vrrpSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['instances'],
  properties: {
    instances: { type: 'array', items: vrrpInstanceSchema },
    scripts: { type: 'array', items: vrrpScriptSchema },
    sync_groups: { type: 'array', items: vrrpSyncGroupSchema },
  },
} as const;

const isV6 = (a: unknown) => typeof a === 'string' && a.includes(':');
const addrOf = (v: unknown) => (typeof v === 'string' ? v : (v as { address?: unknown } | null)?.address);

/** keepalived's rule: an instance is one family (its first virtual address's); VRRPv2 is IPv4 only. */
function validateVrrp(section: unknown, ctx: SectionContext): void {
  const instances = (section as { instances?: unknown } | null)?.instances;
  if (!Array.isArray(instances)) return;
  instances.forEach((inst: Record<string, unknown> | null, i) => {
    const vips = inst?.virtual_ipaddress;
    if (!Array.isArray(vips) || vips.length === 0) return;
    const first = addrOf(vips[0]);
    if (typeof first !== 'string') return;
    const six = isV6(first);
    const name = String(inst?.name ?? i);
    vips.forEach((v, j) => {
      const a = addrOf(v);
      if (typeof a === 'string' && isV6(a) !== six)
        ctx.report(
          ['instances', i, 'virtual_ipaddress', j],
          `(${name}): address family must match VRRP instance [${a}]`,
        );
    });
    if (six && inst?.version === 2)
      ctx.report(['instances', i, 'version'], `(${name}) VRRPv2 is IPv4 only: an IPv6 instance needs version 3`);
    if (typeof inst?.unicast_src_ip === 'string' && isV6(inst.unicast_src_ip) !== six)
      ctx.report(
        ['instances', i, 'unicast_src_ip'],
        `(${name}): address family must match VRRP instance [${inst.unicast_src_ip}]`,
      );
  });
}

/** The `vrrp` section: its schema and checks, registered with the loader by importing this module. */
registerSection({ name: 'vrrp', schema: vrrpSchema, validate: validateVrrp });
