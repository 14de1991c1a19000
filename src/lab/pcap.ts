/**
 * A small pcap reader (pure): the classic libpcap file format (µs and ns, either byte order), link types Ethernet and
 * Linux cooked (SLL), and the layers the lab's trace and doctor need — Ethernet (802.1Q skipped), ARP, IPv4, TCP,
 * UDP, VXLAN (with the inner Ethernet frame decoded the same way) and VRRP.
 */
import { TierlbError } from '../common/errors.js';

export interface TcpInfo {
  sport: number;
  dport: number;
  seq: number;
  ack: number;
  /** FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10 */
  flags: number;
  /** bytes of TCP payload (from the IP length, so a truncated capture still counts them) */
  payload: number;
  /** the first captured payload bytes (up to 48, latin1), to tell requests apart */
  head?: string;
}

export interface Frame {
  /** seconds since the epoch, with fractions */
  ts: number;
  /** original length on the wire */
  len: number;
  src: string;
  dst: string;
  ethertype: number;
  arp?: { op: number; senderMac: string; senderIp: string; targetIp: string };
  ip?: { src: string; dst: string; proto: number; ttl: number; id: number; len: number };
  tcp?: TcpInfo;
  udp?: { sport: number; dport: number };
  vxlan?: { vni: number; inner: Frame };
  vrrp?: { version: number; vrid: number; priority: number; addrs: string[] };
}

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;
export const VXLAN_PORT = 4789;

const mac = (b: Uint8Array, o: number) =>
  Array.from(b.subarray(o, o + 6), (x) => x.toString(16).padStart(2, '0')).join(':');
const ip4 = (b: Uint8Array, o: number) => `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;

/** A file that is not a classic pcap (pcapng is not read). */
export class PcapError extends TierlbError {
  override readonly code = 'EPCAP_FORMAT';
  constructor(message: string) {
    super('EPCAP_FORMAT', message);
    this.name = 'PcapError';
  }
}

/** All frames of a pcap file. `vxlanPorts`: UDP destination ports decoded as VXLAN. */
export function parsePcap(buf: Uint8Array, vxlanPorts: number[] = [VXLAN_PORT]): { linktype: number; frames: Frame[] } {
  if (buf.length < 24) throw new PcapError('not a pcap file: shorter than its header');
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const magic = dv.getUint32(0, true);
  let le: boolean;
  let nano: boolean;
  if (magic === 0xa1b2c3d4 || magic === 0xa1b23c4d) {
    le = true;
    nano = magic === 0xa1b23c4d;
  } else if (magic === 0xd4c3b2a1 || magic === 0x4d3cb2a1) {
    le = false;
    nano = magic === 0x4d3cb2a1;
  } else throw new PcapError(`not a pcap file (magic 0x${magic.toString(16)}; pcapng is not read)`);
  const linktype = dv.getUint32(20, le) & 0x0fffffff;
  const frames: Frame[] = [];
  let o = 24;
  while (o + 16 <= buf.length) {
    const sec = dv.getUint32(o, le);
    const frac = dv.getUint32(o + 4, le);
    const incl = dv.getUint32(o + 8, le);
    const orig = dv.getUint32(o + 12, le);
    o += 16;
    if (o + incl > buf.length) break; // a capture cut short while writing: keep what is whole
    const data = buf.subarray(o, o + incl);
    o += incl;
    const ts = sec + frac / (nano ? 1e9 : 1e6);
    const f = linktype === 113 ? decodeSll(data, ts, orig, vxlanPorts) : decodeEthernet(data, ts, orig, vxlanPorts);
    if (f) frames.push(f);
  }
  return { linktype, frames };
}

/** Linux cooked capture v1 (tcpdump -i any): no destination MAC; the source is in the header. */
function decodeSll(b: Uint8Array, ts: number, len: number, vx: number[]): Frame | null {
  if (b.length < 16) return null;
  const halen = (b[4] << 8) | b[5];
  const src = halen === 6 ? mac(b, 6) : '';
  const f: Frame = { ts, len, src, dst: '', ethertype: (b[14] << 8) | b[15] };
  decodeL3(b, 16, f, vx);
  return f;
}

export function decodeEthernet(b: Uint8Array, ts: number, len: number, vx: number[] = [VXLAN_PORT]): Frame | null {
  if (b.length < 14) return null;
  const f: Frame = { ts, len, dst: mac(b, 0), src: mac(b, 6), ethertype: (b[12] << 8) | b[13] };
  let o = 14;
  while ((f.ethertype === 0x8100 || f.ethertype === 0x88a8) && b.length >= o + 4) {
    f.ethertype = (b[o + 2] << 8) | b[o + 3];
    o += 4;
  }
  decodeL3(b, o, f, vx);
  return f;
}

function decodeL3(b: Uint8Array, o: number, f: Frame, vx: number[]): void {
  if (f.ethertype === 0x0806 && b.length >= o + 28) {
    f.arp = {
      op: (b[o + 6] << 8) | b[o + 7],
      senderMac: mac(b, o + 8),
      senderIp: ip4(b, o + 14),
      targetIp: ip4(b, o + 24),
    };
    return;
  }
  if (f.ethertype !== 0x0800 || b.length < o + 20) return;
  const ihl = (b[o] & 0x0f) * 4;
  if (b[o] >> 4 !== 4 || ihl < 20) return;
  const totalLen = (b[o + 2] << 8) | b[o + 3];
  const proto = b[o + 9];
  f.ip = {
    src: ip4(b, o + 12),
    dst: ip4(b, o + 16),
    proto,
    ttl: b[o + 8],
    id: (b[o + 4] << 8) | b[o + 5],
    len: totalLen,
  };
  const fragOff = ((b[o + 6] & 0x1f) << 8) | b[o + 7];
  if (fragOff !== 0) return;
  const l4 = o + ihl;
  // GSO on veths can hand tcpdump a "packet" larger than 64 KiB whose IP length field is 0
  const l4len = totalLen >= ihl ? totalLen - ihl : b.length - l4;
  if (proto === 6 && b.length >= l4 + 20) {
    const doff = (b[l4 + 12] >> 4) * 4;
    const u32 = (x: number) => ((b[x] << 24) | (b[x + 1] << 16) | (b[x + 2] << 8) | b[x + 3]) >>> 0;
    f.tcp = {
      sport: (b[l4] << 8) | b[l4 + 1],
      dport: (b[l4 + 2] << 8) | b[l4 + 3],
      seq: u32(l4 + 4),
      ack: u32(l4 + 8),
      flags: b[l4 + 13],
      payload: Math.max(0, l4len - doff),
    };
    if (f.tcp.payload > 0 && b.length > l4 + doff)
      f.tcp.head = Buffer.from(b.subarray(l4 + doff, Math.min(b.length, l4 + doff + 48))).toString('latin1');
  } else if (proto === 17 && b.length >= l4 + 8) {
    f.udp = { sport: (b[l4] << 8) | b[l4 + 1], dport: (b[l4 + 2] << 8) | b[l4 + 3] };
    const v = l4 + 8;
    if (vx.includes(f.udp.dport) && b.length >= v + 8 && b[v] & 0x08) {
      const vni = (b[v + 4] << 16) | (b[v + 5] << 8) | b[v + 6];
      const inner = decodeEthernet(b.subarray(v + 8), f.ts, Math.max(0, l4len - 16), vx);
      if (inner) f.vxlan = { vni, inner };
    }
  } else if (proto === 112 && b.length >= l4 + 8) {
    const version = b[l4] >> 4;
    const count = b[l4 + 3];
    const addrs: string[] = [];
    for (let i = 0; i < count && b.length >= l4 + 8 + 4 * (i + 1); i++) addrs.push(ip4(b, l4 + 8 + 4 * i));
    f.vrrp = { version, vrid: b[l4 + 1], priority: b[l4 + 2], addrs };
  }
}

/** "SYN", "SYN,ACK", "PSH,ACK", … */
export function tcpFlagNames(flags: number): string {
  const n: string[] = [];
  if (flags & TCP_SYN) n.push('SYN');
  if (flags & TCP_FIN) n.push('FIN');
  if (flags & TCP_RST) n.push('RST');
  if (flags & TCP_PSH) n.push('PSH');
  if (flags & TCP_ACK) n.push('ACK');
  return n.join(',') || '-';
}
