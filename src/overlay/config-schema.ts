/**
 * JSON schema of the `overlay` config section (owned by src/overlay): the VXLAN segments this host takes part in.
 * Each network is one VNI: a bridge, a VXLAN device enslaved to it (nolearning, no multicast group, static fdb),
 * the remote VTEPs (flooding entries `00:00:00:00:00:00 dst REMOTE`) and static per-MAC entries. Settings at the top
 * (`local`, `dev`, `dstport`, `mtu`) are the defaults of every network.
 *
 * ```yaml
 * overlay:
 *   local: 10.200.0.1          # this host's underlay (VTEP) address
 *   networks:
 *     - vni: 100
 *       bridge: br100          # default br<VNI>
 *       vxlan: vx100           # default vx<VNI>
 *       remotes: [10.200.0.2, 10.200.0.3]
 *       fdb:
 *         - { mac: "02:00:00:64:00:0b", dst: 10.200.0.2 }
 *       addresses: [172.16.100.1/24]   # on the bridge (optional)
 *       mac: "02:00:00:64:00:01"       # the bridge's MAC (optional; keeps it stable)
 *       ports: [vb1]                   # existing links to enslave to the bridge (optional)
 * ```
 */
import { cidr4Schema, portSchema as dstport, ipv4Schema as ipv4 } from '../config/common-schema.js';
import { registerSection } from '../config/registry.js';
import { overlayProblems } from './semantics.js';

const cidr4 = cidr4Schema('[0-9]|[12]\\d|3[0-2]');
const mac = { type: 'string', pattern: '^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$' } as const;
/** Linux interface names: at most 15 characters, no '/', ':' or whitespace. */
const ifname = { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,15}$' } as const;
const mtu = { type: 'integer', minimum: 68, maximum: 65535 } as const;

export const overlayNetworkSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['vni'],
  properties: {
    vni: { type: 'integer', minimum: 1, maximum: 16777215 },
    bridge: ifname,
    vxlan: ifname,
    local: ipv4,
    dev: ifname,
    dstport,
    mtu,
    remotes: { type: 'array', items: ipv4, uniqueItems: true },
    fdb: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['mac', 'dst'],
        properties: { mac, dst: ipv4 },
      },
    },
    addresses: { type: 'array', items: cidr4, uniqueItems: true },
    mac,
    ports: { type: 'array', items: ifname, uniqueItems: true },
  },
} as const;

export const overlaySchema = {
  type: 'object',
  additionalProperties: false,
  required: ['networks'],
  properties: {
    local: ipv4,
    dev: ifname,
    dstport,
    mtu,
    networks: { type: 'array', items: overlayNetworkSchema },
  },
} as const;

// The `overlay` section, registered with the loader by importing this module: the checks beyond the schema are
// reported at file:line:col with everything else.
registerSection({
  name: 'overlay',
  schema: overlaySchema,
  validate: (section, ctx) => {
    for (const p of overlayProblems(section)) ctx.report(p.path, p.message);
  },
});
