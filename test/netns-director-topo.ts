/**
 * The director test topology (shared by the netns-director tests and bench/l4): namespaces client, director, rs1,
 * rs2 joined by a bridge that lives in its own namespace. Director 10.77.1.2 holds the VIP 10.77.1.100; the real
 * servers hold the VIP on lo with arp_ignore/arp_announce (DR), and route back through the director when asked (NAT).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from '../src/director/client.js';
import { NetnsSet, runPrefix } from '../src/lab/netns.js';

export const VIP = '10.77.1.100';
export const CLIENT = '10.77.1.10';
export const DIRECTOR = '10.77.1.2';
export const RS1 = '10.77.1.11';
export const RS2 = '10.77.1.12';

export interface Topo {
  set: NetnsSet;
  client: string;
  director: string;
  rs1: string;
  rs2: string;
  bridge: string;
  dir: string;
  socket: string;
  macs: Record<'client' | 'director' | 'rs1' | 'rs2', string>;
  dispose(): void;
}

export function buildTopo(tag = 'd'): Topo {
  const set = new NetnsSet(runPrefix(tag));
  const bridge = set.add('br');
  set.exec(bridge, 'ip', ['link', 'add', 'br0', 'type', 'bridge']);
  set.exec(bridge, 'ip', ['link', 'set', 'br0', 'up']);
  const hosts = { client: CLIENT, director: DIRECTOR, rs1: RS1, rs2: RS2 } as const;
  const ns: Record<string, string> = {};
  const macs: Record<string, string> = {};
  let i = 0;
  for (const [name, addr] of Object.entries(hosts)) {
    const n = set.add(name);
    ns[name] = n;
    const peer = `p${i++}`;
    set.veth({ ns: n, name: 'eth0' }, { ns: bridge, name: peer });
    set.exec(bridge, 'ip', ['link', 'set', peer, 'master', 'br0', 'up']);
    set.exec(n, 'ip', ['addr', 'add', `${addr}/24`, 'dev', 'eth0']);
    set.exec(n, 'ip', ['link', 'set', 'eth0', 'up']);
    set.exec(n, 'sysctl', ['-qw', 'net.ipv6.conf.all.disable_ipv6=1']);
    macs[name] = JSON.parse(set.exec(n, 'ip', ['-j', 'link', 'show', 'eth0']))[0].address;
  }
  set.exec(ns.director, 'ip', ['addr', 'add', `${VIP}/24`, 'dev', 'eth0']);
  for (const rs of ['rs1', 'rs2']) {
    set.exec(ns[rs], 'ip', ['addr', 'add', `${VIP}/32`, 'dev', 'lo']);
    for (const k of ['all', 'eth0'])
      set.exec(ns[rs], 'sysctl', ['-qw', `net.ipv4.conf.${k}.arp_ignore=1`, `net.ipv4.conf.${k}.arp_announce=2`]);
  }
  const dir = mkdtempSync(join(tmpdir(), 'tierlb-dir-'));
  const topo: Topo = {
    set,
    client: ns.client,
    director: ns.director,
    rs1: ns.rs1,
    rs2: ns.rs2,
    bridge,
    dir,
    socket: join(dir, 'director.sock'),
    macs: macs as Topo['macs'],
    dispose() {
      set.dispose();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return topo;
}

export const VIP6 = 'fd00:77:1::100';
export const CLIENT6 = 'fd00:77:1::10';
export const DIRECTOR6 = 'fd00:77:1::2';
export const RS16 = 'fd00:77:1::11';
export const RS26 = 'fd00:77:1::12';

/** The IPv4 topology's shape with IPv6 instead: no IPv4 addresses, DAD off so addresses are usable at once. */
export function buildTopo6(): Topo {
  const set = new NetnsSet(runPrefix('d6'));
  const bridge = set.add('br');
  set.exec(bridge, 'ip', ['link', 'add', 'br0', 'type', 'bridge']);
  set.exec(bridge, 'ip', ['link', 'set', 'br0', 'up']);
  const ns: Record<string, string> = {};
  const macs: Record<string, string> = {};
  const hosts = { client: CLIENT6, director: DIRECTOR6, rs1: RS16, rs2: RS26 };
  let i = 0;
  for (const [name, addr] of Object.entries(hosts)) {
    const n = set.add(name);
    ns[name] = n;
    const peer = `q${i++}`;
    set.veth({ ns: n, name: 'eth0' }, { ns: bridge, name: peer });
    set.exec(bridge, 'ip', ['link', 'set', peer, 'master', 'br0', 'up']);
    // hosts take no redirects: a NAT reply the director forwards back out of eth0 must keep going through it
    set.exec(n, 'sysctl', [
      '-qw',
      'net.ipv6.conf.all.disable_ipv6=0',
      'net.ipv6.conf.all.accept_dad=0',
      'net.ipv6.conf.default.accept_dad=0',
      'net.ipv6.conf.all.accept_redirects=0',
      'net.ipv6.conf.default.accept_redirects=0',
    ]);
    set.exec(n, 'ip', ['-6', 'addr', 'add', `${addr}/64`, 'dev', 'eth0', 'nodad']);
    set.exec(n, 'ip', ['link', 'set', 'eth0', 'up']);
    macs[name] = JSON.parse(set.exec(n, 'ip', ['-j', 'link', 'show', 'eth0']))[0].address;
  }
  set.exec(ns.director, 'ip', ['-6', 'addr', 'add', `${VIP6}/64`, 'dev', 'eth0', 'nodad']);
  // DR: the VIP on lo (/128); Linux answers neighbour solicitations only for the receiving interface's own addresses
  for (const rs of ['rs1', 'rs2']) set.exec(ns[rs], 'ip', ['-6', 'addr', 'add', `${VIP6}/128`, 'dev', 'lo', 'nodad']);
  const dir = mkdtempSync(join(tmpdir(), 'tierlb-dir6-'));
  const dispose = () => {
    set.dispose();
    rmSync(dir, { recursive: true, force: true });
  };
  const hostNs = ns as Pick<Topo, 'client' | 'director' | 'rs1' | 'rs2'>;
  return { ...hostNs, set, bridge, dir, socket: join(dir, 'director.sock'), macs: macs as Topo['macs'], dispose };
}

/** An HTTP server in a namespace answering "<name> <client address>" (python3, no dependencies). */
export function httpServer(t: Topo, ns: string, name: string, port: number): ChildProcess {
  const code = `
import http.server, socketserver
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.0'
    def do_GET(self):
        body = ('%s %s\\n' % (${JSON.stringify(name)}, self.client_address[0])).encode()
        self.send_response(200); self.send_header('Content-Length', str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    allow_reuse_address = True
    daemon_threads = True
S(('0.0.0.0', ${port}), H).serve_forever()
`;
  return t.set.spawn(ns, '/usr/bin/python3', ['-c', code]);
}

export async function waitPort(t: Topo, ns: string, port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const out = t.set.exec(ns, 'ss', ['-Hltn', `sport = :${port}`], { allowFail: true });
    if (out.trim()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listens on ${port} in ${ns}`);
}

/** curl from the client; returns the body or '' on failure. */
export function curl(t: Topo, url: string, extra: string[] = []): string {
  return t.set.exec(t.client, 'curl', ['-s', '--max-time', '3', ...extra, url], { allowFail: true }).trim();
}

/** `tierlb` from the sources: node --import tsx DIRECTOR_ENTRY director ... */
export const DIRECTOR_ENTRY = new URL('../src/cli/entry.ts', import.meta.url).pathname;

/** Start the daemon in the director namespace; resolves once its socket answers. */
export async function startDirector(
  t: Topo,
  args: string[] = [],
): Promise<{ child: ChildProcess; stderr: () => string }> {
  const child = t.set.spawn(
    t.director,
    process.execPath,
    ['--import', 'tsx', DIRECTOR_ENTRY, 'director', '--socket', t.socket, ...args],
    {
      env: { ...process.env, TIERLB_LOG_LEVEL: 'info' },
    },
  );
  let err = '';
  child.stderr?.on('data', (d) => {
    err += d.toString();
  });
  child.stdout?.on('data', () => {});
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`director exited ${child.exitCode}: ${err}`);
    try {
      await request(t.socket, { op: 'ping' }, 500);
      return { child, stderr: () => err };
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`director did not come up: ${err}`);
}

export async function stopDirector(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return child.exitCode;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  await exited;
  return child.exitCode;
}

/** ipvsadm through the daemon's socket. */
export async function adm(
  t: Topo,
  argv: string[],
  stdin?: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const line = await request(t.socket, stdin === undefined ? { argv } : { argv, stdin });
  return JSON.parse(line);
}

export function bg(cmd: string, args: string[]): ChildProcess {
  return spawn(cmd, args, { stdio: 'pipe' });
}
