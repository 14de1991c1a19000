/** Frame and pcap builders for the lab's pure tests (not a test file itself). */

const macBytes = (m: string) => m.split(':').map((x) => Number.parseInt(x, 16));
const ipBytes = (ip: string) => ip.split('.').map(Number);

function csum(b: number[]): number {
  let s = 0;
  for (let i = 0; i < b.length; i += 2) s += (b[i] << 8) | (b[i + 1] ?? 0);
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return ~s & 0xffff;
}

export interface TcpSpec {
  srcMac: string;
  dstMac: string;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  flags: number;
  ttl?: number;
  payload?: string;
}

function ipv4(src: string, dst: string, proto: number, ttl: number, l4: number[]): number[] {
  const len = 20 + l4.length;
  const h = [0x45, 0, len >> 8, len & 255, 0, 1, 0x40, 0, ttl, proto, 0, 0, ...ipBytes(src), ...ipBytes(dst)];
  const c = csum(h);
  h[10] = c >> 8;
  h[11] = c & 255;
  return [...h, ...l4];
}

export function tcpFrame(s: TcpSpec): number[] {
  const pl = [...Buffer.from(s.payload ?? '', 'latin1')];
  const tcp = [
    s.sport >> 8,
    s.sport & 255,
    s.dport >> 8,
    s.dport & 255,
    0,
    0,
    0,
    1,
    0,
    0,
    0,
    0,
    0x50,
    s.flags,
    0xff,
    0xff,
    0,
    0,
    0,
    0,
    ...pl,
  ];
  return [...macBytes(s.dstMac), ...macBytes(s.srcMac), 0x08, 0x00, ...ipv4(s.src, s.dst, 6, s.ttl ?? 64, tcp)];
}

export function vxlanFrame(
  outer: { srcMac: string; dstMac: string; src: string; dst: string; vni: number; dport?: number },
  inner: number[],
): number[] {
  const dport = outer.dport ?? 4789;
  const vx = [0x08, 0, 0, 0, (outer.vni >> 16) & 255, (outer.vni >> 8) & 255, outer.vni & 255, 0, ...inner];
  const ulen = 8 + vx.length;
  const udp = [0xc0, 0x00, dport >> 8, dport & 255, ulen >> 8, ulen & 255, 0, 0, ...vx];
  return [...macBytes(outer.dstMac), ...macBytes(outer.srcMac), 0x08, 0x00, ...ipv4(outer.src, outer.dst, 17, 64, udp)];
}

export function vrrpFrame(srcMac: string, src: string, vrid: number, priority: number, vip: string): number[] {
  const v = [0x21, vrid, priority, 1, 1, 1, 0, 0, ...ipBytes(vip), 0, 0, 0, 0, 0, 0, 0, 0];
  return [0x01, 0x00, 0x5e, 0x00, 0x00, 0x12, ...macBytes(srcMac), 0x08, 0x00, ...ipv4(src, '224.0.0.18', 112, 255, v)];
}

/** A classic pcap file (little endian, µs, Ethernet) of frames at the given times (seconds). */
export function pcapFile(
  frames: { ts: number; data: number[] }[],
  opts: { bigEndian?: boolean; nano?: boolean } = {},
): Buffer {
  const le = !opts.bigEndian;
  const head = Buffer.alloc(24);
  const w32 = (b: Buffer, v: number, o: number) => (le ? b.writeUInt32LE(v >>> 0, o) : b.writeUInt32BE(v >>> 0, o));
  const w16 = (b: Buffer, v: number, o: number) => (le ? b.writeUInt16LE(v, o) : b.writeUInt16BE(v, o));
  w32(head, opts.nano ? 0xa1b23c4d : 0xa1b2c3d4, 0);
  w16(head, 2, 4);
  w16(head, 4, 6);
  w32(head, 65535, 16);
  w32(head, 1, 20);
  const parts = [head];
  for (const f of frames) {
    const h = Buffer.alloc(16);
    const sec = Math.floor(f.ts);
    w32(h, sec, 0);
    w32(h, Math.round((f.ts - sec) * (opts.nano ? 1e9 : 1e6)), 4);
    w32(h, f.data.length, 8);
    w32(h, f.data.length, 12);
    parts.push(h, Buffer.from(f.data));
  }
  return Buffer.concat(parts);
}
