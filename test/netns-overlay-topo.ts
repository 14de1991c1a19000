/**
 * The overlay topology the netns tests share (not a test file itself):
 *
 *   lb ──┐                       underlay 10.200.0.0/24 on a bridge in the `ul` namespace
 *   hv1 ─┼── ul (bridge ulbr)    lb .1, hv1 .2, hv2 .3 — the VTEPs
 *   hv2 ─┘
 *   overlay VNI 100, 172.16.100.0/24, MTU 1450: lb's br100 .1; backends be1 .11, be2 .12 behind hv1's br100,
 *   be3 .13 behind hv2's br100 (each backend is a namespace with a veth into its hypervisor's bridge).
 *   client ── lb: a separate "public" link 192.168.50.0/24 (client .10, lb eth1 .1), as the LB node's eth1.
 *
 * Overlay links are made by `tierlb overlay up` from the generated configs; everything lives in namespaces of one
 * NetnsSet, so dispose() removes it all (also on failure and interrupt).
 */
import { type ChildProcess, execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NetnsSet, runPrefix } from '../src/lab/netns.js';

export const VNI = 100;
export const MTU = 1450;
export const UNDERLAY = { lb: '10.200.0.1', hv1: '10.200.0.2', hv2: '10.200.0.3' } as const;
export const LB_OVERLAY_IP = '172.16.100.1';
export const LB_MAC = '02:00:00:64:00:01';
export const LB_PUBLIC_IP = '192.168.50.1';
export const CLIENT_IP = '192.168.50.10';

export interface Backend {
  name: string;
  ns: string;
  ip: string;
  mac: string;
  hv: 'hv1' | 'hv2';
  /** The host end of the backend's veth on its hypervisor. */
  port: string;
}

export interface Topology {
  set: NetnsSet;
  ul: string;
  lb: string;
  hv1: string;
  hv2: string;
  client: string;
  backends: Backend[];
  dir: string;
  /** Overlay config file of each host. */
  configs: { lb: string; hv1: string; hv2: string };
  dispose(): void;
}

const REPO = new URL('..', import.meta.url).pathname;
/** The entry that runs `tierlb` from the sources (a file: cluster workers inherit execArgv, so no `node -e`). */
const CLI = new URL('./netns-overlay-cli.ts', import.meta.url).pathname;

/** Run `tierlb ARGS` from the sources (tsx); never throws, returns the exit code and output. */
export function tierlb(args: string[], timeoutMs = 30_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', CLI, ...args],
      { cwd: REPO, encoding: 'utf8', timeout: timeoutMs },
      (err, stdout, stderr) => {
        const c = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code: c, stdout, stderr });
      },
    );
  });
}

/** Spawn `tierlb ARGS` from the sources inside a namespace (killed by the set's dispose()). */
export function spawnTierlb(set: NetnsSet, ns: string, args: string[]): ChildProcess {
  return set.spawn(ns, process.execPath, ['--import', 'tsx', CLI, ...args], { cwd: REPO });
}

export function buildTopology(tag = 'o'): Topology {
  const set = new NetnsSet(runPrefix(tag));
  const dir = mkdtempSync(join(tmpdir(), `${set.prefix}-`));
  // the namespaces go with the set (exit, SIGINT/SIGTERM); the temporary files go with the process
  const rmDir = () => rmSync(dir, { recursive: true, force: true });
  process.once('exit', rmDir);
  try {
    const ul = set.add('ul');
    const lb = set.add('lb');
    const hv1 = set.add('hv1');
    const hv2 = set.add('hv2');
    const client = set.add('cl');
    const sh = (ns: string, ...args: string[]) => execFileSync('ip', ['-n', ns, ...args], { stdio: 'pipe' });
    sh(ul, 'link', 'add', 'ulbr', 'type', 'bridge');
    sh(ul, 'link', 'set', 'ulbr', 'up');
    for (const [host, ns] of [
      ['lb', lb],
      ['hv1', hv1],
      ['hv2', hv2],
    ] as const) {
      set.veth({ ns: ul, name: `u-${host}` }, { ns, name: 'eth0' });
      sh(ul, 'link', 'set', `u-${host}`, 'master', 'ulbr', 'up');
      sh(ns, 'addr', 'add', `${UNDERLAY[host]}/24`, 'dev', 'eth0');
      sh(ns, 'link', 'set', 'eth0', 'up');
    }
    set.veth({ ns: lb, name: 'eth1' }, { ns: client, name: 'eth0' });
    sh(lb, 'addr', 'add', `${LB_PUBLIC_IP}/24`, 'dev', 'eth1');
    sh(lb, 'link', 'set', 'eth1', 'up');
    sh(client, 'addr', 'add', `${CLIENT_IP}/24`, 'dev', 'eth0');
    sh(client, 'link', 'set', 'eth0', 'up');
    const backends: Backend[] = [
      { name: 'be1', hv: 'hv1', ip: '172.16.100.11', mac: '02:00:00:64:00:0b', port: 'pbe1', ns: '' },
      { name: 'be2', hv: 'hv1', ip: '172.16.100.12', mac: '02:00:00:64:00:0c', port: 'pbe2', ns: '' },
      { name: 'be3', hv: 'hv2', ip: '172.16.100.13', mac: '02:00:00:64:00:0d', port: 'pbe3', ns: '' },
    ];
    for (const b of backends) {
      b.ns = set.add(b.name);
      const hvNs = b.hv === 'hv1' ? hv1 : hv2;
      set.veth({ ns: hvNs, name: b.port }, { ns: b.ns, name: 'eth0' });
      sh(hvNs, 'link', 'set', b.port, 'mtu', String(MTU));
      sh(b.ns, 'link', 'set', 'eth0', 'address', b.mac, 'mtu', String(MTU), 'up');
      sh(b.ns, 'addr', 'add', `${b.ip}/24`, 'dev', 'eth0');
    }
    const remotes = (self: keyof typeof UNDERLAY) =>
      Object.entries(UNDERLAY)
        .filter(([h]) => h !== self)
        .map(([, a]) => a);
    const fdbFor = (self: keyof typeof UNDERLAY) => [
      ...(self === 'lb' ? [] : [{ mac: LB_MAC, dst: UNDERLAY.lb }]),
      ...backends.filter((b) => b.hv !== self).map((b) => ({ mac: b.mac, dst: UNDERLAY[b.hv] })),
    ];
    const yaml = (self: keyof typeof UNDERLAY) => {
      const net = [
        `    - vni: ${VNI}`,
        `      mtu: ${MTU}`,
        `      remotes: [${remotes(self).join(', ')}]`,
        '      fdb:',
        ...fdbFor(self).map((e) => `        - { mac: "${e.mac}", dst: ${e.dst} }`),
      ];
      if (self === 'lb') net.push(`      addresses: [${LB_OVERLAY_IP}/24]`, `      mac: "${LB_MAC}"`);
      else
        net.push(
          `      ports: [${backends
            .filter((b) => b.hv === self)
            .map((b) => b.port)
            .join(', ')}]`,
        );
      return ['overlay:', `  local: ${UNDERLAY[self]}`, `  dstport: 4789`, '  networks:', ...net, ''].join('\n');
    };
    const configs = { lb: join(dir, 'lb.yaml'), hv1: join(dir, 'hv1.yaml'), hv2: join(dir, 'hv2.yaml') };
    for (const h of ['lb', 'hv1', 'hv2'] as const) writeFileSync(configs[h], yaml(h));
    return {
      set,
      ul,
      lb,
      hv1,
      hv2,
      client,
      backends,
      dir,
      configs,
      dispose() {
        set.dispose();
        rmDir();
        process.off('exit', rmDir);
      },
    };
  } catch (e) {
    set.dispose();
    rmDir();
    throw e;
  }
}

/** `tierlb overlay up` on the LB node and both hypervisors. */
export async function overlayUpAll(t: Topology): Promise<void> {
  for (const h of ['lb', 'hv1', 'hv2'] as const) {
    const r = await tierlb(['overlay', 'up', '--config', t.configs[h], '--netns', t[h], '--quiet']);
    if (r.code !== 0) throw new Error(`overlay up on ${h} exited ${r.code}: ${r.stderr}`);
  }
}

/**
 * A small HTTP server in each backend namespace that says who it is: `{"name","peer","bytes","sha256"}` (peer: the
 * address the connection came from; bytes and sha256 of the request body). Resolves when all listen.
 */
export async function startBackends(t: Topology, port = 8080): Promise<void> {
  const code = `
const http = require('node:http'), crypto = require('node:crypto');
const [name, port] = process.argv.slice(1);
http.createServer((req, res) => {
  const h = crypto.createHash('sha256'); let n = 0;
  req.on('data', (c) => { n += c.length; h.update(c); });
  req.on('end', () => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ name, peer: req.socket.remoteAddress, bytes: n, sha256: h.digest('hex') }));
  });
}).listen(Number(port), '0.0.0.0', () => console.log('ready'));`;
  await Promise.all(
    t.backends.map(
      (b) =>
        new Promise<void>((resolve, reject) => {
          const child = t.set.spawn(b.ns, process.execPath, ['-e', code, b.name, String(port)]);
          let out = '';
          const timer = setTimeout(() => reject(new Error(`backend ${b.name} did not start: ${out}`)), 10_000);
          child.stdout?.on('data', (d) => {
            out += d;
            if (out.includes('ready')) {
              clearTimeout(timer);
              resolve();
            }
          });
          child.stderr?.on('data', (d) => {
            out += d;
          });
          child.on('exit', (c) => {
            clearTimeout(timer);
            reject(new Error(`backend ${b.name} exited ${c}: ${out}`));
          });
        }),
    ),
  );
}

/** A tcpdump on the LB node's underlay port (a bridge device itself sees only flooded and local frames) writing UDP 4789 to a pcap; stop() ends it and returns the file. */
export async function captureUnderlay(t: Topology, name = 'underlay.pcap'): Promise<{ stop(): Promise<string> }> {
  const file = join(t.dir, name);
  const child = t.set.spawn(t.ul, 'tcpdump', [
    '-i',
    'u-lb',
    '-Z',
    'root',
    '--immediate-mode',
    '-B',
    '16384',
    '-U',
    '-n',
    '-s',
    '256',
    '-w',
    file,
    'udp',
    'port',
    '4789',
  ]);
  let err = '';
  child.stderr?.on('data', (d) => {
    err += d;
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setInterval(() => {
      if (err.includes('listening on')) {
        clearInterval(timer);
        child.off('exit', onExit);
        resolve();
      }
    }, 20);
    const onExit = (c: number | null) => {
      clearInterval(timer);
      reject(new Error(`tcpdump exited ${c}: ${err}`));
    };
    child.once('exit', onExit);
  });
  return {
    stop: async () => {
      // tcpdump stops at SIGINT without draining what the kernel still holds for it (under load it lags behind):
      // wait until the file has stopped growing first
      let last = -1;
      for (let i = 0; i < 50; i++) {
        await new Promise((r) => setTimeout(r, 200));
        const size = existsSync(file) ? statSync(file).size : 0;
        if (size === last) break;
        last = size;
      }
      if (child.exitCode !== null) return file;
      await new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGINT');
      });
      if (process.env.TIERLB_TEST_DEBUG) process.stderr.write(err);
      return file;
    },
  };
}

export interface VxlanPacket {
  src: string;
  dst: string;
  vni: number;
  innerSrc: string;
  innerDst: string;
  /** The length on the wire (with GSO on the veths one captured "packet" can hold many segments). */
  frameLen: number;
  /** The inner TCP SYN's MSS option. */
  mss?: number;
}

/** The VXLAN packets of a pcap, decoded by tshark. */
export function vxlanPackets(pcap: string): VxlanPacket[] {
  const out = execFileSync(
    'tshark',
    [
      '-r',
      pcap,
      '-n',
      '-Y',
      'vxlan',
      '-T',
      'fields',
      '-E',
      'separator=/t',
      '-E',
      'aggregator=;',
      '-e',
      'ip.src',
      '-e',
      'ip.dst',
      '-e',
      'vxlan.vni',
      '-e',
      'frame.len',
      '-e',
      'tcp.options.mss_val',
    ],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const rows: VxlanPacket[] = [];
  for (const line of out.split('\n')) {
    if (!line.trim()) continue;
    // ip.src / ip.dst list the outer address first, then the inner one
    const [src, dst, vni, len, mss] = line.split('\t');
    const [oSrc, iSrc = ''] = src.split(';');
    const [oDst, iDst = ''] = dst.split(';');
    rows.push({
      src: oSrc,
      dst: oDst,
      vni: Number(vni),
      innerSrc: iSrc,
      innerDst: iDst,
      frameLen: Number(len),
      mss: mss ? Number(mss) : undefined,
    });
  }
  return rows;
}
