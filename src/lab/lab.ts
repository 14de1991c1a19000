/**
 * `tierlb lab up|down|status|exec`: builds the plan (./plan.ts) in network namespaces, starts the daemons detached
 * (pid files and logs in the state dir), waits until every check is green, and removes it all again — from the state
 * file and by name prefix, so a `lab up` that crashed or was killed half-way is cleaned up too.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { findProgram } from '../bgp/bird.js';
import { loadConfigFile, loadConfigString } from '../config/load.js';
import { requestDirector } from '../director/client.js';
import { CHAIN } from '../fwmark/plan.js';
import { normalizeOverlay } from '../overlay/config.js';
import '../overlay/config-schema.js'; // registers the overlay section with the loader
import { overlayUp } from '../overlay/exec.js';
import { type RunResult, run, runSync } from '../sys/exec.js';
import { type LabConfig, type LabSection, labFromSection } from './config-schema.js'; // registers the lab section
import { clusterYaml, directorYaml, listenersYaml, overlayYaml } from './derive.js';
import { LabError } from './errors.js';
import { sh } from './netns.js';
import {
  buildPlan,
  directorSocket,
  hostsOf,
  type LabPlan,
  masterDirector,
  routerBirdConf,
  routerSocket,
  SWITCH,
} from './plan.js';
import { alive, BACKEND_JS, isOurProcess, spawnDetached, tail, tierlbArgv } from './proc.js';
import { type LabState, readState, writeState } from './state.js';

export type Out = (line: string) => void;

/** Load a lab config file: its `lab` section, checked with file:line problems (other sections are their daemons'). */
export async function loadLabConfig(file?: string): Promise<LabConfig> {
  if (!file) return labFromSection(undefined);
  const loaded = await loadConfigFile(file, { sections: ['lab'] });
  return labFromSection(loaded.config.lab as LabSection | undefined);
}

const ipn = (ns: string, ...args: string[]) => sh('ip', ['-n', ns, ...args]);
const inNs = (ns: string, cmd: string, args: string[], opts: { allowFail?: boolean; input?: string } = {}) =>
  sh('ip', ['netns', 'exec', ns, cmd, ...args], opts);

/** Async, never throws: exit code and output of a command inside a namespace. */
export function nsRun(ns: string, cmd: string, args: string[], timeoutMs = 5000): Promise<RunResult> {
  return run(['ip', 'netns', 'exec', ns, cmd, ...args], { timeoutMs });
}

export function listNamespaces(): string[] {
  return sh('ip', ['netns', 'list'], { allowFail: true })
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0])
    .filter(Boolean);
}

function newState(plan: LabPlan, configFile: string | null): LabState {
  return {
    version: 1,
    prefix: plan.prefix,
    dir: plan.dir,
    configFile,
    startedAt: new Date().toISOString(),
    phase: 'building',
    vipMode: null,
    namespaces: [],
    rootLinks: [],
    processes: [],
    config: plan.cfg,
  };
}

/** Build the namespaces, links, addresses, sysctls, overlay and mark rules (no processes yet). */
function buildNetwork(plan: LabPlan, st: LabState, out: Out): void {
  const c = plan.cfg;
  for (const h of plan.hosts) {
    // recorded before it exists: a kill between the two still leaves a record (and the prefix scan)
    st.namespaces.push(h.ns);
    writeState(st);
    sh('ip', ['netns', 'add', h.ns]);
    ipn(h.ns, 'link', 'set', 'lo', 'up');
    // no IPv6: fewer packets in the captures (router solicitations, MLD)
    inNs(h.ns, 'sysctl', ['-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
  }
  out(`namespaces: ${plan.hosts.map((h) => h.ns).join(' ')}`);
  const sw = plan.hosts.find((h) => h.name === SWITCH)!;
  for (const br of ['front', 'under', ...(c.ecmp ? ['cli'] : [])]) {
    ipn(sw.ns, 'link', 'add', br, 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0');
    ipn(sw.ns, 'link', 'set', br, 'up');
  }
  const nsOf = new Map(plan.hosts.map((h) => [h.name, h.ns]));
  // backends first: their hypervisor ports must exist before the overlay enslaves them
  const order = [...hostsOf(plan, 'backend'), ...plan.hosts.filter((h) => h.role !== 'backend' && h.role !== 'switch')];
  for (const h of order) {
    for (const l of h.links) {
      const peerNs = nsOf.get(l.peer.host)!;
      sh('ip', [
        'link',
        'add',
        l.ifname,
        'netns',
        h.ns,
        'type',
        'veth',
        'peer',
        'name',
        l.peer.ifname,
        'netns',
        peerNs,
      ]);
      ipn(h.ns, 'link', 'set', l.ifname, 'address', l.mac, ...(l.mtu ? ['mtu', String(l.mtu)] : []));
      if (l.cidr) ipn(h.ns, 'addr', 'add', l.cidr, 'dev', l.ifname);
      ipn(h.ns, 'link', 'set', l.ifname, 'up');
      if (l.peer.host === SWITCH) {
        const bridge = l.segment === 'front' ? 'front' : l.segment === 'client' ? 'cli' : 'under';
        ipn(peerNs, 'link', 'set', l.peer.ifname, 'master', bridge, 'up');
      } else {
        ipn(peerNs, 'link', 'set', l.peer.ifname, ...(l.mtu ? ['mtu', String(l.mtu)] : []), 'up');
      }
    }
  }
  out('links: front and underlay bridges, veths, addresses');
  // LB nodes: the VIP on lo as /32, never answering ARP for it (source article 003)
  for (const h of hostsOf(plan, 'lb')) {
    ipn(h.ns, 'addr', 'add', `${c.vip}/32`, 'dev', 'lo');
    for (const k of ['all', 'eth0', 'eth1', 'lo'])
      inNs(h.ns, 'sysctl', ['-qw', `net.ipv4.conf.${k}.arp_ignore=1`, `net.ipv4.conf.${k}.arp_announce=2`]);
  }
  out(`LB nodes: ${c.vip}/32 on lo, arp_ignore=1, arp_announce=2`);
  if (c.ecmp) ecmpNetwork(plan, out);
  // the overlay on every VTEP, by src/overlay
  for (const h of [...hostsOf(plan, 'lb'), ...hostsOf(plan, 'hypervisor')]) {
    const file = join(plan.dir, `${h.name}-overlay.yaml`);
    const text = overlayYaml(plan, h.name);
    writeFileSync(file, text);
    const spec = normalizeOverlay(loadConfigString(text, file, { sections: ['overlay'] }).config.overlay);
    const res = overlayUp(spec, { netns: h.ns });
    if (res.plan.conflicts.length)
      throw new LabError('ELAB_OVERLAY_CONFLICT', `overlay on ${h.name}: ${res.plan.conflicts.join('; ')}`);
  }
  out(
    `overlay: VNI ${c.overlay.vni} (vx${c.overlay.vni} + br${c.overlay.vni}, static fdb) on ${[...hostsOf(plan, 'lb'), ...hostsOf(plan, 'hypervisor')].map((h) => h.name).join(' ')}`,
  );
  // the mark rules: each director installs them in its own chain, from its fwmark services' `match`
  out(
    `fwmark rules (by each director, in ${CHAIN}): ${plan.marks.map((m) => `${c.vip}:${m.port} → 0x${m.mark.toString(16)}`).join(', ')}`,
  );
}

/**
 * ecmp: the router forwards with multipath routes hashed on L4 (fib_multipath_hash_policy=1); the clients route
 * through it; the directors hold the VIP on lo (the router routes it to them; they never answer ARP for it); the
 * directors and LB nodes reach the client segment through the router.
 */
function ecmpNetwork(plan: LabPlan, out: Out): void {
  const c = plan.cfg;
  const e = c.ecmp as NonNullable<LabPlan['cfg']['ecmp']>;
  const rt = hostsOf(plan, 'router')[0];
  inNs(rt.ns, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1', 'net.ipv4.fib_multipath_hash_policy=1']);
  for (const h of hostsOf(plan, 'client')) ipn(h.ns, 'route', 'add', 'default', 'via', e.router.clientAddress);
  for (const h of hostsOf(plan, 'director')) {
    ipn(h.ns, 'addr', 'add', `${c.vip}/32`, 'dev', 'lo');
    for (const k of ['all', 'eth0'])
      inNs(h.ns, 'sysctl', ['-qw', `net.ipv4.conf.${k}.arp_ignore=1`, `net.ipv4.conf.${k}.arp_announce=2`]);
  }
  for (const h of [...hostsOf(plan, 'director'), ...hostsOf(plan, 'lb')])
    ipn(h.ns, 'route', 'add', e.clientSubnet, 'via', e.router.address);
  out(
    `ecmp: router ${e.router.name} (multipath, L4 hash) between the clients (${e.clientSubnet}) and the front; ${c.vip}/32 on the directors' lo`,
  );
}

/** ecmp: the directors the router's kernel route to the VIP leads to now (its next hops). */
export function ecmpNextHops(plan: LabPlan): string[] {
  const rt = hostsOf(plan, 'router')[0];
  if (!rt) return [];
  const text = inNs(rt.ns, 'ip', ['-j', 'route', 'show', `${plan.cfg.vip}/32`], { allowFail: true });
  let routes: { gateway?: string; nexthops?: { gateway: string }[] }[] = [];
  try {
    routes = JSON.parse(text || '[]');
  } catch {}
  const gws = routes.flatMap((r) => (r.nexthops ? r.nexthops.map((h) => h.gateway) : r.gateway ? [r.gateway] : []));
  return plan.cfg.directors.filter((d) => gws.includes(d.address)).map((d) => d.name);
}

function startProcesses(plan: LabPlan, st: LabState, out: Out): void {
  const c = plan.cfg;
  const httpPorts = [...new Set(c.listeners.filter((l) => l.mode === 'http').map((l) => l.backendPort))].join(',');
  const tcpPorts = [...new Set(c.listeners.filter((l) => l.mode === 'tcp').map((l) => l.backendPort))].join(',');
  const record = (r: ReturnType<typeof spawnDetached>) => {
    st.processes.push(r);
    writeState(st);
  };
  for (const p of plan.processes) {
    const h = plan.hosts.find((x) => x.name === p.host)!;
    if (p.kind === 'backend') {
      record(
        spawnDetached(plan.dir, p.id, h.name, h.ns, [process.execPath, '-e', BACKEND_JS, h.name, httpPorts, tcpPorts]),
      );
    } else if (p.kind === 'listeners') {
      const file = join(plan.dir, `${h.name}-listeners.yaml`);
      writeFileSync(file, listenersYaml(plan, h.name));
      record(spawnDetached(plan.dir, p.id, h.name, h.ns, tierlbArgv(['listeners', '--config', file])));
    } else if (p.kind === 'router') {
      const file = join(plan.dir, `${h.name}-bird.conf`);
      writeFileSync(file, routerBirdConf(plan));
      record(
        spawnDetached(plan.dir, p.id, h.name, h.ns, [
          findProgram('bird') ?? 'bird',
          '-f',
          '-c',
          file,
          '-s',
          routerSocket(plan),
        ]),
      );
    } else if (p.kind === 'director') {
      // a config per director: its own bgp section (ecmp) or VRRP priority
      const file = join(plan.dir, `${h.name}-director.yaml`);
      writeFileSync(file, directorYaml(plan, h.name));
      record(
        spawnDetached(
          plan.dir,
          p.id,
          h.name,
          h.ns,
          tierlbArgv(['director', '--config', file, '--socket', directorSocket(plan, h.name)]),
        ),
      );
    }
  }
  out(`processes: ${st.processes.map((p) => `${p.id} (pid ${p.pid})`).join(', ')}`);
}

// ---- checks ----

export interface CheckResult {
  name: string;
  ok: boolean;
  detail: string;
}

/** `tierlb adm -L -n` (or other argv) through a director's admin socket. */
export async function admList(socket: string, argv = ['-L', '-n']): Promise<string> {
  const r = await requestDirector(socket, argv, undefined, 3000);
  if (r.code !== 0) throw new LabError('ELAB_DIRECTOR', r.stderr.trim());
  return r.stdout;
}

/** Which directors hold the VIP right now. */
export function vipHolders(plan: LabPlan): string[] {
  return hostsOf(plan, 'director')
    .filter((h) =>
      inNs(h.ns, 'ip', ['-o', '-4', 'addr', 'show', 'dev', 'eth0'], { allowFail: true }).includes(` ${plan.cfg.vip}/`),
    )
    .map((h) => h.name);
}

export async function runChecks(plan: LabPlan, st: LabState | null): Promise<CheckResult[]> {
  const c = plan.cfg;
  const res: CheckResult[] = [];
  const add = (name: string, ok: boolean, detail: string) => res.push({ name, ok, detail });
  const present = new Set(listNamespaces());
  const missing = plan.hosts.filter((h) => !present.has(h.ns)).map((h) => h.ns);
  add(
    'namespaces',
    missing.length === 0,
    missing.length ? `missing: ${missing.join(' ')}` : `${plan.hosts.length} present`,
  );
  if (missing.length) return res;
  for (const p of st?.processes ?? [])
    add(`process ${p.id}`, alive(p.pid), alive(p.pid) ? `pid ${p.pid}` : `exited; log ${p.log}:\n${tail(p.log, 5)}`);
  if (c.ecmp) {
    const hops = ecmpNextHops(plan);
    add(
      'VIP',
      hops.length === c.directors.length,
      `${c.vip} routed by ${c.ecmp.router.name} to ${hops.join(', ') || 'no director yet'} (ECMP)`,
    );
  } else {
    const holders = vipHolders(plan);
    add(
      'VIP',
      holders.length === 1,
      holders.length ? `${c.vip} on ${holders.join(', ')}` : `${c.vip} on no director yet`,
    );
  }
  const http = c.listeners.find((l) => l.mode === 'http');
  const checks: Promise<unknown>[] = [];
  for (const b of hostsOf(plan, 'backend')) {
    const from = hostsOf(plan, 'lb')[0];
    if (http)
      checks.push(
        nsRun(from.ns, 'curl', ['-s', '-m', '2', `http://${b.address}:${http.backendPort}/health`]).then((r) =>
          add(
            `backend ${b.name} over the overlay from ${from.name}`,
            r.code === 0 && r.stdout.trim() === 'ok',
            r.code === 0 ? `${b.address}:${http.backendPort} /health` : `curl exit ${r.code}`,
          ),
        ),
      );
  }
  for (const h of hostsOf(plan, 'director')) {
    checks.push(
      admList(directorSocket(plan, h.name))
        .then((out) => {
          const n = (out.match(/^FWM /gm) ?? []).length;
          add(`director ${h.name}`, n === plan.marks.length, `${n} fwmark services`);
        })
        .catch((e) => add(`director ${h.name}`, false, `admin socket: ${(e as Error).message}`)),
    );
  }
  for (const h of hostsOf(plan, 'lb')) {
    checks.push(
      nsRun(h.ns, 'ss', ['-Hltn']).then((r) => {
        const missingPorts = c.listeners.filter((l) => !r.stdout.includes(`${c.vip}:${l.port} `)).map((l) => l.port);
        add(
          `listeners ${h.name}`,
          missingPorts.length === 0,
          missingPorts.length
            ? `not listening on ${missingPorts.map((p) => `${c.vip}:${p}`).join(' ')}`
            : `listening on ${c.listeners.map((l) => `${c.vip}:${l.port}`).join(' ')}`,
        );
      }),
    );
    if (http)
      checks.push(
        nsRun(h.ns, 'curl', ['-s', '-m', '2', `http://${c.vip}:${http.port}/`]).then((r) =>
          add(
            `listener ${http.name} on ${h.name} reaches a backend`,
            r.code === 0 && r.stdout.includes('"backend"'),
            r.stdout.trim() || `curl exit ${r.code}`,
          ),
        ),
      );
  }
  const fixed = res.length;
  await Promise.all(checks);
  // the concurrent checks finish in any order: list them in a stable one
  const rest = res.splice(fixed).sort((a, b) => a.name.localeCompare(b.name));
  res.push(...rest);
  // end to end from every client, once the pieces are there
  if (res.every((r) => r.ok)) {
    for (const cl of hostsOf(plan, 'client'))
      for (const l of c.listeners) {
        const r =
          l.mode === 'http'
            ? await nsRun(cl.ns, 'curl', ['-s', '-m', '3', `http://${c.vip}:${l.port}/`])
            : await nsRun(cl.ns, 'nc', ['-w', '3', '-N', c.vip, String(l.port)], 5000);
        add(
          `${cl.name} → ${c.vip}:${l.port} (${l.name})`,
          r.code === 0 && r.stdout.includes('"backend"'),
          r.stdout.trim() || `exit ${r.code} ${r.stderr.trim()}`,
        );
      }
  }
  return res;
}

// ---- up / down ----

export interface UpOptions {
  configFile?: string;
  /** override the config's prefix (tests) */
  prefix?: string;
  stateDir?: string;
  out: Out;
  /** progress lines (stderr) */
  progress?: Out;
}

export function planFor(cfg: LabConfig, o: { prefix?: string; stateDir?: string }): LabPlan {
  return buildPlan({ ...cfg, prefix: o.prefix ?? cfg.prefix, stateDir: o.stateDir ?? cfg.stateDir });
}

export async function labUp(o: UpOptions): Promise<{ plan: LabPlan; state: LabState }> {
  const cfg = await loadLabConfig(o.configFile);
  const plan = planFor(cfg, o);
  const existing = readState(plan.dir);
  const live = listNamespaces().filter((n) => n.startsWith(`${plan.prefix}-`));
  if (existing || live.length)
    throw new LabError(
      'ELAB_EXISTS',
      `a lab with prefix '${plan.prefix}' exists (${plan.dir}); run 'tierlb lab down' first`,
    );
  mkdirSync(plan.dir, { recursive: true });
  const st = newState(plan, o.configFile ?? null);
  writeState(st);
  const progress = o.progress ?? o.out;
  buildNetwork(plan, st, progress);
  const vrrp = cfg.vrrp.enabled && !cfg.ecmp;
  st.vipMode = cfg.ecmp ? 'bgp' : vrrp ? 'vrrp' : 'static';
  if (!vrrp && !cfg.ecmp) {
    const m = plan.hosts.find((h) => h.name === masterDirector(plan))!;
    ipn(m.ns, 'addr', 'add', `${cfg.vip}/${cfg.front.subnet.split('/')[1]}`, 'dev', 'eth0');
    progress(`VIP ${cfg.vip} static on ${m.name} (vrrp.enabled: false)`);
  }
  writeState(st);
  writeFileSync(join(plan.dir, 'cluster.yaml'), clusterYaml(plan));
  startProcesses(plan, st, progress);
  // wait until every check is green (bounded)
  const deadline = Date.now() + cfg.waitSeconds * 1000;
  let last: CheckResult[] = [];
  let shown = '';
  for (;;) {
    last = await runChecks(plan, st);
    const bad = last.filter((r) => !r.ok);
    const line = `checks: ${last.length - bad.length}/${last.length} green${bad.length ? `; waiting for ${bad.map((b) => b.name).join(', ')}` : ''}`;
    if (line !== shown) progress(line);
    shown = line;
    if (!bad.length && last.some((r) => r.name.startsWith(`${plan.cfg.clients[0].name} →`))) break;
    const dead = bad.filter((r) => r.name.startsWith('process '));
    if (dead.length || Date.now() > deadline) {
      st.phase = 'failed';
      writeState(st);
      throw new LabError(
        'ELAB_NOT_READY',
        `lab did not come up${dead.length ? '' : ` within ${cfg.waitSeconds}s`}:\n${bad.map((b) => `  ✗ ${b.name}: ${b.detail}`).join('\n')}`,
      );
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
  st.phase = 'ready';
  writeState(st);
  o.out(await summary(plan, st, last));
  return { plan, state: st };
}

/** What the lab is: hosts, addresses, VIP, marks, services, listeners, processes. */
export async function summary(plan: LabPlan, st: LabState | null, checks?: CheckResult[]): Promise<string> {
  const c = plan.cfg;
  const lines: string[] = [];
  lines.push(`lab '${plan.prefix}' (state ${plan.dir}/state.json)`, '', 'hosts:');
  for (const h of plan.hosts) {
    if (h.role === 'switch') {
      lines.push(
        `  ${h.name.padEnd(8)} ${'switch'.padEnd(10)} ${h.ns}: bridges front (front segment ${c.front.subnet}) and under (underlay ${c.underlay.subnet})`,
      );
      continue;
    }
    const links = h.links.map((l) => `${l.ifname} ${l.cidr} ${l.mac}`).join(', ');
    let extra = '';
    if (h.role === 'lb') {
      const l = c.lbNodes.find((x) => x.name === h.name)!;
      extra = `; lo ${c.vip}/32; br${c.overlay.vni} ${l.overlay}`;
    }
    if (h.role === 'backend') extra = ` (behind ${c.backends.find((b) => b.name === h.name)!.hypervisor})`;
    lines.push(`  ${h.name.padEnd(8)} ${h.role.padEnd(10)} ${h.ns}: ${links}${extra}`);
  }
  const holders = c.ecmp ? ecmpNextHops(plan) : vipHolders(plan);
  lines.push(
    '',
    c.ecmp
      ? `VIP: ${c.vip} announced over BGP by ${holders.join(', ') || 'nobody'} (ECMP on ${c.ecmp.router.name}; birdc -s ${routerSocket(plan)} show route)`
      : `VIP: ${c.vip} held by ${holders.join(', ') || 'nobody'} (${st?.vipMode === 'static' ? 'static' : `VRRP VRID ${c.vrrp.virtualRouterId}`}; directors ${c.directors.map((d) => `${d.name} prio ${d.priority}`).join(', ')})`,
    `marks (each director's own ${CHAIN} in mangle PREROUTING, from its config's match):`,
  );
  for (const m of plan.marks)
    lines.push(`  ${c.vip}:${m.port}/tcp → fwmark 0x${m.mark.toString(16)} (${m.mark}) listener ${m.listener}`);
  for (const h of hostsOf(plan, 'director')) {
    lines.push(`services on ${h.name} (tierlb adm --socket ${directorSocket(plan, h.name)} -L -n):`);
    try {
      lines.push(
        ...(await admList(directorSocket(plan, h.name)))
          .trimEnd()
          .split('\n')
          .map((l) => `  ${l}`),
      );
    } catch (e) {
      lines.push(`  (no answer: ${(e as Error).message})`);
    }
  }
  lines.push('listeners (on every LB node):');
  for (const l of c.listeners)
    lines.push(
      `  ${l.name.padEnd(6)} ${c.vip}:${l.port} ${l.mode.padEnd(4)} ${l.balance} → ${c.backends.map((b) => `${b.name} ${b.address}:${l.backendPort}`).join(', ')}`,
    );
  if (st?.processes.length) {
    lines.push('processes:');
    for (const p of st.processes)
      lines.push(
        `  ${p.id.padEnd(18)} pid ${String(p.pid).padEnd(8)} ${isOurProcess(p) ? 'running' : 'EXITED '} log ${p.log}`,
      );
  }
  if (checks) {
    lines.push('checks:');
    for (const r of checks) lines.push(`  ${r.ok ? '✓' : '✗'} ${r.name}: ${r.detail.split('\n')[0]}`);
  }
  lines.push('', `try: tierlb lab exec ${c.clients[0].name} -- curl -s http://${c.vip}:${c.listeners[0].port}/`);
  return lines.join('\n');
}

/** Remove everything of the lab with this prefix: processes, namespaces, root links, the state dir. */
export async function labDown(o: { prefix: string; stateDir: string; out: Out }): Promise<{ removed: string[] }> {
  const dir = join(o.stateDir, o.prefix);
  const st = readState(dir);
  const removed: string[] = [];
  const ours = (n: string) => n.startsWith(`${o.prefix}-`);
  const namespaces = [...new Set([...(st?.namespaces ?? []), ...listNamespaces().filter(ours)])];
  const present = new Set(listNamespaces());
  // processes: the recorded ones (while still ours: a pid may have been recycled) and those in our namespaces get
  // SIGTERM first (daemons clean up), then SIGKILL
  const pids = new Set<number>();
  for (const p of st?.processes ?? []) if (isOurProcess(p)) pids.add(p.pid);
  for (const ns of namespaces)
    if (present.has(ns))
      for (const p of sh('ip', ['netns', 'pids', ns], { allowFail: true }).split('\n').filter(Boolean))
        pids.add(Number(p));
  for (const pid of pids)
    try {
      process.kill(pid, 'SIGTERM');
    } catch {}
  const deadline = Date.now() + 3000;
  while ([...pids].some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  for (const pid of pids)
    if (alive(pid))
      try {
        process.kill(pid, 'SIGKILL');
      } catch {}
  if (pids.size) removed.push(`${pids.size} process(es)`);
  for (const ns of namespaces) {
    if (!present.has(ns)) continue;
    for (const p of sh('ip', ['netns', 'pids', ns], { allowFail: true }).split('\n').filter(Boolean))
      try {
        process.kill(Number(p), 'SIGKILL');
      } catch {}
    sh('ip', ['netns', 'del', ns], { allowFail: true });
    removed.push(ns);
  }
  // links in the root namespace carrying the prefix (the lab makes none, an older or foreign build might have)
  const links = JSON.parse(sh('ip', ['-j', 'link', 'show'], { allowFail: true }) || '[]') as { ifname: string }[];
  for (const l of links)
    if (l.ifname.startsWith(`${o.prefix}-`) || (st?.rootLinks ?? []).includes(l.ifname)) {
      sh('ip', ['link', 'del', l.ifname], { allowFail: true });
      removed.push(`link ${l.ifname}`);
    }
  rmSync(dir, { recursive: true, force: true });
  o.out(removed.length ? `removed: ${removed.join(' ')}` : `nothing of lab '${o.prefix}' was left`);
  return { removed };
}

/** The namespace of a lab host. */
export function nsOfHost(plan: LabPlan, name: string): string {
  const h = plan.hosts.find((x) => x.name === name || x.ns === name);
  if (!h)
    throw new LabError(
      'ELAB_NO_HOST',
      `no host '${name}' in lab '${plan.prefix}' (hosts: ${plan.hosts.map((x) => x.name).join(', ')})`,
    );
  return h.ns;
}

/** Run a command in a lab host with inherited stdio; returns its exit code. */
export function labExec(plan: LabPlan, name: string, argv: string[]): number {
  const r = runSync(['ip', 'netns', 'exec', nsOfHost(plan, name), ...argv], { output: 'inherit' });
  return r.code >= 0 ? r.code : 1;
}
