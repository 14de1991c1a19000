/**
 * JSON schema (and TypeScript shape) of the `lab` config section, owned by src/lab: the namespace lab that reproduces
 * the flow of source article 004 on one machine (client → VIP on the VRRP master director → DR to an LB node →
 * listener → VXLAN overlay → backend; the LB node answers the client directly). config/lab.yaml documents every key.
 * Cross-field rules (addresses inside their subnets, unique names and addresses, backends on known hypervisors,
 * listener ports unique) are checked by the validator registered at the bottom.
 */

import { ipv4ToInt, prefixToMask4 } from '../common/addr.js';
import { cidr4Schema, ipv4Schema as ipv4, portSchema as port } from '../config/common-schema.js';
import { registerSection, type SectionContext } from '../config/registry.js';

/** the lab's subnets: /8 to /30 */
const cidr4 = cidr4Schema('[8-9]|[12]\\d|30');
/** host names become namespace names `<prefix>-<name>` */
const hostName = { type: 'string', pattern: '^[a-z][a-z0-9]{0,11}$' } as const;

const named = (extra: Record<string, unknown>, required: string[]) =>
  ({
    type: 'object',
    additionalProperties: false,
    required: ['name', ...required],
    properties: { name: hostName, ...extra },
  }) as const;

export const labSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    prefix: { type: 'string', pattern: '^[a-z][a-z0-9]{1,9}$' },
    state_dir: { type: 'string', minLength: 1 },
    vip: ipv4,
    front: {
      type: 'object',
      additionalProperties: false,
      required: ['subnet'],
      properties: { subnet: cidr4 },
    },
    clients: { type: 'array', minItems: 1, items: named({ address: ipv4 }, ['address']) },
    directors: {
      type: 'array',
      minItems: 1,
      /** two with VRRP; up to four with ecmp (checked below) */
      maxItems: 4,
      items: named({ address: ipv4, priority: { type: 'integer', minimum: 1, maximum: 254 } }, ['address']),
    },
    vrrp: {
      type: 'object',
      additionalProperties: false,
      properties: {
        enabled: { type: 'boolean' },
        virtual_router_id: { type: 'integer', minimum: 1, maximum: 255 },
        advert_int: { type: 'number', exclusiveMinimum: 0, maximum: 255 },
        auth_pass: { type: 'string', minLength: 1, maxLength: 8 },
        /** the directors' connection sync, master on the VRRP master (syncid = virtual_router_id) */
        sync: { type: 'boolean' },
      },
    },
    scheduler: { type: 'string', minLength: 1 },
    fwmark_base: { type: 'integer', minimum: 1, maximum: 0x543fffff },
    lb_nodes: {
      type: 'array',
      minItems: 1,
      maxItems: 16,
      items: named({ address: ipv4, underlay: ipv4, overlay: ipv4, weight: { type: 'integer', minimum: 0 } }, [
        'address',
        'underlay',
        'overlay',
      ]),
    },
    underlay: {
      type: 'object',
      additionalProperties: false,
      required: ['subnet'],
      properties: { subnet: cidr4 },
    },
    hypervisors: { type: 'array', minItems: 1, items: named({ underlay: ipv4 }, ['underlay']) },
    overlay: {
      type: 'object',
      additionalProperties: false,
      required: ['vni', 'subnet'],
      properties: {
        vni: { type: 'integer', minimum: 1, maximum: 16777215 },
        subnet: cidr4,
        mtu: { type: 'integer', minimum: 576, maximum: 9000 },
        dstport: port,
      },
    },
    backends: {
      type: 'array',
      minItems: 1,
      items: named({ hypervisor: hostName, address: ipv4 }, ['hypervisor', 'address']),
    },
    listeners: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'port', 'mode', 'backend_port'],
        properties: {
          name: { type: 'string', pattern: '^[A-Za-z0-9_.-]+$' },
          port,
          mode: { enum: ['http', 'tcp'] },
          backend_port: port,
          balance: { type: 'string' },
        },
      },
    },
    workers: { type: 'integer', minimum: 1, maximum: 16 },
    wait_seconds: { type: 'integer', minimum: 1, maximum: 600 },
    /**
     * ECMP instead of VRRP: the clients sit behind a router namespace running BIRD (kernel multipath, L4 hash); every
     * director announces the VIP to it over BGP (the `bgp` section of its generated config)
     */
    ecmp: {
      type: 'object',
      additionalProperties: false,
      required: ['router', 'client_subnet'],
      properties: {
        router: named({ address: ipv4, client_address: ipv4 }, ['address', 'client_address']),
        client_subnet: cidr4,
        local_as: { type: 'integer', minimum: 1, maximum: 4294967295 },
        router_as: { type: 'integer', minimum: 1, maximum: 4294967295 },
        bfd: { type: 'boolean' },
        hold_time: { type: 'integer', minimum: 3, maximum: 65535 },
      },
    },
  },
} as const;

export interface LabEcmpSection {
  router: { name: string; address: string; client_address: string };
  client_subnet: string;
  local_as?: number;
  router_as?: number;
  bfd?: boolean;
  hold_time?: number;
}

export interface LabEcmp {
  router: { name: string; address: string; clientAddress: string };
  clientSubnet: string;
  localAs: number;
  routerAs: number;
  bfd: boolean;
  holdTime: number;
}

export interface LabHostConfig {
  name: string;
  address: string;
}

/** The raw `lab` section (what the YAML holds). */
export interface LabSection {
  prefix?: string;
  state_dir?: string;
  vip?: string;
  front?: { subnet: string };
  clients?: LabHostConfig[];
  directors?: (LabHostConfig & { priority?: number })[];
  vrrp?: { enabled?: boolean; virtual_router_id?: number; advert_int?: number; auth_pass?: string; sync?: boolean };
  scheduler?: string;
  fwmark_base?: number;
  lb_nodes?: (LabHostConfig & { underlay: string; overlay: string; weight?: number })[];
  underlay?: { subnet: string };
  hypervisors?: { name: string; underlay: string }[];
  overlay?: { vni: number; subnet: string; mtu?: number; dstport?: number };
  backends?: { name: string; hypervisor: string; address: string }[];
  listeners?: { name: string; port: number; mode: 'http' | 'tcp'; backend_port: number; balance?: string }[];
  workers?: number;
  wait_seconds?: number;
  ecmp?: LabEcmpSection;
}

/** Fully defaulted lab config (src/lab/plan.ts turns it into the topology). */
export interface LabConfig {
  prefix: string;
  stateDir: string;
  vip: string;
  front: { subnet: string };
  clients: LabHostConfig[];
  directors: (LabHostConfig & { priority: number })[];
  vrrp: { enabled: boolean; virtualRouterId: number; advertInt: number; authPass: string; sync: boolean };
  scheduler: string;
  fwmarkBase: number;
  lbNodes: (LabHostConfig & { underlay: string; overlay: string; weight: number })[];
  underlay: { subnet: string };
  hypervisors: { name: string; underlay: string }[];
  overlay: { vni: number; subnet: string; mtu: number; dstport: number };
  backends: { name: string; hypervisor: string; address: string }[];
  listeners: { name: string; port: number; mode: 'http' | 'tcp'; backendPort: number; balance: string }[];
  workers: number;
  waitSeconds: number;
  /** absent: VRRP (or a static VIP) */
  ecmp?: LabEcmp;
}

/** The shipped defaults: the same values as config/lab.yaml, so `tierlb lab up` works without a file. */
export const LAB_DEFAULTS: LabConfig = {
  prefix: 'tlab',
  stateDir: '/run/tierlb-lab',
  vip: '10.77.1.100',
  front: { subnet: '10.77.1.0/24' },
  clients: [{ name: 'client1', address: '10.77.1.10' }],
  directors: [
    { name: 'dir1', address: '10.77.1.2', priority: 150 },
    { name: 'dir2', address: '10.77.1.3', priority: 100 },
  ],
  vrrp: { enabled: true, virtualRouterId: 51, advertInt: 1, authPass: 'tierlb', sync: true },
  scheduler: 'rr',
  fwmarkBase: 0x2710,
  lbNodes: [
    { name: 'lb1', address: '10.77.1.21', underlay: '10.200.0.21', overlay: '172.16.100.1', weight: 1 },
    { name: 'lb2', address: '10.77.1.22', underlay: '10.200.0.22', overlay: '172.16.100.2', weight: 1 },
    { name: 'lb3', address: '10.77.1.23', underlay: '10.200.0.23', overlay: '172.16.100.3', weight: 1 },
  ],
  underlay: { subnet: '10.200.0.0/24' },
  hypervisors: [
    { name: 'hv1', underlay: '10.200.0.1' },
    { name: 'hv2', underlay: '10.200.0.2' },
  ],
  overlay: { vni: 100, subnet: '172.16.100.0/24', mtu: 1450, dstport: 4789 },
  backends: [
    { name: 'be1', hypervisor: 'hv1', address: '172.16.100.11' },
    { name: 'be2', hypervisor: 'hv1', address: '172.16.100.12' },
    { name: 'be3', hypervisor: 'hv2', address: '172.16.100.13' },
  ],
  listeners: [
    { name: 'web', port: 80, mode: 'http', backendPort: 8080, balance: 'roundrobin' },
    { name: 'tcp', port: 7000, mode: 'tcp', backendPort: 7000, balance: 'roundrobin' },
  ],
  workers: 1,
  waitSeconds: 90,
};

/** The raw section with every default filled in (the section is assumed schema-valid). */
export function labFromSection(s: LabSection | undefined): LabConfig {
  const d = LAB_DEFAULTS;
  if (!s) return structuredClone(d);
  return {
    prefix: s.prefix ?? d.prefix,
    stateDir: s.state_dir ?? d.stateDir,
    vip: s.vip ?? d.vip,
    front: s.front ?? d.front,
    clients: s.clients ?? d.clients,
    directors: s.directors
      ? s.directors.map((x, i) => ({ ...x, priority: x.priority ?? (i === 0 ? 150 : 100) }))
      : d.directors,
    vrrp: {
      enabled: s.vrrp?.enabled ?? d.vrrp.enabled,
      virtualRouterId: s.vrrp?.virtual_router_id ?? d.vrrp.virtualRouterId,
      advertInt: s.vrrp?.advert_int ?? d.vrrp.advertInt,
      authPass: s.vrrp?.auth_pass ?? d.vrrp.authPass,
      sync: s.vrrp?.sync ?? d.vrrp.sync,
    },
    scheduler: s.scheduler ?? d.scheduler,
    fwmarkBase: s.fwmark_base ?? d.fwmarkBase,
    lbNodes: s.lb_nodes ? s.lb_nodes.map((x) => ({ ...x, weight: x.weight ?? 1 })) : d.lbNodes,
    underlay: s.underlay ?? d.underlay,
    hypervisors: s.hypervisors ?? d.hypervisors,
    overlay: {
      vni: s.overlay?.vni ?? d.overlay.vni,
      subnet: s.overlay?.subnet ?? d.overlay.subnet,
      mtu: s.overlay?.mtu ?? d.overlay.mtu,
      dstport: s.overlay?.dstport ?? d.overlay.dstport,
    },
    backends: s.backends ?? d.backends,
    listeners: s.listeners
      ? s.listeners.map((l) => ({
          name: l.name,
          port: l.port,
          mode: l.mode,
          backendPort: l.backend_port,
          balance: l.balance ?? 'roundrobin',
        }))
      : d.listeners,
    workers: s.workers ?? d.workers,
    waitSeconds: s.wait_seconds ?? d.waitSeconds,
    ...(s.ecmp
      ? {
          ecmp: {
            router: {
              name: s.ecmp.router.name,
              address: s.ecmp.router.address,
              clientAddress: s.ecmp.router.client_address,
            },
            clientSubnet: s.ecmp.client_subnet,
            localAs: s.ecmp.local_as ?? 65001,
            routerAs: s.ecmp.router_as ?? 65000,
            bfd: s.ecmp.bfd ?? true,
            holdTime: s.ecmp.hold_time ?? 3,
          },
        }
      : {}),
  };
}

function inSubnet(ip: string, cidr: string): boolean {
  const [net, len] = cidr.split('/');
  const mask = prefixToMask4(Number(len));
  return (ipv4ToInt(ip) & mask) >>> 0 === (ipv4ToInt(net) & mask) >>> 0;
}

// ---- semantic checks (registered with the config loader) ----

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isIp = (v: unknown): v is string => typeof v === 'string' && /^\d{1,3}(\.\d{1,3}){3}$/.test(v);

/** Every cross-field problem of a lab section as [path, message] (pure; paths relative to the section). */
export function labProblems(section: unknown): [(string | number)[], string][] {
  const out: [(string | number)[], string][] = [];
  if (!isObj(section)) return out;
  const s = section as LabSection & Record<string, unknown>;
  const d = LAB_DEFAULTS;
  const front = isObj(s.front) && typeof s.front.subnet === 'string' ? s.front.subnet : d.front.subnet;
  const under = isObj(s.underlay) && typeof s.underlay.subnet === 'string' ? s.underlay.subnet : d.underlay.subnet;
  const over = isObj(s.overlay) && typeof s.overlay.subnet === 'string' ? s.overlay.subnet : d.overlay.subnet;
  const names = new Map<string, string>();
  const addrs = new Map<string, string>();
  const host = (list: string, key: 'address' | 'underlay' | 'overlay', subnet: string, subnetName: string) => {
    const arr = s[list];
    if (!Array.isArray(arr)) return;
    arr.forEach((h, i) => {
      if (!isObj(h)) return;
      if (typeof h.name === 'string' && key === 'address') {
        const seen = names.get(h.name);
        if (seen) out.push([[list, i, 'name'], `host name '${h.name}' is already used by ${seen}`]);
        else names.set(h.name, `${list}[${i}]`);
      }
      const a = h[key];
      if (!isIp(a)) return;
      if (!inSubnet(a, subnet)) out.push([[list, i, key], `${a} is not in the ${subnetName} ${subnet}`]);
      const seen = addrs.get(a);
      if (seen) out.push([[list, i, key], `address ${a} is already used by ${seen}`]);
      else addrs.set(a, `${list}[${i}]`);
    });
  };
  const ecmp = isObj(s.ecmp) ? s.ecmp : undefined;
  const clientNet = ecmp && typeof ecmp.client_subnet === 'string' ? ecmp.client_subnet : undefined;
  if (clientNet) host('clients', 'address', clientNet, 'ecmp client subnet');
  else host('clients', 'address', front, 'front subnet');
  if (!ecmp && Array.isArray(s.directors) && s.directors.length > 2)
    out.push([['directors'], 'more than two directors need ecmp (VRRP runs one master and one backup)']);
  if (ecmp && isObj(ecmp.router)) {
    const r = ecmp.router;
    if (typeof r.name === 'string') names.set(r.name, 'ecmp.router');
    if (isIp(r.address)) {
      if (!inSubnet(r.address, front))
        out.push([['ecmp', 'router', 'address'], `${r.address} is not in the front subnet ${front}`]);
      addrs.set(r.address, 'ecmp.router');
    }
    if (isIp(r.client_address) && clientNet && !inSubnet(r.client_address, clientNet))
      out.push([['ecmp', 'router', 'client_address'], `${r.client_address} is not in the client subnet ${clientNet}`]);
  }
  host('directors', 'address', front, 'front subnet');
  host('lb_nodes', 'address', front, 'front subnet');
  host('lb_nodes', 'underlay', under, 'underlay subnet');
  host('lb_nodes', 'overlay', over, 'overlay subnet');
  if (Array.isArray(s.hypervisors))
    s.hypervisors.forEach((h, i) => {
      if (!isObj(h)) return;
      if (typeof h.name === 'string') {
        const seen = names.get(h.name);
        if (seen) out.push([['hypervisors', i, 'name'], `host name '${h.name}' is already used by ${seen}`]);
        else names.set(h.name, `hypervisors[${i}]`);
      }
      if (isIp(h.underlay)) {
        if (!inSubnet(h.underlay, under))
          out.push([['hypervisors', i, 'underlay'], `${h.underlay} is not in the underlay subnet ${under}`]);
        const seen = addrs.get(h.underlay);
        if (seen) out.push([['hypervisors', i, 'underlay'], `address ${h.underlay} is already used by ${seen}`]);
        else addrs.set(h.underlay, `hypervisors[${i}]`);
      }
    });
  const hvNames = new Set(
    (Array.isArray(s.hypervisors) ? s.hypervisors : d.hypervisors).map((h) => (isObj(h) ? h.name : undefined)),
  );
  if (Array.isArray(s.backends))
    s.backends.forEach((b, i) => {
      if (!isObj(b)) return;
      if (typeof b.name === 'string') {
        const seen = names.get(b.name);
        if (seen) out.push([['backends', i, 'name'], `host name '${b.name}' is already used by ${seen}`]);
        else names.set(b.name, `backends[${i}]`);
      }
      if (typeof b.hypervisor === 'string' && !hvNames.has(b.hypervisor))
        out.push([['backends', i, 'hypervisor'], `no hypervisor named '${b.hypervisor}'`]);
      if (isIp(b.address)) {
        if (!inSubnet(b.address, over))
          out.push([['backends', i, 'address'], `${b.address} is not in the overlay subnet ${over}`]);
        const seen = addrs.get(b.address);
        if (seen) out.push([['backends', i, 'address'], `address ${b.address} is already used by ${seen}`]);
        else addrs.set(b.address, `backends[${i}]`);
      }
    });
  if (isIp(s.vip)) {
    // with ecmp the VIP is routed (announced over BGP): any address outside the lab's segments
    if (!ecmp && !inSubnet(s.vip, front)) out.push([['vip'], `the VIP ${s.vip} is not in the front subnet ${front}`]);
    const seen = addrs.get(s.vip);
    if (seen) out.push([['vip'], `the VIP ${s.vip} is already the address of ${seen}`]);
  }
  if (Array.isArray(s.listeners)) {
    const ports = new Map<number, number>();
    const lnames = new Set<string>();
    s.listeners.forEach((l, i) => {
      if (!isObj(l)) return;
      if (typeof l.port === 'number') {
        if (ports.has(l.port))
          out.push([['listeners', i, 'port'], `port ${l.port} is already used by listeners[${ports.get(l.port)}]`]);
        else ports.set(l.port, i);
      }
      if (typeof l.name === 'string') {
        if (lnames.has(l.name)) out.push([['listeners', i, 'name'], `listener '${l.name}' is defined twice`]);
        lnames.add(l.name);
      }
    });
  }
  return out;
}

function validateLab(section: unknown, ctx: SectionContext): void {
  for (const [path, msg] of labProblems(section)) ctx.report(path, msg);
}

/** The `lab` section: its schema and checks, registered with the loader by importing this module. */
registerSection({ name: 'lab', schema: labSchema, validate: validateLab });
