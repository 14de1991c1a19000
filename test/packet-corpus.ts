/**
 * A malformed-packet corpus for the director (IP packets, no link header), seeded and reproducible: truncated and
 * inconsistent IPv4/IPv6 headers, bad IHL and lengths, IP options, fragments (lone, overlapping, tiny, out of order),
 * bad TCP data offsets and flag combinations, bad UDP lengths, ICMP/ICMPv6 errors quoting garbage or nothing, IPv6
 * extension header chains (long, looping lengths, cut short), unknown protocols, martian sources, and random byte
 * flips of good packets. Sources are random clients (never the client of a test's own transfer), so nothing in it
 * can match a real flow's 4-tuple.
 */
import { concat, ICMP, ICMP6, icmpError, ip, ipv4, ipv6, TCP, tcp, UDP, udp } from './packet-craft.js';
import { seeded } from './seeded.js';

export interface CorpusTarget {
  vip: string;
  vip6: string;
  /** a TCP service port and a UDP service port on the VIPs */
  tcpPort: number;
  udpPort: number;
  seed?: number;
}

const put16 = (b: Uint8Array, off: number, v: number) => {
  b[off] = (v >> 8) & 0xff;
  b[off + 1] = v & 0xff;
};

export function malformedCorpus(o: CorpusTarget): Uint8Array[] {
  const rnd = seeded(o.seed ?? 15);
  const r8 = () => Math.floor(rnd() * 256);
  const src4 = () => `198.51.${1 + Math.floor(rnd() * 250)}.${1 + Math.floor(rnd() * 250)}`;
  const src6 = () => `2001:db8:99::${(1 + Math.floor(rnd() * 0xfffe)).toString(16)}`;
  const bytes = (n: number) => Uint8Array.from({ length: n }, r8);
  const out: Uint8Array[] = [];
  const { vip, vip6, tcpPort, udpPort } = o;

  const goodTcp = (src: string, dst: string, flags = 0x02, data?: Uint8Array) =>
    ip({ src, dst, proto: TCP, payload: tcp({ src, dst, sport: 1024 + r8(), dport: tcpPort, flags, data }) });
  const goodUdp = (src: string, dst: string, n = 32) =>
    ip({ src, dst, proto: UDP, payload: udp({ src, dst, sport: 1024 + r8(), dport: udpPort, data: bytes(n) }) });

  for (const [src, dst] of [
    [src4(), vip],
    [src6(), vip6],
  ]) {
    const good = goodTcp(src, dst);
    // truncated anywhere
    for (let n = 0; n < good.length; n += 3) out.push(good.slice(0, n));
    // every TCP flag byte, data offsets 0..15
    for (let f = 0; f < 256; f += 7) out.push(goodTcp(src, dst, f));
    for (let doff = 0; doff < 16; doff++) {
      const p = goodTcp(src, dst, 0x02, bytes(8));
      const l4 = dst.includes(':') ? 40 : 20;
      p[l4 + 12] = doff << 4;
      out.push(p);
    }
    // UDP lengths that lie
    for (const len of [0, 1, 7, 8, 9, 39, 40, 41, 65535]) {
      const p = goodUdp(src, dst);
      put16(p, (dst.includes(':') ? 40 : 20) + 4, len);
      out.push(p);
    }
    // unknown and odd protocols to the VIP
    for (const proto of [0, 2, 4, 41, 47, 50, 132, 136, 255])
      out.push(
        dst.includes(':')
          ? ipv6({ src, dst, proto, payload: bytes(24) })
          : ipv4({ src, dst, proto, payload: bytes(24) }),
      );
    // ICMP errors: quoting nothing, a cut header, garbage, another error, a flow that does not exist
    const type = dst.includes(':') ? 1 : 3;
    const quotes = [new Uint8Array(0), good.slice(0, 10), bytes(28), bytes(60), goodUdp(dst, src)];
    for (const q of quotes) {
      const e = icmpError({ src, dst, type, code: 3, quoted: q, quoteLen: q.length });
      out.push(e);
      out.push(icmpError({ src, dst, type, code: 4, quoted: e, quoteLen: e.length }));
    }
    out.push(
      icmpError({
        src,
        dst,
        type: dst.includes(':') ? 2 : 3,
        code: dst.includes(':') ? 0 : 4,
        quoted: goodTcp(dst, src, 0x10),
        mtu: 68,
      }),
    );
    // echo and other informational ICMP
    out.push(
      dst.includes(':')
        ? ipv6({ src, dst, proto: ICMP6, payload: bytes(16) })
        : ipv4({ src, dst, proto: ICMP, payload: concat(new Uint8Array([8, 0, 0, 0]), bytes(12)) }),
    );
    // random byte flips of good packets
    for (let i = 0; i < 80; i++) {
      const p = (i & 1 ? goodTcp(src, dst, 0x02, bytes(r8() % 64)) : goodUdp(src, dst, r8() % 64)).slice();
      for (let k = 0; k < 1 + (i % 4); k++) p[Math.floor(rnd() * p.length)] = r8();
      out.push(p);
    }
  }

  // IPv4 header fields
  for (const first of [0x00, 0x35, 0x40, 0x41, 0x44, 0x46, 0x4f, 0x5f, 0x65, 0xff]) {
    const p = goodTcp(src4(), vip);
    p[0] = first;
    out.push(p);
  }
  for (const tot of [0, 1, 19, 20, 21, 39, 41, 1500, 65535]) {
    const p = goodTcp(src4(), vip);
    put16(p, 2, tot);
    out.push(p);
  }
  // options: NOPs, record route, a bad option length, end of list
  for (const opt of [
    [1, 1, 1, 1],
    [7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    [68, 2, 5, 0],
    [131, 255, 0, 0],
    [0, 0, 0, 0],
  ]) {
    const src = src4();
    out.push(
      ipv4({
        src,
        dst: vip,
        proto: TCP,
        options: Uint8Array.from(opt),
        payload: tcp({ src, dst: vip, sport: 2000 + r8(), dport: tcpPort }),
      }),
    );
  }
  // fragments: lone first, lone middle, lone last, overlapping, tiny (TCP header split), a zero-length one
  {
    const src = src4();
    const dg = udp({ src, dst: vip, sport: 3000, dport: udpPort, data: bytes(3000) });
    out.push(ipv4({ src, dst: vip, proto: UDP, id: 0x4242, mf: true, payload: dg.slice(0, 1480) }));
    out.push(ipv4({ src, dst: vip, proto: UDP, id: 0x4243, mf: true, fragOff: 1480, payload: dg.slice(1480, 2960) }));
    out.push(ipv4({ src, dst: vip, proto: UDP, id: 0x4244, fragOff: 2960, payload: dg.slice(2960) }));
    out.push(ipv4({ src, dst: vip, proto: UDP, id: 0x4245, mf: true, payload: dg.slice(0, 1480) }));
    out.push(ipv4({ src, dst: vip, proto: UDP, id: 0x4245, mf: true, fragOff: 8, payload: dg.slice(8, 1488) }));
    const t = tcp({ src, dst: vip, sport: 3001, dport: tcpPort, flags: 0x02 });
    out.push(ipv4({ src, dst: vip, proto: TCP, id: 0x4246, mf: true, payload: t.slice(0, 8) }));
    out.push(ipv4({ src, dst: vip, proto: TCP, id: 0x4246, fragOff: 8, payload: t.slice(8) }));
    out.push(ipv4({ src, dst: vip, proto: TCP, id: 0x4247, mf: true, payload: new Uint8Array(0) }));
    out.push(ipv4({ src, dst: vip, proto: TCP, id: 0x4248, fragOff: 65528, payload: bytes(16) }));
  }
  // IPv6: payload length lies, extension header chains (long, cut short, fragment headers, a loop of lengths)
  for (const plen of [0, 1, 7, 8, 40, 1000, 65535]) {
    const p = goodTcp(src6(), vip6);
    put16(p, 4, plen);
    out.push(p);
  }
  const ext = (t: number, n = 6): [number, Uint8Array] => [t, new Uint8Array(n)];
  const frag = (off: number, more: boolean, id: number): [number, Uint8Array] => {
    const b = new Uint8Array(6);
    put16(b, 0, (off & ~7) | (more ? 1 : 0));
    b[2] = id >>> 24;
    b[5] = id & 0xff;
    return [44, b];
  };
  for (const chain of [
    [ext(0)],
    [ext(0), ext(43), ext(60)],
    Array.from({ length: 12 }, () => ext(60)),
    [ext(0, 22), ext(60, 254)],
    [frag(0, true, 7)],
    [frag(8, false, 8)],
    [frag(0, false, 9)],
    [ext(0), frag(0, true, 10), ext(60)],
  ]) {
    const src = src6();
    out.push(
      ipv6({
        src,
        dst: vip6,
        proto: TCP,
        ext: chain,
        payload: tcp({ src, dst: vip6, sport: 4000 + r8(), dport: tcpPort }),
      }),
    );
  }
  {
    // an extension header whose length runs past the packet
    const src = src6();
    const p = ipv6({
      src,
      dst: vip6,
      proto: TCP,
      ext: [ext(60)],
      payload: tcp({ src, dst: vip6, sport: 4100, dport: tcpPort }),
    });
    p[41] = 200;
    out.push(p);
  }
  // martian sources, both families
  for (const src of ['0.0.0.0', '127.0.0.1', '224.0.0.1', '255.255.255.255', vip]) out.push(goodTcp(src, vip));
  for (const src of ['::', '::1', 'ff02::1', vip6]) out.push(goodTcp(src, vip6));
  return out;
}
