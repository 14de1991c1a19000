/**
 * The probing half of `tierlb doctor`: reads addresses, sysctls, routes, ip rules, mangle rules and listening sockets
 * of the lab's hosts, pings the VIP and the real servers from a client, and listens for VRRP adverts on the front
 * segment; ./doctor.ts judges what was found.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CHAIN } from '../fwmark/plan.js';
import { run as runProgram } from '../sys/exec.js';
import { iptablesArgv } from '../sys/iptables.js';
import { type DoctorInput, type HostFacts, parseSs, parseSysctl } from './doctor.js';
import { nsRun } from './lab.js';
import { parsePcap } from './pcap.js';
import { hostsOf, type LabPlan } from './plan.js';

/** Facts of one host; `ns` null = the current namespace. */
export async function probeHost(
  name: string,
  role: HostFacts['role'],
  ns: string | null,
  frontIf: string,
): Promise<HostFacts> {
  const run = (cmd: string, args: string[]) =>
    ns ? nsRun(ns, cmd, args) : runProgram([cmd, ...args], { timeoutMs: 5000 });
  const mangle = iptablesArgv(4, ['-t', 'mangle', '-S']);
  const [addr, sysctl, route, rule, mangleRules, ss] = await Promise.all([
    run('ip', ['-j', '-4', 'addr', 'show']),
    run('sysctl', [
      `net.ipv4.conf.all.arp_ignore`,
      `net.ipv4.conf.all.arp_announce`,
      `net.ipv4.conf.${frontIf}.arp_ignore`,
      `net.ipv4.conf.${frontIf}.arp_announce`,
      'net.ipv4.conf.lo.arp_ignore',
      'net.ipv4.conf.lo.arp_announce',
    ]),
    run('ip', ['-j', '-4', 'route', 'show', 'default']),
    run('ip', ['-j', '-4', 'rule', 'show']),
    run(mangle[0], mangle.slice(1)),
    run('ss', ['-Hltn']),
  ]);
  const addrs: HostFacts['addrs'] = [];
  try {
    for (const l of JSON.parse(addr.stdout || '[]') as {
      ifname: string;
      addr_info: { family: string; local: string; prefixlen: number }[];
    }[])
      for (const a of l.addr_info ?? [])
        if (a.family === 'inet') addrs.push({ ifname: l.ifname, local: a.local, prefixlen: a.prefixlen });
  } catch {}
  let defaultVia: string | null = null;
  try {
    const r = JSON.parse(route.stdout || '[]') as { gateway?: string }[];
    defaultVia = r[0]?.gateway ?? null;
  } catch {}
  const rules: HostFacts['rules'] = [];
  try {
    for (const r of JSON.parse(rule.stdout || '[]') as { priority: number; fwmark?: string; table?: string }[])
      rules.push({ priority: r.priority, fwmark: r.fwmark ? Number(r.fwmark) : undefined, table: r.table });
  } catch {}
  const tables: Record<string, string[]> = {};
  await Promise.all(
    rules
      .filter((r) => r.fwmark !== undefined && r.table && /^\d+$/.test(r.table))
      .map(async (r) => {
        const t = await run('ip', ['-4', 'route', 'show', 'table', r.table!]);
        tables[r.table!] = t.stdout.trim().split('\n').filter(Boolean);
      }),
  );
  return {
    name,
    role,
    addrs,
    sysctl: parseSysctl(sysctl.stdout),
    defaultVia,
    rules,
    tables,
    mangle: mangleRules.stdout.split('\n').filter(Boolean),
    listening: parseSs(ss.stdout),
  };
}

/** VRRP adverts heard on a host's interface for `seconds`. */
export async function listenVrrp(
  ns: string,
  ifname: string,
  seconds: number,
): Promise<{ src: string; vrid: number; priority: number }[]> {
  const dir = mkdtempSync(join(tmpdir(), 'tierlb-doctor-'));
  try {
    const file = join(dir, 'vrrp.pcap');
    await nsRun(
      ns,
      'timeout',
      [String(seconds), 'tcpdump', '-i', ifname, '-Z', 'root', '-U', '-n', '-w', file, 'ip proto 112'],
      (seconds + 5) * 1000,
    );
    let frames: ReturnType<typeof parsePcap>['frames'] = [];
    try {
      frames = parsePcap(readFileSync(file)).frames;
    } catch {}
    return frames
      .filter((f) => f.vrrp && f.ip)
      .map((f) => ({ src: f.ip!.src, vrid: f.vrrp!.vrid, priority: f.vrrp!.priority }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Everything the checks need about the lab. */
export async function probeLab(
  plan: LabPlan,
  o: { only?: string[]; listenSeconds?: number } = {},
): Promise<DoctorInput> {
  const c = plan.cfg;
  const hosts: Record<string, HostFacts> = {};
  await Promise.all(
    [...hostsOf(plan, 'director'), ...hostsOf(plan, 'lb')].map(async (h) => {
      hosts[h.name] = await probeHost(h.name, h.role === 'director' ? 'director' : 'lb', h.ns, 'eth0');
    }),
  );
  const client = hostsOf(plan, 'client')[0];
  const targets = [
    { target: c.vip, what: 'VIP' },
    ...c.directors.map((d) => ({ target: d.address, what: d.name })),
    ...c.lbNodes.map((l) => ({ target: l.address, what: l.name })),
  ];
  const reach = await Promise.all(
    targets.map(async (t) => ({
      from: client.name,
      ...t,
      ok: (await nsRun(client.ns, 'ping', ['-c', '1', '-W', '1', t.target], 3000)).code === 0,
    })),
  );
  const adverts = await listenVrrp(client.ns, 'eth0', o.listenSeconds ?? Math.max(3, Math.ceil(c.vrrp.advertInt * 3)));
  return {
    vip: c.vip,
    frontIf: 'eth0',
    directors: c.directors.map((d) => ({ name: d.name, ip: d.address })),
    realServers: c.lbNodes.map((l) => ({ name: l.name, ip: l.address, method: 'route' as const })),
    marks: plan.marks.map((m) => ({ port: m.port, mark: m.mark })),
    markChain: CHAIN,
    listenerPorts: c.listeners.map((l) => l.port),
    vrrp: { vrid: c.vrrp.virtualRouterId, expected: c.vrrp.enabled },
    hosts,
    reach,
    adverts,
    only: o.only,
  };
}
