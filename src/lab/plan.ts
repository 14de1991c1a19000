/**
 * The lab's topology as data (pure): every namespace, link, address and MAC, the fwmark per listener port, and the
 * configs the lab generates for the director (whose fwmark services' `match` makes the director install the mark
 * rules in its own chain), the listeners, the overlay and VRRP. src/lab/lab.ts carries it out.
 *
 *   front segment (bridge `front` in <prefix>-sw): clients, directors (VIP via VRRP), LB nodes (VIP on lo)
 *   underlay segment (bridge `under` in <prefix>-sw): LB nodes' eth1 and the hypervisors' eth0 (VTEPs)
 *   overlay VNI N: a bridge + VXLAN device (static fdb) on every LB node and hypervisor; backends hang off their
 *   hypervisor's bridge through a veth
 */
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
  kind: 'director' | 'vrrp' | 'listeners' | 'backend' | 'router';
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
  const marks = cfg.listeners.map((l, i) => ({ listener: l.name, port: l.port, mark: cfg.fwmarkBase + i }));
  const processes: LabProcess[] = [];
  for (const b of cfg.backends) processes.push({ id: `backend-${b.name}`, host: b.name, kind: 'backend' });
  for (const l of cfg.lbNodes) processes.push({ id: `listeners-${l.name}`, host: l.name, kind: 'listeners' });
  if (ecmp) processes.push({ id: `router-${ecmp.router.name}`, host: ecmp.router.name, kind: 'router' });
  for (const d of cfg.directors) processes.push({ id: `director-${d.name}`, host: d.name, kind: 'director' });
  if (cfg.vrrp.enabled && !ecmp)
    for (const d of cfg.directors) processes.push({ id: `vrrp-${d.name}`, host: d.name, kind: 'vrrp' });
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

// ---- generated configs (YAML text, read by the other tierlb commands) ----

/**
 * `director:` — one fwmark service per listener port (its `match` is the VIP port: the director marks it), DR to
 * every LB node.
 */
export function directorYaml(plan: LabPlan, dir?: string): string {
  const out = [
    `# generated by tierlb lab for ${plan.prefix}: one fwmark service per listener port, DR to the LB nodes`,
    'director:',
    '  services:',
  ];
  for (const m of plan.marks) {
    out.push(`    - name: ${m.listener}`, `      fwmark: ${m.mark}`, `      scheduler: ${plan.cfg.scheduler}`);
    // ecmp + mh: hash the source port too, so one client's flows spread over the LB nodes
    if (plan.cfg.ecmp && plan.cfg.scheduler === 'mh') out.push('      sched_flags: [mh-port]');
    out.push(`      match: [{ vip: ${plan.cfg.vip}, port: ${m.port}, protocol: tcp }]`);
    out.push('      real_servers:');
    for (const l of plan.cfg.lbNodes)
      out.push(`        - { address: ${l.address}, method: route, weight: ${l.weight} }`);
  }
  const e = plan.cfg.ecmp;
  const d = plan.cfg.directors.find((x) => x.name === dir);
  if (e && d)
    out.push(
      '# ecmp: this director announces the VIP to the router while it can serve it (sloppy_tcp defaults on)',
      'bgp:',
      `  local_as: ${e.localAs}`,
      `  local_address: ${d.address}`,
      `  hold_time: ${e.holdTime}`,
      `  keepalive_time: ${Math.max(1, Math.floor(e.holdTime / 3))}`,
      `  neighbors: [{ address: ${e.router.address}, as: ${e.routerAs}, bfd: ${e.bfd} }]`,
      `  vips: [{ address: ${plan.cfg.vip} }]`,
      '  withdraw_delay_ms: 1000',
    );
  return `${out.join('\n')}\n`;
}

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

/** `listeners:` of one LB node — bound to the VIP ports, servers = the backends over the overlay. */
export function listenersYaml(plan: LabPlan, lb: string): string {
  const c = plan.cfg;
  const out = [
    `# generated by tierlb lab for ${plan.prefix}: the listeners of ${lb}`,
    'listeners:',
    `  workers: ${c.workers}`,
    `  control: ${listenersSocket(plan, lb)}`,
    '  stats: { bind: 127.0.0.1:9101 }',
    '  defaults:',
    '    timeout: { connect: 2s, client: 30s, server: 30s, check: 1s }',
    '    retries: 2',
    '    redispatch: true',
    '  listen:',
  ];
  for (const l of c.listeners) {
    out.push(
      `    - name: ${l.name}`,
      `      bind: ${c.vip}:${l.port}`,
      `      mode: ${l.mode}`,
      `      balance: ${l.balance}`,
    );
    if (l.mode === 'http') {
      out.push('      forwardfor: true');
      out.push(
        '      check: { type: http, method: GET, uri: /health, expect: { status: 200 }, inter: 1s, rise: 1, fall: 2 }',
      );
    } else out.push('      check: { type: tcp, inter: 1s, rise: 1, fall: 2 }');
    out.push('      servers:');
    for (const b of c.backends) out.push(`        - { name: ${b.name}, address: ${b.address}:${l.backendPort} }`);
  }
  return `${out.join('\n')}\n`;
}

/** `overlay:` of one VTEP (LB node or hypervisor): VNI bridge, VXLAN device, flooding + static fdb. */
export function overlayYaml(plan: LabPlan, name: string): string {
  const c = plan.cfg;
  const lb = c.lbNodes.find((l) => l.name === name);
  const hv = c.hypervisors.find((h) => h.name === name);
  if (!lb && !hv) throw new LabError('ELAB_NO_HOST', `${name} is not a VTEP (an LB node or a hypervisor)`);
  const local = lb ? lb.underlay : hv!.underlay;
  const vteps = [...c.lbNodes.map((l) => l.underlay), ...c.hypervisors.map((h) => h.underlay)];
  const vtepOf = new Map<string, string>(); // overlay MAC → VTEP
  for (const l of c.lbNodes) vtepOf.set(macFor('overlay', l.overlay), l.underlay);
  for (const b of c.backends) {
    const h = c.hypervisors.find((x) => x.name === b.hypervisor)!;
    vtepOf.set(macFor('overlay', b.address), h.underlay);
  }
  const ol = plen(c.overlay.subnet);
  const out = [
    `# generated by tierlb lab for ${plan.prefix}: the overlay of ${name}`,
    'overlay:',
    `  local: ${local}`,
    `  dev: ${lb ? 'eth1' : 'eth0'}`,
    `  dstport: ${c.overlay.dstport}`,
    `  mtu: ${c.overlay.mtu}`,
    '  networks:',
    `    - vni: ${c.overlay.vni}`,
    `      bridge: br${c.overlay.vni}`,
    `      vxlan: vx${c.overlay.vni}`,
    `      remotes: [${vteps.filter((v) => v !== local).join(', ')}]`,
    '      fdb:',
  ];
  for (const [mac, dst] of vtepOf) if (dst !== local) out.push(`        - { mac: "${mac}", dst: ${dst} }`);
  if (lb) out.push(`      addresses: [${lb.overlay}/${ol}]`, `      mac: "${macFor('overlay', lb.overlay)}"`);
  else {
    const ports = c.backends.filter((b) => b.hypervisor === name).map((b) => `b-${b.name}`);
    if (ports.length) out.push(`      ports: [${ports.join(', ')}]`);
  }
  return `${out.join('\n')}\n`;
}

/** `vrrp:` of one director: one instance for the VIP on the front segment. */
export function vrrpYaml(plan: LabPlan, dir: string): string {
  const c = plan.cfg;
  const d = c.directors.find((x) => x.name === dir);
  if (!d) throw new LabError('ELAB_NO_HOST', `${dir} is not a director of the lab`);
  return [
    `# generated by tierlb lab for ${plan.prefix}: VRRP of ${dir}`,
    'vrrp:',
    '  instances:',
    '    - name: VI_LAB',
    '      interface: eth0',
    `      virtual_router_id: ${c.vrrp.virtualRouterId}`,
    `      priority: ${d.priority}`,
    `      advert_int: ${c.vrrp.advertInt}`,
    '      state: BACKUP',
    `      authentication: { auth_type: PASS, auth_pass: ${c.vrrp.authPass} }`,
    `      virtual_ipaddress: [${c.vip}/${plen(c.front.subnet)}]`,
    '',
  ].join('\n');
}

/** The director that should hold the VIP: the highest priority (the first on a tie). */
export function masterDirector(plan: LabPlan): string {
  let best = plan.cfg.directors[0];
  for (const d of plan.cfg.directors) if (d.priority > best.priority) best = d;
  return best.name;
}
