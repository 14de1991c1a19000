/**
 * The lab's topology as data (pure): every namespace, link, address and MAC, the fwmark per listener port (allocated
 * as the cluster's), the processes, and the ecmp router's BIRD config. The nodes' own configs (director, listeners,
 * overlay) are derived from the lab's cluster description by src/cluster, in ./derive.ts. src/lab/lab.ts carries
 * it out.
 *
 *   front segment (bridge `front` in <prefix>-sw): clients, directors (VIP via VRRP), LB nodes (VIP on lo)
 *   underlay segment (bridge `under` in <prefix>-sw): LB nodes' eth1 and the hypervisors' eth0 (VTEPs)
 *   overlay VNI N: a bridge + VXLAN device (static fdb) on every LB node and hypervisor; backends hang off their
 *   hypervisor's bridge through a veth
 */
import { allocateFwmarks } from '../cluster/fwmark.js';
import { ipv4ToInt } from '../common/addr.js';
import type { LabConfig } from './config-schema.js';
import { LabError } from './errors.js';

export type Role = 'switch' | 'client' | 'director' | 'lb' | 'hypervisor' | 'backend' | 'router';

export interface LabLink {
  /** interface name inside the host's namespace */
  ifname: string;
  /** the other end: the switch port (in <prefix>-sw) or the hypervisor's port for a backend */
  peer: { host: string; ifname: string };
  /** address with prefix length */
  cidr?: string;
  mac: string;
  mtu?: number;
  /** client: the ecmp lab's segment between the clients and the router */
  segment: 'front' | 'underlay' | 'overlay' | 'client';
}

export interface LabHost {
  name: string;
  ns: string;
  role: Role;
  links: LabLink[];
  /** the host's address on its main segment (front, underlay for hypervisors, overlay for backends) */
  address?: string;
}

export interface LabProcess {
  /** unique id, also the pid/log file stem */
  id: string;
  host: string;
  /** a director in the VRRP lab also runs the VRRP instance and the connection sync */
  kind: 'director' | 'listeners' | 'backend' | 'router';
}

export interface LabPlan {
  cfg: LabConfig;
  prefix: string;
  dir: string;
  hosts: LabHost[];
  /** fwmark per listener (0x2710 + n) */
  marks: { listener: string; port: number; mark: number }[];
  processes: LabProcess[];
}

export const SWITCH = 'sw';

/** The listeners' fwmarks, allocated as the cluster's (src/cluster/fwmark.ts): from fwmark_base up, in order. */
export function labMarks(cfg: LabConfig): Record<string, number> {
  return allocateFwmarks(
    cfg.listeners.map((l) => ({ name: l.name })),
    {},
    cfg.fwmarkBase,
  );
}

const hex2 = (n: number) => n.toString(16).padStart(2, '0');

/** A stable, readable MAC per segment and address: 02:0S:<the four address bytes>. */
export function macFor(segment: 'front' | 'underlay' | 'overlay' | 'client', ip: string): string {
  const s = segment === 'front' ? 1 : segment === 'underlay' ? 2 : segment === 'overlay' ? 3 : 4;
  const n = ipv4ToInt(ip);
  return ['02', hex2(s), hex2((n >>> 24) & 255), hex2((n >>> 16) & 255), hex2((n >>> 8) & 255), hex2(n & 255)].join(
    ':',
  );
}

const plen = (cidr: string) => cidr.split('/')[1];

export function nsName(prefix: string, host: string): string {
  return `${prefix}-${host}`;
}

export function buildPlan(cfg: LabConfig): LabPlan {
  const p = cfg.prefix;
  const fl = plen(cfg.front.subnet);
  const ul = plen(cfg.underlay.subnet);
  const ol = plen(cfg.overlay.subnet);
  const hosts: LabHost[] = [{ name: SWITCH, ns: nsName(p, SWITCH), role: 'switch', links: [] }];
  const frontLink = (name: string, ip: string): LabLink => ({
    ifname: 'eth0',
    peer: { host: SWITCH, ifname: `f-${name}` },
    cidr: `${ip}/${fl}`,
    mac: macFor('front', ip),
    segment: 'front',
  });
  // with ecmp the clients are on their own segment, behind the router
  const ecmp = cfg.ecmp;
  const clientLink = (name: string, ip: string): LabLink => ({
    ifname: name === ecmp?.router.name ? 'eth1' : 'eth0',
    peer: { host: SWITCH, ifname: `c-${name}` },
    cidr: `${ip}/${plen(ecmp?.clientSubnet ?? '0.0.0.0/24')}`,
    mac: macFor('client', ip),
    segment: 'client',
  });
  if (ecmp)
    hosts.push({
      name: ecmp.router.name,
      ns: nsName(p, ecmp.router.name),
      role: 'router',
      address: ecmp.router.address,
      links: [
        frontLink(ecmp.router.name, ecmp.router.address),
        clientLink(ecmp.router.name, ecmp.router.clientAddress),
      ],
    });
  // clients and directors: one link on the front segment
  for (const [role, list] of [
    ['client', cfg.clients],
    ['director', cfg.directors],
  ] as const)
    for (const h of list)
      hosts.push({
        name: h.name,
        ns: nsName(p, h.name),
        role,
        address: h.address,
        links: [ecmp && role === 'client' ? clientLink(h.name, h.address) : frontLink(h.name, h.address)],
      });
  for (const l of cfg.lbNodes)
    hosts.push({
      name: l.name,
      ns: nsName(p, l.name),
      role: 'lb',
      address: l.address,
      links: [
        frontLink(l.name, l.address),
        {
          ifname: 'eth1',
          peer: { host: SWITCH, ifname: `u-${l.name}` },
          cidr: `${l.underlay}/${ul}`,
          mac: macFor('underlay', l.underlay),
          segment: 'underlay',
        },
      ],
    });
  for (const h of cfg.hypervisors)
    hosts.push({
      name: h.name,
      ns: nsName(p, h.name),
      role: 'hypervisor',
      address: h.underlay,
      links: [
        {
          ifname: 'eth0',
          peer: { host: SWITCH, ifname: `u-${h.name}` },
          cidr: `${h.underlay}/${ul}`,
          mac: macFor('underlay', h.underlay),
          segment: 'underlay',
        },
      ],
    });
  for (const b of cfg.backends)
    hosts.push({
      name: b.name,
      ns: nsName(p, b.name),
      role: 'backend',
      address: b.address,
      links: [
        {
          ifname: 'eth0',
          peer: { host: b.hypervisor, ifname: `b-${b.name}` },
          cidr: `${b.address}/${ol}`,
          mac: macFor('overlay', b.address),
          mtu: cfg.overlay.mtu,
          segment: 'overlay',
        },
      ],
    });
  const allocated = labMarks(cfg);
  const marks = cfg.listeners.map((l) => ({ listener: l.name, port: l.port, mark: allocated[l.name] }));
  const processes: LabProcess[] = [];
  for (const b of cfg.backends) processes.push({ id: `backend-${b.name}`, host: b.name, kind: 'backend' });
  for (const l of cfg.lbNodes) processes.push({ id: `listeners-${l.name}`, host: l.name, kind: 'listeners' });
  if (ecmp) processes.push({ id: `router-${ecmp.router.name}`, host: ecmp.router.name, kind: 'router' });
  for (const d of cfg.directors) processes.push({ id: `director-${d.name}`, host: d.name, kind: 'director' });
  return { cfg, prefix: p, dir: `${cfg.stateDir}/${p}`, hosts, marks, processes };
}

export function host(plan: LabPlan, name: string): LabHost {
  const h = plan.hosts.find((x) => x.name === name);
  if (!h)
    throw new LabError(
      'ELAB_NO_HOST',
      `no host '${name}' in the lab (hosts: ${plan.hosts.map((x) => x.name).join(', ')})`,
    );
  return h;
}

export const hostsOf = (plan: LabPlan, role: Role) => plan.hosts.filter((h) => h.role === role);

/** Every MAC the lab assigns → "host ifname", to name addresses in the trace. */
export function macNames(plan: LabPlan): Map<string, string> {
  const m = new Map<string, string>();
  for (const h of plan.hosts) for (const l of h.links) m.set(l.mac, `${h.name}`);
  for (const l of plan.cfg.lbNodes) m.set(macFor('overlay', l.overlay), `${l.name}`);
  return m;
}

// ---- the lab's files (generated configs are derived in ./derive.ts) ----

/** The ecmp router's BIRD config: ECMP (merge paths) into the kernel, one BGP session per director, BFD. */
export function routerBirdConf(plan: LabPlan): string {
  const e = plan.cfg.ecmp;
  if (!e) throw new LabError('ELAB_NOT_ECMP', 'not an ecmp lab: add lab.ecmp to the config (see config/lab-ecmp.yaml)');
  const out = [
    `# generated by tierlb lab for ${plan.prefix}: the router; ECMP over the directors that announce ${plan.cfg.vip}`,
    `router id ${e.router.address};`,
    'log stderr { info, remote, warning, error, auth, fatal, bug };',
    'protocol device { scan time 10; }',
    'protocol kernel { ipv4 { import none; export all; }; merge paths on; }',
    'protocol bfd { interface "*" { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; }; }',
  ];
  for (const d of plan.cfg.directors)
    out.push(
      `protocol bgp ${d.name} {`,
      `  local ${e.router.address} as ${e.routerAs};`,
      `  neighbor ${d.address} as ${e.localAs};`,
      `  hold time ${e.holdTime};`,
      '  connect delay time 1;',
      '  connect retry time 1;',
      '  error wait time 1, 2;',
      ...(e.bfd ? ['  bfd on;'] : []),
      '  ipv4 { import all; export none; };',
      '}',
    );
  return `${out.join('\n')}\n`;
}

export function routerSocket(plan: LabPlan): string {
  return `${plan.dir}/router-bird.ctl`;
}

export function listenersSocket(plan: LabPlan, lb: string): string {
  return `${plan.dir}/${lb}-listeners.sock`;
}

export function directorSocket(plan: LabPlan, dir: string): string {
  return `${plan.dir}/${dir}-director.sock`;
}

/** The director that should hold the VIP: the highest priority (the first on a tie). */
export function masterDirector(plan: LabPlan): string {
  let best = plan.cfg.directors[0];
  for (const d of plan.cfg.directors) if (d.priority > best.priority) best = d;
  return best.name;
}
