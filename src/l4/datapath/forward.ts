/**
 * Turning the engine's decision into what happens to a queued packet: DR (accept with the real server's mark), NAT
 * (rewrite in the verdict's payload, replies rewritten back), TUN (IPIP, or IPv6 in IPv6, to the real server through
 * a raw socket, original dropped), local real servers (accept, mark 0). Bad packets are counted by reason, never
 * thrown. The I/O (verdict, raw send) is injected so this runs in unit tests without a kernel.
 */

import { canonicalAddr, ipv4ToInt } from '../../common/addr.js';
import {
  DEST_MARK_BASE,
  DIVERT_MARK,
  emptyPlan,
  MAX_DEST_MARKS,
  type PlanMatch,
  type PlanRoute,
  REPLY_MARK,
  type RulePlan,
  TABLE_BASE,
} from '../../fwmark/plan.js';
import type { Connection } from '../conn/conn.js';
import type { RealServer } from '../dest.js';
import type { Engine } from '../engine.js';
import {
  addrBytes,
  ipipEncap,
  ipv4Fragments,
  ipv4HeaderChecksum,
  l4Checksum,
  natRewrite,
  packetTooBig6,
  trafficClass,
} from './csum.js';
import { DatapathError } from './errors.js';
import { NF_ACCEPT, NF_DROP, type QueuedPacket } from './nfqmsg.js';
import {
  type BadReason,
  IPPROTO_ICMPV6,
  PARSE_BAD,
  PARSE_ICMP,
  PacketParser,
  type PacketView,
  type Parsed,
} from './packet.js';

export interface Counters {
  packets: number;
  forwarded: { route: number; masq: number; tunnel: number; local: number; reply: number };
  passed: number;
  dropped: number;
  bad: Partial<
    Record<
      BadReason | 'martian' | 'icmp-no-conn' | 'engine-drop' | 'tunnel-send' | 'tunnel-too-big' | 'internal',
      number
    >
  >;
}

export function newCounters(): Counters {
  return {
    packets: 0,
    forwarded: { route: 0, masq: 0, tunnel: 0, local: 0, reply: 0 },
    passed: 0,
    dropped: 0,
    bad: {},
  };
}

/** What is done with each kind of unparseable packet: 'pass' goes on to the director's own stack, 'drop' ends it. */
const BAD_ACTION: Record<BadReason, 'pass' | 'drop'> = {
  truncated: 'drop',
  'bad-version': 'drop',
  'bad-ihl': 'drop',
  'bad-length': 'drop',
  fragment: 'drop',
  'bad-l4-header': 'drop',
  // IPVS ignores protocols it has no handler for, and ICMP that is not an error
  'unknown-protocol': 'pass',
  'icmp-not-error': 'pass',
  'icmp-bad-inner': 'drop',
};

export interface ForwarderIo {
  verdict(id: number, verdict: number, mark?: number, payload?: Uint8Array): void;
  /** send a complete IPv4 packet (IPIP) to dst through a raw socket; returns false on failure */
  sendRaw(pkt: Uint8Array, dst: Uint8Array): boolean;
  /**
   * send the IP packet `inner` to the IPv6 address dst encapsulated in IPv6 (next header 41, 4 for an IPv4 packet)
   * through a raw socket: the kernel writes the outer header, with the route's source address (as IPVS takes the
   * route's), hop limit 64 and `tclass` as its traffic class; returns false on failure (or when not given)
   */
  sendTunnel6?(inner: Uint8Array, dst: Uint8Array, tclass: number): boolean;
  /** send a complete IPv6 packet (the ICMPv6 Packet Too Big of a tunnel) to dst through a raw socket */
  sendRaw6?(pkt: Uint8Array, dst: Uint8Array): boolean;
}

export class Forwarder {
  readonly counters = newCounters();
  /** DR real server address → mark (stable for the life of the process) */
  private readonly marks = new Map<string, number>();
  private nextMark = 0;
  private readonly bytes = new Map<string, Uint8Array>();
  /** called with each forwarded packet's connection (the sync master's hook, src/ha/worker-ha.ts) */
  onForward: ((conn: Connection) => void) | null = null;
  /** DR real servers whose mark route stays while they are out of the table (health-checked through the VIP) */
  readonly pinned = new Set<string>();
  /**
   * The config's listener ports of fwmark services (`match:`): rendered as mark rules while a fwmark service of that
   * mark is in the table, so `tierlb adm -D -f M` removes its mark rules and adding it back restores them.
   */
  matches: PlanMatch[] = [];
  /**
   * the largest encapsulated packet sent to a tunnel real server in one piece (the path MTU towards the real
   * servers): IPIP beyond it is fragmented (or dropped, counted, with DF), an IPv6 packet beyond it less the outer
   * IPv6 header is answered with ICMPv6 Packet Too Big
   */
  tunnelMtu = 1500;
  /** reused for every packet: the hot path allocates no parse objects */
  private readonly parser = new PacketParser();
  /** the director's own addresses and the VIPs (see setOwnAddrs), as sources they are martians */
  private own4 = new Set<number>();
  private own6 = new Set<string>();
  private vips4 = new Set<number>();
  private vips6 = new Set<string>();

  constructor(
    readonly engine: Engine,
    private readonly io: ForwarderIo,
    readonly queue = 0,
    readonly queues = 1,
  ) {}

  private addr(a: string): Uint8Array {
    let b = this.bytes.get(a);
    if (!b) {
      b = addrBytes(a);
      if (this.bytes.size > 10000) this.bytes.clear();
      this.bytes.set(a, b);
    }
    return b;
  }

  markFor(rip: string): number {
    let m = this.marks.get(rip);
    if (m === undefined) {
      if (this.nextMark >= MAX_DEST_MARKS)
        throw new DatapathError(
          'EDEST_MARKS_FULL',
          `out of real-server marks: ${MAX_DEST_MARKS} real-server addresses got one since the director started (marks are not reused); restart the director`,
        );
      m = DEST_MARK_BASE + this.nextMark++;
      this.marks.set(rip, m);
    }
    return m;
  }

  /**
   * The director's own addresses (its interfaces'): a packet from outside claiming one as its source is dropped as a
   * martian, as the kernel's source validation does before IPVS sees it. The VIPs are added from the table by plan().
   */
  setOwnAddrs(addrs: Iterable<string>): void {
    const { v4, v6 } = splitAddrs(addrs);
    this.own4 = v4;
    this.own6 = v6;
  }

  /**
   * A source the kernel's routing would refuse (ip_route_input_slow's martian_source, fib_validate_source): 0/8,
   * 127/8, multicast 224/4 and 255.255.255.255, ::, ::1, ff00::/8, or one of the director's own addresses or VIPs.
   */
  private martian(p: PacketView): boolean {
    if (p.family === 4) {
      const s = p.saddr4;
      const a = s >>> 24;
      if (a === 0 || a === 127 || a >= 224) return true;
      return s === p.daddr4 || this.own4.has(s) || this.vips4.has(s);
    }
    const w = p.addr6;
    if (w[0] >>> 24 === 0xff) return true;
    if (w[0] === 0 && w[1] === 0 && w[2] === 0 && (w[3] === 0 || w[3] === 1)) return true;
    if (this.own6.size === 0 && this.vips6.size === 0) return false;
    const s = p.saddr;
    return s === p.daddr || this.own6.has(s) || this.vips6.has(s);
  }

  private bad(reason: keyof Counters['bad']): void {
    this.counters.bad[reason] = (this.counters.bad[reason] ?? 0) + 1;
  }

  private pass(q: QueuedPacket): void {
    this.counters.passed++;
    // our own marks are cleared; a user's fwmark stays as it was
    const ours = q.mark === DIVERT_MARK || q.mark === REPLY_MARK;
    this.io.verdict(q.id, NF_ACCEPT, ours ? 0 : undefined);
  }

  private drop(q: QueuedPacket): void {
    this.counters.dropped++;
    this.io.verdict(q.id, NF_DROP);
  }

  /** Handle one queued packet: exactly one verdict is issued for it. */
  handle(q: QueuedPacket): void {
    this.counters.packets++;
    try {
      this.handleInner(q);
    } catch {
      this.bad('internal');
      this.drop(q);
    }
  }

  private handleInner(q: QueuedPacket): void {
    const reply = q.mark === REPLY_MARK;
    const fwmark = q.mark === DIVERT_MARK || reply ? 0 : q.mark;
    const parser = this.parser;
    const r = parser.parse(q.payload, fwmark);
    if (r === PARSE_BAD) {
      this.bad(parser.reason);
      if (BAD_ACTION[parser.reason] === 'pass') this.pass(q);
      else this.drop(q);
      return;
    }
    // a martian source never reaches the scheduler (packets from the director itself come in on lo, ifindex 1)
    if (!reply && q.indev !== LOOPBACK_IFINDEX && this.martian(parser.pkt)) {
      this.bad('martian');
      this.drop(q);
      return;
    }
    if (r === PARSE_ICMP) {
      if (reply) this.handleIcmpOut(q, parser);
      else this.handleIcmp(q, parser);
      return;
    }
    const p = parser.pkt;
    const v = reply ? this.engine.processReply(p) : this.engine.process(p);
    if (v.kind === 'pass') {
      this.pass(q);
      return;
    }
    if (v.kind === 'drop') {
      this.bad('engine-drop');
      this.drop(q);
      return;
    }
    const { conn, dest } = v;
    if (reply) {
      // NAT reply: RIP:rport -> CIP becomes VIP:vport -> CIP
      natRewrite(q.payload, p, 'src', this.addr(conn.vaddr), conn.vport);
      this.counters.forwarded.reply++;
      this.io.verdict(q.id, NF_ACCEPT, 0, q.payload.subarray(0, p.totalLen));
      return;
    }
    this.forward(q, p, conn, dest);
    if (this.onForward) this.onForward(conn);
  }

  private forward(q: QueuedPacket, p: Parsed, conn: Connection, dest: RealServer): void {
    if (dest.fwd === 'masq') {
      natRewrite(q.payload, p, 'dst', this.addr(conn.daddr), conn.dport);
      this.counters.forwarded.masq++;
      this.io.verdict(q.id, NF_ACCEPT, 0, q.payload.subarray(0, p.totalLen));
      return;
    }
    if (dest.local) {
      this.counters.forwarded.local++;
      this.io.verdict(q.id, NF_ACCEPT, 0);
      return;
    }
    if (dest.fwd === 'tunnel' && dest.family === 4) {
      const inner = q.payload.subarray(0, p.totalLen);
      const out = ipipEncap(inner, this.addr(dest.addr));
      // too big for the path once encapsulated (a reassembled datagram): fragmented as ip_vs_tunnel_xmit's output
      // would be, unless the client asked for DF (then the client's PMTU discovery has to do it: counted, dropped)
      if (out.length > this.tunnelMtu && inner[6] & 0x40) this.bad('tunnel-too-big');
      else {
        let ok = true;
        for (const f of ipv4Fragments(out, this.tunnelMtu)) ok = this.io.sendRaw(f, this.addr(dest.addr)) && ok;
        if (ok) this.counters.forwarded.tunnel++;
        else this.bad('tunnel-send');
      }
      this.io.verdict(q.id, NF_DROP);
      return;
    }
    if (dest.fwd === 'tunnel') {
      this.tunnel6(q.payload.subarray(0, p.totalLen), p, this.addr(dest.addr));
      this.io.verdict(q.id, NF_DROP);
      return;
    }
    // DR: the real server's mark picks its policy route
    this.counters.forwarded.route++;
    this.io.verdict(q.id, NF_ACCEPT, this.markFor(dest.addr));
  }

  /**
   * TUN to an IPv6 real server (ip_vs_tunnel_xmit_v6): the packet leaves encapsulated in IPv6, its traffic class (an
   * IPv4 packet's TOS) copied to the outer header. An IPv6 packet that would not fit the path once encapsulated is
   * answered with ICMPv6 Packet Too Big carrying the room left (tunnelMtu - 40), unless it is an ICMPv6 error itself,
   * and dropped; an IPv4 one is sent (the director fragments the outer packet) unless it has DF (counted, dropped,
   * as the IPIP path does).
   */
  private tunnel6(inner: Uint8Array, p: Parsed, dst: Uint8Array): void {
    const room = this.tunnelMtu - IPV6_HEADER;
    if (inner.length > room && (p.family === 6 || inner[6] & 0x40)) {
      this.bad('tunnel-too-big');
      const icmpError = p.protocol === IPPROTO_ICMPV6 && inner[p.l4off] < 128;
      if (p.family === 6 && !icmpError) this.io.sendRaw6?.(packetTooBig6(inner, room), inner.subarray(8, 24));
      return;
    }
    const tclass = p.family === 6 ? trafficClass(inner) : inner[1];
    if (this.io.sendTunnel6?.(inner, dst, tclass)) this.counters.forwarded.tunnel++;
    else this.bad('tunnel-send');
  }

  /**
   * An ICMP error about a flow (ip_vs_in_icmp): the embedded packet is one the director's side sent (VIP:vport →
   * CIP:cport); an error about a known connection follows it, any other passes (it never creates a connection).
   */
  private handleIcmp(q: QueuedPacket, e: PacketParser): void {
    const i = e.inner;
    const conn = this.engine.icmpConn(i, 'in');
    const dest = conn?.dest;
    if (!conn || !dest) {
      this.bad('icmp-no-conn');
      this.pass(q);
      return;
    }
    if (dest.fwd === 'masq') {
      // rewrite the outer destination and the embedded source (VIP:vport → RIP:rport), recompute the ICMP checksum
      this.natIcmp(q.payload, e, 'dst', this.addr(conn.daddr), conn.dport);
      this.counters.forwarded.masq++;
      this.io.verdict(q.id, NF_ACCEPT, 0, q.payload.subarray(0, e.pkt.totalLen));
      return;
    }
    // DR and TUN: the real server gets the error as it came (its PMTU for the flow follows a frag-needed)
    this.forward(q, e.pkt, conn, dest);
  }

  /**
   * An ICMP error from the real-server side about a NAT flow (ip_vs_out_icmp): the embedded packet is the one the
   * director sent to the real server (CIP:cport → RIP:rport); the client gets it as from the VIP: outer source and
   * embedded destination become VIP:vport. Anything else passes (routed as it is).
   */
  private handleIcmpOut(q: QueuedPacket, e: PacketParser): void {
    const conn = this.engine.icmpConn(e.inner, 'out');
    if (!conn?.dest || conn.fwd !== 'masq') {
      this.bad('icmp-no-conn');
      this.pass(q);
      return;
    }
    this.natIcmp(q.payload, e, 'src', this.addr(conn.vaddr), conn.vport);
    this.counters.forwarded.reply++;
    this.io.verdict(q.id, NF_ACCEPT, 0, q.payload.subarray(0, e.pkt.totalLen));
  }

  /**
   * ip_vs_nat_icmp: the outer `which` address becomes `addr`, the embedded packet's opposite end (its source for an
   * outer destination, its destination for an outer source) becomes addr:port; the embedded IPv4 header checksum
   * and the ICMP checksum (over the embedded packet and, for ICMPv6, the pseudo-header) are recomputed.
   */
  private natIcmp(b: Uint8Array, e: PacketParser, which: 'src' | 'dst', addr: Uint8Array, port: number): void {
    const o = e.pkt;
    const i = e.inner;
    natRewrite(b, o, which, addr, 0);
    const inner = which === 'dst' ? 'src' : 'dst';
    if (i.family === 4) {
      b.set(addr, e.innerOff + (inner === 'src' ? 12 : 16));
      const ihl = (b[e.innerOff] & 0x0f) * 4;
      const c = ipv4HeaderChecksum(b, e.innerOff, ihl);
      b[e.innerOff + 10] = c >> 8;
      b[e.innerOff + 11] = c & 0xff;
    } else b.set(addr, e.innerOff + (inner === 'src' ? 8 : 24));
    const portOff = i.l4off + (inner === 'src' ? 0 : 2);
    b[portOff] = port >> 8;
    b[portOff + 1] = port & 0xff;
    const c = l4Checksum(b, o);
    b[e.icmpOff + 2] = c >> 8;
    b[e.icmpOff + 3] = c & 0xff;
  }

  /** The kernel rules the current table needs (services to queue, NAT reply sources, DR routes). */
  plan(): RulePlan {
    const plan = emptyPlan(this.queue, this.queues);
    plan.matches = this.matches;
    const vips = splitAddrs([
      ...this.engine.table.list().flatMap((s) => (s.kind === 'fwm' ? [] : [s.addr])),
      ...this.matches.map((m) => m.addr),
    ]);
    this.vips4 = vips.v4;
    this.vips6 = vips.v6;
    for (const svc of this.engine.table.list()) {
      plan.services.push({ kind: svc.kind, family: svc.family, addr: svc.addr, port: svc.port, fwmark: svc.fwmark });
      for (const d of svc.dests) {
        if (d.fwd === 'masq' && !d.local) {
          const protos = svc.kind === 'fwm' ? (['tcp', 'udp'] as const) : [svc.kind];
          for (const protocol of protos)
            plan.natSources.push({ family: d.family, protocol, addr: d.addr, port: d.port || svc.port });
        }
        if (d.local || d.fwd === 'masq' || d.fwd === 'tunnel') continue;
        const mark = this.markFor(d.addr);
        if (!plan.routes.some((r) => r.mark === mark)) plan.routes.push(routeFor(d.family, d.addr, mark));
      }
    }
    for (const rip of this.pinned) {
      const mark = this.markFor(rip);
      if (!plan.routes.some((r) => r.mark === mark)) plan.routes.push(routeFor(rip.includes(':') ? 6 : 4, rip, mark));
    }
    return plan;
  }
}

const IPV6_HEADER = 40;

/** The loopback interface's index in every namespace: packets the director sends itself come back in on it. */
const LOOPBACK_IFINDEX = 1;

function splitAddrs(addrs: Iterable<string>): { v4: Set<number>; v6: Set<string> } {
  const v4 = new Set<number>();
  const v6 = new Set<string>();
  for (const a of addrs) {
    if (a.includes(':')) v6.add(canonicalAddr(a.replace(/%.*$/, '')));
    else if (a) v4.add(ipv4ToInt(a));
  }
  return { v4, v6 };
}

function routeFor(family: 4 | 6, rip: string, mark: number): PlanRoute {
  return { family, rip, mark, table: TABLE_BASE + (mark - DEST_MARK_BASE) };
}
