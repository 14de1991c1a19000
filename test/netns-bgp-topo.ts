/**
 * The ECMP topology of the bgp netns tests: one LAN (a bridge in its own namespace) holding the router 10.90.0.1, the
 * directors 10.90.0.11.. and the real servers 10.90.0.21..; a client 10.91.0.10 behind the router. The router runs
 * BIRD with ECMP (kernel protocol `merge paths on`, net.ipv4.fib_multipath_hash_policy=1) and one BGP session per
 * director; each director runs `tierlb director` with a `bgp` section (BIRD beside it, in its namespace). The VIP
 * 10.99.0.1 is on lo of every director and real server (DR; the real servers answer the client through the router).
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from '../src/director/client.js';
import { NetnsSet, runPrefix } from '../src/lab/netns.js';

export const VIP = '10.99.0.1';
export const ROUTER = '10.90.0.1';
export const CLIENT = '10.91.0.10';
export const directorAddr = (i: number) => `10.90.0.${11 + i}`;
export const rsAddr = (i: number) => `10.90.0.${21 + i}`;
const DIRECTOR_ENTRY = new URL('../src/cli/entry.ts', import.meta.url).pathname;

export interface DirectorSpec {
  bfd: boolean;
  scheduler?: string;
  /** ipvsadm -b flags, e.g. mh-port */
  schedFlags?: string[];
  /** director.sysctl.sloppy_tcp (default: the bgp mode's, on) */
  sloppy?: boolean;
}

export interface BgpTopo {
  set: NetnsSet;
  dir: string;
  rt: string;
  client: string;
  directors: string[];
  rs: string[];
  lanIf: Map<string, string>;
  birdc(...args: string[]): string;
  /** the next hops of the router's kernel route to the VIP (sorted) */
  nextHops(): string[];
  dispose(): void;
}

export function routerBirdConf(specs: DirectorSpec[]): string {
  const peers = specs.map(
    (s, i) => `protocol bgp d${i + 1} {
  local ${ROUTER} as 65000;
  neighbor ${directorAddr(i)} as 65001;
  hold time 3;
  keepalive time 1;
  connect delay time 1;
  connect retry time 1;
  error wait time 1, 2;
${s.bfd ? '  bfd on;\n' : ''}  ipv4 { import all; export none; };
}`,
  );
  return [
    `router id ${ROUTER};`,
    'log stderr all;',
    'protocol device { scan time 10; }',
    'protocol kernel { ipv4 { import none; export all; }; merge paths on; }',
    'protocol bfd { interface "*" { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; }; }',
    ...peers,
    '',
  ].join('\n');
}

export function buildBgpTopo(specs: DirectorSpec[], rsCount = 2): BgpTopo {
  const set = new NetnsSet(runPrefix('b'));
  const dir = mkdtempSync(join(tmpdir(), 'tierlb-bgp-'));
  const lan = set.add('lan');
  set.exec(lan, 'ip', ['link', 'add', 'br0', 'type', 'bridge']);
  set.exec(lan, 'ip', ['link', 'set', 'br0', 'up']);
  const lanIf = new Map<string, string>();
  let port = 0;
  const attach = (ns: string, addr: string) => {
    const p = `p${port++}`;
    set.veth({ ns, name: 'eth0' }, { ns: lan, name: p });
    set.exec(lan, 'ip', ['link', 'set', p, 'master', 'br0', 'up']);
    set.exec(ns, 'ip', ['addr', 'add', `${addr}/24`, 'dev', 'eth0']);
    set.exec(ns, 'ip', ['link', 'set', 'eth0', 'up']);
    set.exec(ns, 'sysctl', ['-qw', 'net.ipv6.conf.all.disable_ipv6=1']);
    lanIf.set(ns, p);
  };
  const rt = set.add('rt');
  attach(rt, ROUTER);
  set.exec(rt, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1', 'net.ipv4.fib_multipath_hash_policy=1']);
  const client = set.add('cl');
  set.veth({ ns: rt, name: 'c0' }, { ns: client, name: 'eth0' });
  set.exec(rt, 'ip', ['addr', 'add', '10.91.0.1/24', 'dev', 'c0']);
  set.exec(rt, 'ip', ['link', 'set', 'c0', 'up']);
  set.exec(client, 'ip', ['addr', 'add', `${CLIENT}/24`, 'dev', 'eth0']);
  set.exec(client, 'ip', ['link', 'set', 'eth0', 'up']);
  set.exec(client, 'ip', ['route', 'add', 'default', 'via', '10.91.0.1']);
  const vipOnLo = (ns: string) => {
    set.exec(ns, 'ip', ['addr', 'add', `${VIP}/32`, 'dev', 'lo']);
    for (const k of ['all', 'eth0'])
      set.exec(ns, 'sysctl', ['-qw', `net.ipv4.conf.${k}.arp_ignore=1`, `net.ipv4.conf.${k}.arp_announce=2`]);
    set.exec(ns, 'ip', ['route', 'add', 'default', 'via', ROUTER]);
  };
  const directors = specs.map((_, i) => {
    const ns = set.add(`d${i + 1}`);
    attach(ns, directorAddr(i));
    vipOnLo(ns);
    return ns;
  });
  const rs = Array.from({ length: rsCount }, (_, i) => {
    const ns = set.add(`rs${i + 1}`);
    attach(ns, rsAddr(i));
    vipOnLo(ns);
    return ns;
  });
  mkdirSync(join(dir, 'rt'));
  writeFileSync(join(dir, 'rt', 'bird.conf'), routerBirdConf(specs));
  const sock = join(dir, 'rt', 'bird.ctl');
  const bird = set.spawn(rt, 'bird', ['-f', '-c', join(dir, 'rt', 'bird.conf'), '-s', sock]);
  bird.stdout?.resume();
  bird.stderr?.resume();
  const topo: BgpTopo = {
    set,
    dir,
    rt,
    client,
    directors,
    rs,
    lanIf,
    birdc: (...args) => set.exec(rt, 'birdc', ['-s', sock, ...args], { allowFail: true }),
    nextHops() {
      const out = set.exec(rt, 'ip', ['-j', 'route', 'show', `${VIP}/32`], { allowFail: true });
      const routes = JSON.parse(out || '[]') as { gateway?: string; nexthops?: { gateway: string }[] }[];
      const hops = routes.flatMap((r) =>
        r.nexthops ? r.nexthops.map((h) => h.gateway) : r.gateway ? [r.gateway] : [],
      );
      return hops.sort();
    },
    dispose() {
      set.dispose();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return topo;
}

/** The director config of director i: one mh service on VIP:80 over the real servers, TCP checks, quorum. */
export function directorYaml(i: number, spec: DirectorSpec, rsCount: number, quorum: number): string {
  const check = '{ type: TCP_CHECK, connect_timeout: 0.5, retry: 0, delay_loop: 0.5 }';
  return [
    'director:',
    ...(spec.sloppy !== undefined ? [`  sysctl: { sloppy_tcp: ${spec.sloppy} }`] : []),
    '  services:',
    `    - vip: ${VIP}`,
    '      port: 80',
    `      scheduler: ${spec.scheduler ?? 'mh'}`,
    `      quorum: ${quorum}`,
    ...(spec.schedFlags ? [`      sched_flags: [${spec.schedFlags.join(', ')}]`] : []),
    '      real_servers:',
    ...Array.from({ length: rsCount }, (_, j) => `        - { address: ${rsAddr(j)}, weight: 1, checks: [${check}] }`),
    'bgp:',
    '  local_as: 65001',
    `  local_address: ${directorAddr(i)}`,
    '  hold_time: 3',
    '  keepalive_time: 1',
    `  neighbors: [{ address: ${ROUTER}, as: 65000, bfd: ${spec.bfd} }]`,
    '  withdraw_delay_ms: 300',
    '',
  ].join('\n');
}

export interface RunningDirector {
  child: ChildProcess;
  socket: string;
  stderr: () => string;
}

export async function startDirector(t: BgpTopo, i: number, yaml: string): Promise<RunningDirector> {
  const d = join(t.dir, `d${i + 1}`);
  mkdirSync(d, { recursive: true });
  writeFileSync(join(d, 'director.yaml'), yaml);
  const socket = join(d, 'director.sock');
  const child = t.set.spawn(
    t.directors[i],
    process.execPath,
    ['--import', 'tsx', DIRECTOR_ENTRY, 'director', '--socket', socket, '--config', join(d, 'director.yaml')],
    { env: { ...process.env, TIERLB_LOG_LEVEL: 'info' } },
  );
  let err = '';
  child.stderr?.on('data', (b) => {
    err += b.toString();
  });
  child.stdout?.resume();
  for (let k = 0; k < 300; k++) {
    if (child.exitCode !== null) throw new Error(`director ${i + 1} exited ${child.exitCode}: ${err}`);
    try {
      await request(socket, { op: 'ping' }, 500);
      return { child, socket, stderr: () => err };
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`director ${i + 1} did not come up: ${err}`);
}

export async function signalDirector(d: RunningDirector, sig: NodeJS.Signals): Promise<void> {
  if (d.child.exitCode !== null || d.child.signalCode !== null) return;
  const exited = once(d.child, 'exit');
  // the child is `ip netns exec ... node`: ip execs node, so the pid is the director's
  d.child.kill(sig);
  await exited;
}

/** Poll `cond` every 25 ms; resolves with the milliseconds it took, rejects after `timeoutMs`. */
export async function waitFor(what: string, cond: () => boolean, timeoutMs: number): Promise<number> {
  const t0 = performance.now();
  while (performance.now() - t0 < timeoutMs) {
    if (cond()) return Math.round(performance.now() - t0);
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** The body a real server sends for /big. */
export function bigBody(bytes: number): Buffer {
  return Buffer.from(new Uint8Array(bytes).map((_, k) => (k * 7) % 251));
}

/** An HTTP server on 0.0.0.0:80 in a real server's namespace answering its name (node, no dependencies). */
export async function startHttp(t: BgpTopo, i: number, bodyBytes = 0): Promise<ChildProcess> {
  // bodyBytes > 0: GET /big answers bodyBytes of the pattern of bigBody()
  const code = `const big = Buffer.alloc(${bodyBytes}, 0).map((_, k) => (k * 7) % 251);
require('http').createServer((q,s)=>q.url === '/big' ? s.end(big) : s.end('rs${i + 1}\\n')).listen(80, () => console.log('ready'))`;
  const child = t.set.spawn(t.rs[i], process.execPath, ['-e', code]);
  await new Promise<void>((resolve, reject) => {
    child.stdout?.once('data', () => resolve());
    child.once('exit', (c) => reject(new Error(`rs${i + 1} server exited ${c}`)));
  });
  return child;
}
