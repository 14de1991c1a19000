/**
 * cluster section → one node's own tierlb config (pure): a director gets `director` (one fwmark service per
 * listener, marked by VIP:port, over the LB nodes by DR with TCP checks of the listener's VIP:port, the cluster's
 * scheduler) and `bgp` (the cluster's settings, its own address as router id and session source, the VIPs); an LB
 * node gets `listeners` (one per listener, bound to VIP:port, over the backends) and `overlay` (its VTEP, the other
 * LB nodes and the hypervisors as remotes, its overlay address).
 */
import { stringify } from 'yaml';
import type { ClusterConfig } from './config-schema.js';
import { ClusterError } from './errors.js';

export type NodeRole = 'director' | 'lb_node' | 'hypervisor';

export interface RenderedNode {
  role: NodeRole;
  config: Record<string, unknown>;
}

const plen = (cidr: string) => Number(cidr.split('/')[1]);

export function nodeRole(c: ClusterConfig, node: string): NodeRole | undefined {
  if (c.directors.some((d) => d.name === node)) return 'director';
  if (c.lb_nodes.some((n) => n.name === node)) return 'lb_node';
  if (c.hypervisors?.some((h) => h.name === node)) return 'hypervisor';
  return undefined;
}

/**
 * `marks`: allocateFwmarks' result for the cluster's listeners. Throws when the node is not a director, LB node or
 * hypervisor.
 */
export function renderNode(c: ClusterConfig, node: string, marks: Record<string, number>): RenderedNode {
  const vip = (name: string) => c.vips.find((v) => v.name === name)?.address as string;
  const director = c.directors.find((d) => d.name === node);
  if (director) {
    const services = c.listeners.map((l) => ({
      name: l.name,
      fwmark: marks[l.name],
      scheduler: c.scheduler ?? 'mh',
      ...(c.sched_flags?.length ? { sched_flags: c.sched_flags } : {}),
      match: [{ vip: vip(l.vip), port: l.port }],
      real_servers: c.lb_nodes.map((n) => ({
        address: n.address,
        ...(n.weight !== undefined ? { weight: n.weight } : {}),
        // the listener is bound to VIP:port on the LB node: the probe goes there, by the LB node's mark route (DR)
        checks: [{ type: 'TCP_CHECK', connect_ip: vip(l.vip), connect_port: l.port }],
      })),
    }));
    const config: Record<string, unknown> = { director: { services } };
    if (c.bgp) {
      const used = new Set(c.listeners.map((l) => l.vip));
      config.bgp = {
        router_id: director.address,
        local_as: c.bgp.local_as,
        local_address: director.address,
        ...(c.bgp.hold_time !== undefined ? { hold_time: c.bgp.hold_time } : {}),
        ...(c.bgp.keepalive_time !== undefined ? { keepalive_time: c.bgp.keepalive_time } : {}),
        ...(c.bgp.communities?.length ? { communities: c.bgp.communities } : {}),
        neighbors: c.bgp.neighbors,
        vips: c.vips
          .filter((v) => used.has(v.name))
          .map((v) => ({ address: v.address, ...(v.communities?.length ? { communities: v.communities } : {}) })),
        ...(c.bgp.withdraw_delay_ms !== undefined ? { withdraw_delay_ms: c.bgp.withdraw_delay_ms } : {}),
      };
    }
    return { role: 'director', config };
  }
  const hv = c.hypervisors?.find((h) => h.name === node);
  if (hv) {
    const config: Record<string, unknown> = {};
    if (c.overlay) config.overlay = overlayOf(c, hv.underlay);
    return { role: 'hypervisor', config };
  }
  const lb = c.lb_nodes.find((n) => n.name === node);
  if (!lb) {
    const known = [...c.directors, ...c.lb_nodes, ...(c.hypervisors ?? [])].map((n) => n.name).join(', ');
    throw new ClusterError(
      'ECLUSTER_NO_NODE',
      `no director or LB node named '${node}' in the cluster, nor a hypervisor (known: ${known})`,
    );
  }
  const listen = c.listeners.map((l) => ({
    name: l.name,
    bind: `${vip(l.vip)}:${l.port}`,
    mode: l.mode ?? 'tcp',
    balance: l.balance ?? 'roundrobin',
    servers: (c.backends ?? []).map((b) => ({
      name: b.name,
      address: `${b.address}:${l.backend_port ?? l.port}`,
      ...(b.weight !== undefined ? { weight: b.weight } : {}),
    })),
  }));
  const config: Record<string, unknown> = { listeners: { listen } };
  if (c.overlay && lb.underlay && lb.overlay) config.overlay = overlayOf(c, lb.underlay, lb.overlay);
  return { role: 'lb_node', config };
}

/**
 * The `overlay` section of a VTEP (an LB node or a hypervisor) at underlay address `local`: one network, every other
 * VTEP (LB nodes, then hypervisors) a remote; an LB node also gets its overlay address.
 */
function overlayOf(c: ClusterConfig, local: string, overlayAddress?: string): Record<string, unknown> {
  const ov = c.overlay as NonNullable<ClusterConfig['overlay']>;
  const remotes = [
    ...c.lb_nodes.filter((n) => n.underlay).map((n) => n.underlay as string),
    ...(c.hypervisors ?? []).map((h) => h.underlay),
  ].filter((u) => u !== local);
  return {
    local,
    networks: [
      {
        vni: ov.vni,
        ...(ov.mtu !== undefined ? { mtu: ov.mtu } : {}),
        ...(ov.dstport !== undefined ? { dstport: ov.dstport } : {}),
        remotes,
        ...(overlayAddress ? { addresses: [`${overlayAddress}/${plen(ov.subnet)}`] } : {}),
      },
    ],
  };
}

export const ROLE_NAMES: Record<NodeRole, string> = {
  director: 'director',
  lb_node: 'LB node',
  hypervisor: 'hypervisor',
};

/** The node's config as YAML, with a header saying where it came from. */
export function renderNodeYaml(c: ClusterConfig, node: string, marks: Record<string, number>, from: string): string {
  const r = renderNode(c, node, marks);
  const head = `# ${node} (${ROLE_NAMES[r.role]}): rendered from ${from} by \`tierlb cluster render --node ${node}\`; do not edit\n`;
  return head + stringify(r.config, { lineWidth: 0, aliasDuplicateObjects: false });
}
