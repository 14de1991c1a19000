/**
 * VRRP I/O on a real interface: the protocol-112 raw socket (IP_HDRINCL, TTL 255, multicast membership on the
 * interface), gratuitous ARP over AF_PACKET (koffi), the virtual addresses (`ip addr`), interface state and
 * script runs. Everything the pure state machine asks for happens here.
 */
import { execFile, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { promisify } from 'node:util';
import type { VirtualAddress } from './types.js';
import { VRRP_MCAST_GROUP, VRRP_PROTO } from './types.js';

const require = createRequire(import.meta.url);
const execFileP = promisify(execFile);

const SOL_SOCKET = 1;
const SO_BINDTODEVICE = 25;
const IPPROTO_IP = 0;
const IP_HDRINCL = 3;
const IP_MULTICAST_IF = 32;
const IP_MULTICAST_TTL = 33;
const IP_MULTICAST_LOOP = 34;
const IP_ADD_MEMBERSHIP = 35;
const IP_DROP_MEMBERSHIP = 36;

export interface InterfaceInfo {
  name: string;
  index: number;
  mac: Buffer;
  /** the primary IPv4 address (the first one that is not secondary) */
  primaryIp: string | undefined;
  addresses: string[];
}

function sysfs(name: string, file: string): string | undefined {
  try {
    return readFileSync(`/sys/class/net/${name}/${file}`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

export async function interfaceInfo(name: string): Promise<InterfaceInfo> {
  const index = Number(sysfs(name, 'ifindex'));
  if (!index) throw new Error(`no such interface: ${name}`);
  const mac = Buffer.from(
    (sysfs(name, 'address') ?? '00:00:00:00:00:00').split(':').map((h) => Number.parseInt(h, 16)),
  );
  const { stdout } = await execFileP('ip', ['-4', '-j', 'addr', 'show', 'dev', name]);
  const j = JSON.parse(stdout || '[]') as { addr_info?: { local: string; secondary?: boolean }[] }[];
  const infos = j[0]?.addr_info ?? [];
  return {
    name,
    index,
    mac,
    primaryIp: infos.find((a) => !a.secondary)?.local,
    addresses: infos.map((a) => a.local),
  };
}

/** Administratively up with a carrier (operstate "unknown" counts: lo, dummy). A missing interface is down. */
export function interfaceUp(name: string): boolean {
  const flags = Number(sysfs(name, 'flags'));
  if (!flags || (flags & 1) === 0) return false;
  const op = sysfs(name, 'operstate');
  return op === 'up' || op === 'unknown';
}

function ipBuf(addr: string): Buffer {
  return Buffer.from(addr.split('.').map(Number));
}

/** struct ip_mreqn { imr_multiaddr; imr_address; imr_ifindex } */
function mreqn(group: string, ifindex: number): Buffer {
  const b = Buffer.alloc(12);
  ipBuf(group).copy(b, 0);
  b.writeInt32LE(ifindex, 8);
  return b;
}

interface RawSocket {
  on(ev: 'message', cb: (buf: Buffer, addr: string) => void): void;
  on(ev: 'error', cb: (e: Error) => void): void;
  send(buf: Buffer, off: number, len: number, addr: string, cb: (e: Error | null, n: number) => void): void;
  setOption(level: number, opt: number, v: number | Buffer, len?: number): void;
  close(): void;
}

/** A raw IP socket for protocol 112 bound to one interface; we write the IP header ourselves (TTL 255). */
export class VrrpSocket {
  private readonly sock: RawSocket;
  private joined = false;

  constructor(
    private readonly ifc: InterfaceInfo,
    onPacket: (buf: Buffer) => void,
    onError: (e: Error) => void,
    multicast = true,
  ) {
    const raw = require('raw-socket');
    this.sock = raw.createSocket({ addressFamily: raw.AddressFamily.IPv4, protocol: VRRP_PROTO }) as RawSocket;
    this.sock.on('message', (buf) => onPacket(buf));
    this.sock.on('error', onError);
    const name = Buffer.from(`${ifc.name}\0`);
    this.sock.setOption(SOL_SOCKET, SO_BINDTODEVICE, name, name.length);
    this.sock.setOption(IPPROTO_IP, IP_HDRINCL, 1);
    this.sock.setOption(IPPROTO_IP, IP_MULTICAST_TTL, 255);
    this.sock.setOption(IPPROTO_IP, IP_MULTICAST_LOOP, 0);
    const m = mreqn('0.0.0.0', ifc.index);
    this.sock.setOption(IPPROTO_IP, IP_MULTICAST_IF, m, m.length);
    if (multicast) {
      const j = mreqn(VRRP_MCAST_GROUP, ifc.index);
      this.sock.setOption(IPPROTO_IP, IP_ADD_MEMBERSHIP, j, j.length);
      this.joined = true;
    }
  }

  /** Send a complete IPv4 packet (header included) to its destination. */
  send(packet: Buffer, dst: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.sock.send(packet, 0, packet.length, dst, (e) => (e ? reject(e) : resolve()));
    });
  }

  close(): void {
    if (this.joined) {
      const j = mreqn(VRRP_MCAST_GROUP, this.ifc.index);
      try {
        this.sock.setOption(IPPROTO_IP, IP_DROP_MEMBERSHIP, j, j.length);
      } catch {}
      this.joined = false;
    }
    this.sock.close();
  }
}

const AF_PACKET = 17;
const SOCK_RAW = 3;
const ETH_P_ARP = 0x0806;

interface PacketLib {
  socket: (d: number, t: number, p: number) => number;
  sendto: (fd: number, buf: Buffer, len: number, flags: number, addr: Buffer, alen: number) => number;
  close: (fd: number) => number;
  errno: () => number;
}
let packetLib: PacketLib | undefined;

function libc(): PacketLib {
  if (packetLib) return packetLib;
  const koffi = require('koffi');
  const lib = koffi.load('libc.so.6');
  packetLib = {
    socket: lib.func('int socket(int, int, int)'),
    sendto: lib.func('long sendto(int, const void *, size_t, int, const void *, uint32_t)'),
    close: lib.func('int close(int)'),
    errno: () => koffi.errno() as number,
  };
  return packetLib;
}

/** A gratuitous ARP request (sender = target = the address), broadcast, as keepalived sends it. */
export function garpFrame(mac: Buffer, addr: string): Buffer {
  const f = Buffer.alloc(42);
  f.fill(0xff, 0, 6);
  mac.copy(f, 6);
  f.writeUInt16BE(ETH_P_ARP, 12);
  f.writeUInt16BE(1, 14); // Ethernet
  f.writeUInt16BE(0x0800, 16);
  f[18] = 6;
  f[19] = 4;
  f.writeUInt16BE(1, 20); // request
  mac.copy(f, 22);
  ipBuf(addr).copy(f, 28);
  f.fill(0xff, 32, 38);
  ipBuf(addr).copy(f, 38);
  return f;
}

/** Send gratuitous ARPs for the addresses out of one interface through an AF_PACKET socket. */
export function sendGarp(ifc: InterfaceInfo, addrs: string[]): void {
  const c = libc();
  const fd = c.socket(AF_PACKET, SOCK_RAW, ((ETH_P_ARP & 0xff) << 8) | (ETH_P_ARP >> 8));
  if (fd < 0) throw new Error(`socket(AF_PACKET) failed: errno ${c.errno()}`);
  try {
    // struct sockaddr_ll { u16 family; be16 protocol; i32 ifindex; u16 hatype; u8 pkttype; u8 halen; u8 addr[8] }
    const sll = Buffer.alloc(20);
    sll.writeUInt16LE(AF_PACKET, 0);
    sll.writeUInt16BE(ETH_P_ARP, 2);
    sll.writeInt32LE(ifc.index, 4);
    sll[11] = 6;
    sll.fill(0xff, 12, 18);
    for (const a of addrs) {
      const f = garpFrame(ifc.mac, a);
      if (c.sendto(fd, f, f.length, 0, sll, sll.length) < 0)
        throw new Error(`gratuitous ARP for ${a} on ${ifc.name} failed: errno ${c.errno()}`);
    }
  } finally {
    c.close(fd);
  }
}

/** Add or remove the virtual addresses (existing / missing ones are not errors). */
export async function setVips(vips: VirtualAddress[], defaultDev: string, add: boolean): Promise<void> {
  for (const v of vips) {
    const args = ['addr', add ? 'add' : 'del', `${v.addr}/${v.prefixLen}`, 'dev', v.dev ?? defaultDev];
    if (add && v.label) args.push('label', v.label);
    try {
      await execFileP('ip', args);
    } catch (e) {
      const msg = String((e as { stderr?: string }).stderr ?? e);
      if (!/File exists|Cannot assign requested address|Address not found/.test(msg))
        throw new Error(`ip ${args.join(' ')}: ${msg.trim()}`);
    }
  }
}

/** Split a command line the way keepalived does: whitespace separates, double or single quotes group. */
export function splitCommand(cmd: string): string[] {
  const out: string[] = [];
  const re = /"([^"]*)"|'([^']*)'|(\S+)/g;
  for (let m = re.exec(cmd); m; m = re.exec(cmd)) out.push(m[1] ?? m[2] ?? m[3]);
  return out;
}

/** Run a command (no shell) with a timeout; resolves with its exit code (-1 when it could not run or timed out). */
export function runCommand(cmd: string, extraArgs: string[] = [], timeoutMs = 0): Promise<number> {
  const [file, ...args] = splitCommand(cmd);
  return new Promise((resolve) => {
    if (!file) return resolve(-1);
    const child = spawn(file, [...args, ...extraArgs], { stdio: 'ignore' });
    let timer: NodeJS.Timeout | undefined;
    if (timeoutMs > 0)
      timer = setTimeout(() => {
        child.kill('SIGKILL');
      }, timeoutMs);
    child.on('error', () => {
      if (timer) clearTimeout(timer);
      resolve(-1);
    });
    child.on('exit', (code) => {
      if (timer) clearTimeout(timer);
      resolve(code ?? -1);
    });
  });
}
