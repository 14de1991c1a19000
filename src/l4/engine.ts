/**
 * The director's packet-decision core (ip_vs_core.c ip_vs_in / ip_vs_out, ip_vs_schedule, ip_vs_sched_persist):
 * it owns the service table and the connection table and turns each packet into a verdict. Pure: time comes from the
 * injected clock and nothing here sleeps or touches the network; `tick()` runs the timers.
 */
import { intToIpv4, ipv4ToInt, maskAddr } from '../common/addr.js';
import { type Clock, systemClock } from '../common/clock.js';
import { type AdmTarget, type ConnRow, checkTimeouts, type SyncDaemonInfo, type Timeouts } from './adm/target.js';
import {
  CONN_F_INACTIVE,
  CONN_F_NOOUTPUT,
  CONN_F_ONE_PACKET,
  CONN_F_TEMPLATE,
  Connection,
  connAddrs,
  IPPROTO_IP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  type KernelCounts,
  protoName,
} from './conn/conn.js';
import { Defense } from './conn/defense.js';
import { ipv6Words } from './conn/flow6.js';
import { CONN_ENTRY_BYTES, CONN6_ENTRY_BYTES, ConnTable, templateKey } from './conn/table.js';
import {
  nextTcpState,
  TCP_DEFAULT_TIMEOUTS_MS,
  TCP_S_CLOSE,
  TCP_S_ESTABLISHED,
  TCP_S_FIN_WAIT,
  TCP_S_TIME_WAIT,
  TCP_STATE_ACTIVE,
  type TcpDir,
  TH_RST,
  TH_SYN,
} from './conn/tcp.js';
import { UDP_DEFAULT_TIMEOUT_MS } from './conn/udp.js';
import type { RealServer } from './dest.js';
import { SVC_F_ONEPACKET, type VirtualService } from './service.js';
import { ServiceTable } from './services.js';
import { ESTIMATOR_INTERVAL_MS, Stats } from './stats.js';

/** What the data path knows about a packet. Addresses are canonical strings (inet_ntop form). */
export interface PacketMeta {
  family: 4 | 6;
  protocol: number;
  saddr: string;
  sport: number;
  daddr: string;
  dport: number;
  fwmark: number;
  /** TCP header flag byte: FIN 1, SYN 2, RST 4, PSH 8, ACK 16 (0 for other protocols) */
  tcpFlags: number;
  /** IP total length */
  length: number;
  /** IPv4: saddr and daddr as unsigned 32-bit numbers, when the data path parsed them (the table's numeric keys) */
  saddr4?: number;
  daddr4?: number;
  /**
   * IPv6: saddr then daddr as eight big-endian 32-bit words, when the data path parsed them (the table's numeric keys;
   * read during the call only)
   */
  addr6?: Int32Array;
}

export type DropReason =
  /** the scheduler found no real server (ip_vs_leave: ICMP port unreachable + NF_DROP) */
  | 'no-dest'
  /** the connection's real server was removed and expire_nodest_conn is off */
  | 'dest-unavailable'
  /** the connection's real server was removed; expire_nodest_conn expired it and the packet cannot open a new one */
  | 'expire-nodest'
  /** the connection table is at its bound and nothing could be evicted */
  | 'table-full'
  /**
   * a packet that cannot open a connection (TCP without SYN, or RST, and sloppy_tcp off) for an unknown flow of a
   * service: dropped, where the kernel accepts it to the local stack (see process())
   */
  | 'not-new'
  /** the drop_packet defense */
  | 'drop-packet'
  /** a non-persistent port-zero service cannot schedule */
  | 'port-zero'
  /** a protocol the engine has no state machine for (SCTP) */
  | 'unsupported-protocol';

export type Verdict =
  | { kind: 'forward'; conn: Connection; dest: RealServer }
  | { kind: 'drop'; reason: DropReason }
  | { kind: 'pass' };

/** /proc/sys/net/ipv4/vs/* that the engine honours, with the kernel's defaults. */
export interface EngineSysctl {
  /** 1: a packet of a connection whose real server is gone expires it (and a SYN reschedules) */
  expire_nodest_conn: number;
  /** 1: a persistence template whose real server has weight 0 is invalidated on lookup */
  expire_quiescent_template: number;
  /** 1: any TCP packet but RST may open a connection, not only SYN */
  sloppy_tcp: number;
  /** bit 0: reschedule a SYN that reuses a TIME_WAIT/CLOSE connection; bit 1: also FIN_WAIT of DR/TUN */
  conn_reuse_mode: number;
  secure_tcp: number;
  drop_entry: number;
  drop_packet: number;
  /** free connection-table entries under which the defenses count memory as short */
  amemthresh: number;
  am_droprate: number;
}

export const DEFAULT_SYSCTL: Readonly<EngineSysctl> = {
  expire_nodest_conn: 0,
  expire_quiescent_template: 0,
  sloppy_tcp: 0,
  conn_reuse_mode: 1,
  secure_tcp: 0,
  drop_entry: 0,
  drop_packet: 0,
  amemthresh: 1024,
  am_droprate: 10,
};

export interface EngineOptions {
  clock?: Clock;
  random?: () => number;
  /** bound of the connection table, templates included (default 1 << 20) */
  maxConns?: number;
  sysctl?: Partial<EngineSysctl>;
}

/** A flow as the kernel fast path last saw it: cumulative counters and the last packet's time on the engine's clock. */
export interface KernelFlow extends KernelCounts {
  /** engine-clock ms of the last packet the kernel forwarded (0: none yet) */
  lastSeenMs: number;
}

/**
 * The kernel fast path as the engine drives it (src/l4/fastpath/maps.ts writes the BPF maps): a connection enters
 * when it reaches a state whose packets cannot change IPVS state (TCP ESTABLISHED, any UDP) and leaves on any other
 * state, removal, expiry or when its real server leaves; the engine reads its counters and last-seen time before
 * it expires it and on every tick, so kernel-forwarded packets count and an active flow never times out.
 */
export interface FastPath {
  /** put the connection in the kernel's flow map; false when it cannot (map full, no room for the real server) */
  add(cp: Connection, dest: RealServer): boolean;
  /** take it out (idempotent) */
  remove(cp: Connection): void;
  /** its kernel counters and last-seen time, undefined when the kernel has no entry */
  read(cp: Connection): KernelFlow | undefined;
}

export interface EngineStats {
  /** entries in the connection table, templates included */
  size: number;
  maxConns: number;
  /**
   * the table's memory, estimated: IPv4 entries × bytesPerEntry (CONN_ENTRY_BYTES) + IPv6 entries × CONN6_ENTRY_BYTES,
   * both measured by bench/conn-bytes.ts; not a heap reading
   */
  tableBytes: number;
  /** the bound that estimate is held to (setTableBytes; maxConns × bytesPerEntry unless set) */
  maxTableBytes: number;
  /** bytes per IPv4 entry (an IPv6 one: CONN6_ENTRY_BYTES) */
  bytesPerEntry: number;
  /** dropped packets by reason */
  drops: Record<DropReason, number>;
  /** entries that left through their timer */
  expired: number;
  /** entries removed by the drop_entry defense or evicted to make room */
  defenseDropped: number;
  /** connections rescheduled because of port reuse or a quiesced real server */
  rescheduled: number;
}

export const DEFENSE_TIMER_PERIOD_MS = 1000;
const FTPPORT = 21;
const FTPDATA = 20;

const PASS: Verdict = Object.freeze({ kind: 'pass' });
const DROP: Record<DropReason, Verdict> = {
  'no-dest': Object.freeze({ kind: 'drop', reason: 'no-dest' }),
  'dest-unavailable': Object.freeze({ kind: 'drop', reason: 'dest-unavailable' }),
  'expire-nodest': Object.freeze({ kind: 'drop', reason: 'expire-nodest' }),
  'table-full': Object.freeze({ kind: 'drop', reason: 'table-full' }),
  'not-new': Object.freeze({ kind: 'drop', reason: 'not-new' }),
  'drop-packet': Object.freeze({ kind: 'drop', reason: 'drop-packet' }),
  'port-zero': Object.freeze({ kind: 'drop', reason: 'port-zero' }),
  'unsupported-protocol': Object.freeze({ kind: 'drop', reason: 'unsupported-protocol' }),
};

function zeroDrops(): Record<DropReason, number> {
  return {
    'no-dest': 0,
    'dest-unavailable': 0,
    'expire-nodest': 0,
    'table-full': 0,
    'not-new': 0,
    'drop-packet': 0,
    'port-zero': 0,
    'unsupported-protocol': 0,
  };
}

export class Engine implements AdmTarget {
  readonly table: ServiceTable;
  readonly conns: ConnTable;
  readonly clock: Clock;
  /** live sysctl values; change them through setSysctl so the defenses re-evaluate at once */
  readonly sysctl: EngineSysctl;
  /** IPVS totals (/proc/net/ip_vs_stats) */
  readonly totalStats = new Stats();
  /** TCP timeouts by state, ms */
  readonly tcpTimeouts: number[] = [...TCP_DEFAULT_TIMEOUTS_MS];
  udpTimeout = UDP_DEFAULT_TIMEOUT_MS;
  /** ipvsadm -L --daemon: set by whoever runs the sync daemons (the data-path worker's src/ha/worker-ha.ts) */
  daemons?: () => SyncDaemonInfo[];
  /** connections in the kernel fast path's flow map */
  readonly inKernel = new Set<Connection>();
  /**
   * Called after a read of the kernel added incoming packets to a connection (its inpkts was `before`): the packets
   * the sync master did not see one by one (the worker replays its threshold rule on them).
   */
  onKernelPackets: ((cp: Connection, before: number) => void) | null = null;
  private fast: FastPath | null = null;
  /** incoming packets a connection must have seen before it enters the kernel (see setFastPath) */
  private fastMinPackets = 1;

  private readonly defense: Defense;
  /** setTableBytes' bound; undefined: the entry bound alone */
  private maxBytes: number | undefined;
  private readonly counters = { expired: 0, defenseDropped: 0, rescheduled: 0 };
  private readonly drops = zeroDrops();
  private nextEstimate: number;
  private nextDefense: number;
  private nodestSweep = false;
  /** the address words of an IPv6 packet looked up without the parser's (PacketMeta.addr6) */
  private readonly addr6 = new Int32Array(8);

  constructor(o: EngineOptions = {}) {
    this.clock = o.clock ?? systemClock;
    const random = o.random ?? Math.random;
    this.table = new ServiceTable({ clock: this.clock, random });
    this.sysctl = { ...DEFAULT_SYSCTL, ...o.sysctl };
    this.conns = new ConnTable(o.maxConns ?? 1 << 20, random, {
      onRemove: (c, why) => {
        if (why === 'expired') this.counters.expired++;
        if (c.kernel) this.leaveKernel(c);
      },
    });
    this.defense = new Defense(this.sysctl);
    this.defense.update(this.room());
    const now = this.clock.now();
    this.nextEstimate = now + ESTIMATOR_INTERVAL_MS;
    this.nextDefense = now + DEFENSE_TIMER_PERIOD_MS;
    const onRemoval = () => {
      if (this.sysctl.expire_nodest_conn) this.nodestSweep = true;
      // the kernel stops forwarding for a real server that left: its packets come back here (dropped, or expiring)
      for (const c of this.inKernel) if (!this.kernelEligible(c)) this.leaveKernel(c);
    };
    this.table.on('dest-del', onRemoval);
    this.table.on('service-del', onRemoval);
    this.table.on('dest-edit', () => {
      for (const c of this.inKernel) if (!this.kernelEligible(c)) this.leaveKernel(c);
    });
  }

  /**
   * Use (or, with null, stop using) a kernel fast path; connections already in a forwarding state enter it at their
   * next packet. `minPackets`: a connection enters only once it has seen that many incoming packets, so a short one
   * (connect, request, reset) never costs map writes: only flows with some volume are worth the syscalls.
   */
  setFastPath(fp: FastPath | null, o: { minPackets?: number } = {}): void {
    this.fastMinPackets = o.minPackets ?? 1;
    if (this.fast) {
      this.syncKernel();
      for (const c of [...this.inKernel]) this.leaveKernel(c);
    }
    this.fast = fp;
  }

  get fastPath(): FastPath | null {
    return this.fast;
  }

  /** Change sysctls; the defense levels are recomputed at once (as the kernel's proc handlers do). */
  setSysctl(s: Partial<EngineSysctl>): void {
    Object.assign(this.sysctl, s);
    this.defense.update(this.room());
  }

  /**
   * Hold the connection table to `maxBytes` of estimated memory (entries × CONN_ENTRY_BYTES): its bound becomes
   * that many entries (at least 1). Entries over a lowered bound stay until they leave; new ones are refused or
   * evict half-open ones, and the defenses (driven by the free entries under amemthresh) see the new room at once.
   */
  setTableBytes(maxBytes: number): void {
    this.maxBytes = maxBytes;
    this.conns.maxConns = Math.max(1, Math.floor(maxBytes / CONN_ENTRY_BYTES));
    this.defense.update(this.room());
  }

  /** Free entries for the defenses: under the entry bound and, with a byte bound, the IPv4 entries that still fit. */
  private room(): number {
    const free = this.conns.available;
    if (this.maxBytes === undefined) return free;
    return Math.min(free, Math.max(0, Math.floor((this.maxBytes - this.conns.bytes) / CONN_ENTRY_BYTES)));
  }

  /** The memory bound of the table's estimate (bytes). */
  get maxTableBytes(): number {
    return this.maxBytes ?? this.conns.maxConns * CONN_ENTRY_BYTES;
  }

  /** The TCP state machine currently in use is the secure_tcp one. */
  get secureTcpActive(): boolean {
    return this.defense.secureTable;
  }

  // ---------------------------------------------------------------------------------------------------------------
  // packets

  /** A packet from a client towards a virtual service (ip_vs_in). */
  process(pkt: PacketMeta): Verdict {
    const proto = pkt.protocol;
    if (proto !== IPPROTO_TCP && proto !== IPPROTO_UDP) {
      return this.findService(pkt) ? this.drop('unsupported-protocol') : PASS;
    }
    const now = this.nowMs();
    let cp = this.lookup('in', pkt, false);
    const syn = proto === IPPROTO_TCP && (pkt.tcpFlags & TH_SYN) !== 0;

    // a new connection reusing the tuple of an old one
    if (cp && syn && !cp.controlledBy) {
      let resched = false;
      const dest = cp.dest;
      if (this.sysctl.expire_nodest_conn && dest && dest.weight === 0) resched = true;
      else if (this.sysctl.conn_reuse_mode && this.isNewConnExpected(cp)) resched = true;
      if (resched) {
        this.conns.expireNow(cp, now);
        this.counters.rescheduled++;
        cp = undefined;
      }
    }

    // the real server is gone
    let nodestExpired = false;
    if (cp?.dest && !cp.dest.available) {
      if (!this.sysctl.expire_nodest_conn) return this.drop('dest-unavailable');
      this.conns.expireNow(cp, now);
      nodestExpired = true;
      cp = undefined;
    }

    if (!cp) {
      const svc = this.findService(pkt);
      if (!svc) return nodestExpired ? this.drop('expire-nodest') : PASS;
      // Deliberately unlike the kernel: there tcp_conn_schedule creates nothing and ip_vs_in NF_ACCEPTs the packet
      // to the local stack; here it is DROPPED. This director holds the VIP, so its own stack would answer a
      // mid-flow segment with RST: after a failover without sync that resets every flow the new master takes over
      // (they stall instead); with sync, the backup already has the connection and forwards them.
      if (proto === IPPROTO_TCP && (pkt.tcpFlags & TH_RST || !(syn || this.sysctl.sloppy_tcp)))
        return this.drop(nodestExpired ? 'expire-nodest' : 'not-new');
      if (this.defense.todrop()) return this.drop('drop-packet');
      const r = this.schedule(svc, pkt, now);
      if (!(r instanceof Connection)) return r;
      cp = r;
    }

    const dest = cp.dest as RealServer;
    cp.inpkts++;
    cp.inbytes += pkt.length;
    // ip_vs_in_stats: only while the real server is in its service
    if (dest.available) {
      countIn(dest.stats, pkt.length);
      countIn(cp.svc.stats, pkt.length);
      countIn(this.totalStats, pkt.length);
    }
    this.setState(cp, 'input', pkt.tcpFlags);
    if (cp.flags & CONN_F_ONE_PACKET) this.conns.expireNow(cp, now);
    else this.conns.touch(cp, now);
    if (this.fast && cp.live) this.updateKernel(cp);
    return { kind: 'forward', conn: cp, dest };
  }

  /** A reply from a real server towards a client, for NAT (ip_vs_out / handle_response). */
  processReply(pkt: PacketMeta): Verdict {
    const proto = pkt.protocol;
    if (proto !== IPPROTO_TCP && proto !== IPPROTO_UDP) return PASS;
    const cp = this.lookup('out', pkt, false);
    if (!cp?.dest) return PASS;
    const dest = cp.dest;
    cp.outpkts++;
    cp.outbytes += pkt.length;
    if (dest.available) {
      countOut(dest.stats, pkt.length);
      countOut(cp.svc.stats, pkt.length);
      countOut(this.totalStats, pkt.length);
    }
    this.setState(cp, 'output', pkt.tcpFlags);
    this.conns.touch(cp, this.nowMs());
    if (this.fast && cp.live) this.updateKernel(cp);
    return { kind: 'forward', conn: cp, dest };
  }

  /**
   * The connection an ICMP error's embedded packet belongs to, or undefined (ip_vs_in_icmp / ip_vs_out_icmp): a lookup
   * only — an ICMP error never creates a connection nor changes one's state. The embedded packet is one the director
   * sent, so it is looked up reversed: 'in', an error from the client side about VIP:vport → CIP:cport (the
   * connection CIP:cport → VIP:vport); 'out', an error from the real-server side about CIP:cport → RIP:rport (the NAT
   * reply RIP:rport → CIP:cport).
   */
  icmpConn(embedded: PacketMeta, dir: 'in' | 'out'): Connection | undefined {
    const proto = embedded.protocol;
    if (proto !== IPPROTO_TCP && proto !== IPPROTO_UDP) return undefined;
    return this.lookup(dir, embedded, true);
  }

  /**
   * The connection a packet's tuple belongs to, in the 'in' (client → VIP) or 'out' (real server → client, NAT)
   * index; `reversed` looks the tuple up with source and destination swapped (the packet inside an ICMP error). Both
   * families go through numeric indexes, with the parser's numeric addresses when it has them.
   */
  private lookup(dir: 'in' | 'out', pkt: PacketMeta, reversed: boolean): Connection | undefined {
    const proto = pkt.protocol;
    const sport = reversed ? pkt.dport : pkt.sport;
    const dport = reversed ? pkt.sport : pkt.dport;
    if (pkt.family === 4) {
      const a = pkt.saddr4 ?? ipv4ToInt(pkt.saddr);
      const b = pkt.daddr4 ?? ipv4ToInt(pkt.daddr);
      const s4 = reversed ? b : a;
      const d4 = reversed ? a : b;
      return dir === 'in'
        ? this.conns.getIn4(proto, s4, sport, d4, dport)
        : this.conns.getOut4(proto, s4, sport, d4, dport);
    }
    let w = pkt.addr6;
    if (w === undefined) {
      w = this.addr6;
      ipv6Words(pkt.saddr, w, 0);
      ipv6Words(pkt.daddr, w, 4);
    }
    const so = reversed ? 4 : 0;
    const d = reversed ? 0 : 4;
    return dir === 'in'
      ? this.conns.getIn6(proto, w, so, sport, w, d, dport)
      : this.conns.getOut6(proto, w, so, sport, w, d, dport);
  }

  /**
   * The service a packet belongs to (ip_vs_service_find): fwmark services of the packet's family first, then
   * protocol+VIP+port, then, for TCP to port 20 or ≥ 1024, an FTP service on the VIP, then a port-zero service.
   */
  findService(pkt: PacketMeta): VirtualService | undefined {
    const services = this.table.services;
    if (pkt.fwmark) {
      const f = services.get(`fwm|${pkt.family}|${pkt.fwmark}`);
      if (f) return f;
    }
    const kind = pkt.protocol === IPPROTO_TCP ? 'tcp' : pkt.protocol === IPPROTO_UDP ? 'udp' : 'sctp';
    let svc = services.get(`${kind}|${pkt.daddr}|${pkt.dport}`);
    if (!svc && pkt.protocol === IPPROTO_TCP && (pkt.dport === FTPDATA || pkt.dport >= 1024))
      svc = services.get(`${kind}|${pkt.daddr}|${FTPPORT}`);
    if (!svc && pkt.dport !== 0) svc = services.get(`${kind}|${pkt.daddr}|0`);
    return svc;
  }

  // ---------------------------------------------------------------------------------------------------------------
  // timers

  /** Run due timers: connection expiry, the defense (every second), the estimator (every 2 s), scheduler ticks. */
  tick(): void {
    // what the kernel forwarded since the last tick: counted, and its flows' timers restarted from their last packet
    if (this.inKernel.size) this.syncKernel();
    const now = this.nowMs();
    if (this.nodestSweep) {
      this.nodestSweep = false;
      this.expireNodestConns();
    }
    this.conns.expire(now);
    if (now >= this.nextDefense) {
      this.defense.update(this.room());
      if (this.defense.dropEntry) this.counters.defenseDropped += this.conns.randomDrop(now);
      this.nextDefense += DEFENSE_TIMER_PERIOD_MS;
      if (this.nextDefense <= now) this.nextDefense = now + DEFENSE_TIMER_PERIOD_MS;
    }
    if (now >= this.nextEstimate) {
      this.totalStats.estimate();
      for (const svc of this.table.services.values()) {
        svc.stats.estimate();
        for (const d of svc.dests) d.stats.estimate();
      }
      this.nextEstimate += ESTIMATOR_INTERVAL_MS;
      if (this.nextEstimate <= now) this.nextEstimate = now + ESTIMATOR_INTERVAL_MS;
    }
    for (const svc of this.table.services.values()) svc.scheduler.tick?.(now);
  }

  // ---------------------------------------------------------------------------------------------------------------
  // AdmTarget

  getTimeouts(): Timeouts {
    return {
      tcp: Math.floor(this.tcpTimeouts[TCP_S_ESTABLISHED] / 1000),
      tcpfin: Math.floor(this.tcpTimeouts[TCP_S_FIN_WAIT] / 1000),
      udp: Math.floor(this.udpTimeout / 1000),
    };
  }

  /** ipvsadm --set tcp tcpfin udp (ip_vs_set_timeout): 0 leaves a value; tcpfin sets FIN_WAIT only. */
  setTimeouts(t: Timeouts): void {
    checkTimeouts(t);
    if (t.tcp) this.tcpTimeouts[TCP_S_ESTABLISHED] = t.tcp * 1000;
    if (t.tcpfin) this.tcpTimeouts[TCP_S_FIN_WAIT] = t.tcpfin * 1000;
    if (t.udp) this.udpTimeout = t.udp * 1000;
  }

  /** ipvsadm -L -c: connections and templates. */
  connections(): ConnRow[] {
    const now = this.nowMs();
    return this.conns.entries().map((c) => ({
      ...connAddrs(c),
      protocol: protoName(c.protocol),
      state: c.stateName,
      expiresMs: Math.max(0, c.expires - now),
      template: c.template,
      fwmark: c.template && c.svc.kind === 'fwm' ? c.svc.fwmark : 0,
    }));
  }

  /** Drop every connection and template. */
  flush(): void {
    this.conns.flush();
  }

  stats(): EngineStats {
    return {
      size: this.conns.size,
      maxConns: this.conns.maxConns,
      tableBytes: this.conns.bytes,
      maxTableBytes: this.maxTableBytes,
      bytesPerEntry: CONN_ENTRY_BYTES,
      drops: { ...this.drops },
      expired: this.counters.expired,
      defenseDropped: this.counters.defenseDropped,
      rescheduled: this.counters.rescheduled,
    };
  }

  // ---------------------------------------------------------------------------------------------------------------
  // internals

  /**
   * The clock in whole milliseconds: entries' deadlines stay small integers (a fractional one costs every entry a
   * boxed number; see bench/conn-bytes.ts), and timers run at the tick's 1 s granularity anyway.
   */
  private nowMs(): number {
    return Math.floor(this.clock.now());
  }

  private drop(reason: DropReason): Verdict {
    this.drops[reason]++;
    return DROP[reason];
  }

  /** is_new_conn_expected: a SYN on an old TIME_WAIT/CLOSE connection (FIN_WAIT of DR/TUN with bit 1) starts anew. */
  private isNewConnExpected(cp: Connection): boolean {
    if (cp.protocol !== IPPROTO_TCP) return false;
    return (
      cp.state === TCP_S_TIME_WAIT ||
      cp.state === TCP_S_CLOSE ||
      ((this.sysctl.conn_reuse_mode & 2) !== 0 && cp.state === TCP_S_FIN_WAIT && (cp.flags & CONN_F_NOOUTPUT) !== 0)
    );
  }

  /** ip_vs_leave without cache_bypass: an FTP service lets other ports pass, otherwise the packet is dropped. */
  private leave(svc: VirtualService, pkt: PacketMeta): Verdict {
    if (svc.port === FTPPORT && pkt.dport !== FTPPORT) return PASS;
    return this.drop('no-dest');
  }

  /** Room for `n` more entries; at the bound, half-open TCP entries are evicted to make it. */
  private reserve(n: number, family: 4 | 6 = 4): boolean {
    const cost = n * (family === 6 ? CONN6_ENTRY_BYTES : CONN_ENTRY_BYTES);
    while (
      this.conns.size + n > this.conns.maxConns ||
      (this.maxBytes !== undefined && this.conns.bytes + cost > this.maxBytes)
    ) {
      if (!this.conns.evictHalfOpen()) return false;
      this.counters.defenseDropped++;
    }
    return true;
  }

  /** ip_vs_schedule: pick a real server and create the connection (or return the verdict when none is created). */
  private schedule(svc: VirtualService, pkt: PacketMeta, now: number): Connection | Verdict {
    // never schedule active FTP data from a real server
    if (pkt.sport === FTPDATA) return PASS;
    if (svc.persistent) return this.schedPersist(svc, pkt, now);
    if (svc.kind !== 'fwm' && pkt.dport !== svc.port) {
      if (svc.port === FTPPORT) return this.leave(svc, pkt);
      return this.drop('port-zero');
    }
    const dest = svc.scheduler.schedule(svc, pkt);
    if (!dest) return this.leave(svc, pkt);
    if (!this.reserve(1, pkt.family)) return this.drop('table-full');
    const cp = new Connection({
      protocol: pkt.protocol,
      family: pkt.family,
      ...clientAddr(pkt),
      cport: pkt.sport,
      vaddr: svc.kind === 'fwm' ? pkt.daddr : svc.addr,
      vport: pkt.dport,
      daddr: dest.addr,
      dport: dest.port || pkt.dport,
      svc,
      flags: svc.flags & SVC_F_ONEPACKET && pkt.protocol === IPPROTO_UDP ? CONN_F_ONE_PACKET : 0,
      fwmark: pkt.fwmark,
    });
    this.newConn(cp, dest, now);
    return cp;
  }

  /** ip_vs_sched_persist: follow (or create) the client's template, then create the connection under it. */
  private schedPersist(svc: VirtualService, pkt: PacketMeta, now: number): Connection | Verdict {
    const snet = persistNet(svc, pkt.saddr);
    let protocol = pkt.protocol;
    let vaddr = pkt.daddr;
    let vport = 0;
    if (pkt.dport === svc.port) {
      // <proto, caddr, 0, vaddr, vport> — FTP: <proto, caddr, 0, vaddr, 0>
      if (svc.port !== FTPPORT) vport = pkt.dport;
    } else if (svc.kind === 'fwm') {
      // <IPPROTO_IP, caddr, 0, fwmark, 0>; port-zero services keep <proto, caddr, 0, vaddr, 0>
      protocol = IPPROTO_IP;
      vaddr = svc.templateAddr;
    }

    let ct = this.conns.getTemplate(templateKey(protocol, snet, vaddr, vport));
    if (ct && !this.checkTemplate(ct)) ct = undefined;
    let dest: RealServer;
    if (!ct) {
      const d = svc.scheduler.schedule(svc, pkt);
      if (!d) return this.leave(svc, pkt);
      if (!this.reserve(2, pkt.family)) return this.drop('table-full');
      dest = d;
      ct = new Connection({
        protocol,
        family: svc.family,
        caddr: snet,
        cport: 0,
        vaddr,
        vport,
        daddr: dest.addr,
        dport: pkt.dport === svc.port && svc.port !== FTPPORT ? dest.port : 0,
        svc,
        flags: CONN_F_TEMPLATE,
        fwmark: pkt.fwmark,
      });
      ct.timeoutMs = svc.timeout * 1000;
      ct.expires = now + ct.timeoutMs;
      this.conns.insert(ct, dest);
    } else {
      dest = ct.dest as RealServer;
      if (!this.reserve(1, pkt.family)) return this.drop('table-full');
      // reserving may have evicted nothing but half-open connections; the template itself stays
    }

    let dport = pkt.dport;
    if (dport === svc.port && dest.port) dport = dest.port;
    const cp = new Connection({
      protocol: pkt.protocol,
      family: pkt.family,
      ...clientAddr(pkt),
      cport: pkt.sport,
      vaddr: svc.kind === 'fwm' ? pkt.daddr : svc.addr,
      vport: pkt.dport,
      daddr: dest.addr,
      dport,
      svc,
      flags: svc.flags & SVC_F_ONEPACKET && pkt.protocol === IPPROTO_UDP ? CONN_F_ONE_PACKET : 0,
      fwmark: pkt.fwmark,
    });
    this.newConn(cp, dest, now);
    this.conns.controlAdd(cp, ct);
    this.conns.touch(ct, now);
    return cp;
  }

  /** ip_vs_check_template: the template's real server is still usable, else the template is invalidated. */
  private checkTemplate(ct: Connection): boolean {
    const dest = ct.dest;
    if (!dest?.available || (this.sysctl.expire_quiescent_template && dest.weight === 0)) {
      this.conns.invalidateTemplate(ct);
      return false;
    }
    return true;
  }

  /** ip_vs_conn_new + ip_vs_conn_stats */
  private newConn(cp: Connection, dest: RealServer, now: number): void {
    cp.timeoutMs = 3000;
    cp.expires = now + cp.timeoutMs;
    this.conns.insert(cp, dest);
    dest.stats.conns++;
    cp.svc.stats.conns++;
    this.totalStats.conns++;
  }

  /** ip_vs_set_state: the protocol's state transition and timeout. */
  private setState(cp: Connection, dir: 'input' | 'output', tcpFlags: number): void {
    if (cp.protocol === IPPROTO_UDP) {
      if (dir === 'output') this.conns.assure(cp);
      cp.timeoutMs = this.udpTimeout;
      return;
    }
    // set_tcp_state
    let d: TcpDir = dir;
    if (cp.flags & CONN_F_NOOUTPUT) {
      if (dir === 'output') cp.flags &= ~CONN_F_NOOUTPUT;
      else d = 'input-only';
    }
    const ns = nextTcpState(cp.state, d, tcpFlags, this.defense.secureTable);
    if (ns !== cp.state) {
      const dest = cp.dest;
      if (dest && cp.live) {
        if (!(cp.flags & CONN_F_INACTIVE) && !TCP_STATE_ACTIVE[ns]) {
          dest.moveConn('active', 'inactive');
          cp.flags |= CONN_F_INACTIVE;
        } else if (cp.flags & CONN_F_INACTIVE && TCP_STATE_ACTIVE[ns]) {
          dest.moveConn('inactive', 'active');
          cp.flags &= ~CONN_F_INACTIVE;
        }
      }
      if (ns === TCP_S_ESTABLISHED) this.conns.assure(cp);
    }
    cp.state = ns;
    cp.timeoutMs = this.tcpTimeouts[ns];
  }

  /**
   * A connection whose packets the kernel may forward: DR, NAT or TUN within one family (IPIP, IPv6 in IPv6), not
   * local, TCP ESTABLISHED or UDP.
   */
  private kernelEligible(cp: Connection): boolean {
    const dest = cp.dest;
    if (!cp.live || !dest?.available || dest.local || cp.template) return false;
    if (cp.flags & CONN_F_ONE_PACKET) return false;
    const fwd = cp.fwd;
    if (fwd !== 'route' && fwd !== 'masq' && !(fwd === 'tunnel' && cp.family === dest.family)) return false;
    if (dest.fwd !== fwd) return false;
    return cp.protocol === IPPROTO_UDP || (cp.protocol === IPPROTO_TCP && cp.state === TCP_S_ESTABLISHED);
  }

  /** After a packet: the connection enters or leaves the kernel's flow map as its state allows. */
  private updateKernel(cp: Connection): void {
    const ok = this.kernelEligible(cp) && cp.inpkts >= this.fastMinPackets;
    if (ok && !cp.kernel) {
      if (this.fast?.add(cp, cp.dest as RealServer)) {
        cp.kernel = { packets: 0, bytes: 0, replyPackets: 0, replyBytes: 0 };
        this.inKernel.add(cp);
      }
    } else if (!ok && cp.kernel) this.leaveKernel(cp);
  }

  /** Read the last counters of a flow, then take it out of the kernel. */
  private leaveKernel(cp: Connection): void {
    if (!cp.kernel) return;
    this.readKernel(cp);
    this.fast?.remove(cp);
    cp.kernel = null;
    this.inKernel.delete(cp);
  }

  /**
   * Read every kernel flow: the packets and bytes forwarded since the last read are counted as the NFQUEUE path
   * counts them (connection, real server, service, totals), and a connection's timer restarts from the kernel's
   * last packet, so a flow active only in the kernel never expires. Called by tick() and before stats are shown.
   */
  syncKernel(): void {
    for (const cp of this.inKernel) this.readKernel(cp);
  }

  private readKernel(cp: Connection): void {
    const k = cp.kernel;
    if (!k || !this.fast) return;
    const f = this.fast.read(cp);
    if (!f) return;
    const dp = f.packets - k.packets;
    const db = f.bytes - k.bytes;
    const rp = f.replyPackets - k.replyPackets;
    const rb = f.replyBytes - k.replyBytes;
    cp.kernel = { packets: f.packets, bytes: f.bytes, replyPackets: f.replyPackets, replyBytes: f.replyBytes };
    const dest = cp.dest;
    if (dp > 0 || db > 0) {
      const before = cp.inpkts;
      cp.inpkts += dp;
      cp.inbytes += db;
      if (dest?.available) {
        addIn(dest.stats, dp, db);
        addIn(cp.svc.stats, dp, db);
        addIn(this.totalStats, dp, db);
      }
      if (dp > 0) this.onKernelPackets?.(cp, before);
    }
    if (rp > 0 || rb > 0) {
      cp.outpkts += rp;
      cp.outbytes += rb;
      if (dest?.available) {
        addOut(dest.stats, rp, rb);
        addOut(cp.svc.stats, rp, rb);
        addOut(this.totalStats, rp, rb);
      }
    }
    if (f.lastSeenMs > 0 && cp.live) {
      const seen = Math.floor(f.lastSeenMs);
      if (seen + cp.timeoutMs > cp.expires) this.conns.touch(cp, seen);
    }
  }

  /** ip_vs_expire_nodest_conn_flush: after a real server or service was deleted, drop its connections. */
  private expireNodestConns(): void {
    for (const cp of this.conns.entries()) {
      if (!cp.live || !cp.dest || cp.dest.available || cp.nControl > 0) continue;
      const ct = cp.controlledBy;
      this.conns.drop(cp);
      if (ct?.live && ct.nControl === 0) this.conns.drop(ct);
    }
  }
}

/** The client's address for a new entry: the parser's number for IPv4 (no string made), else the string. */
function clientAddr(pkt: PacketMeta): { caddr4: number } | { caddr: string } {
  return pkt.family === 4 && pkt.saddr4 !== undefined ? { caddr4: pkt.saddr4 } : { caddr: pkt.saddr };
}

/** The client's address under the service's persistence netmask; a full mask (the default) leaves it as it is. */
function persistNet(svc: VirtualService, saddr: string): string {
  if (svc.family === 6) return svc.netmask === 128 ? saddr : maskAddr(saddr, 6, svc.netmask);
  return svc.netmask === 0xffffffff ? saddr : intToIpv4((ipv4ToInt(saddr) & svc.netmask) >>> 0);
}

function countIn(s: Stats, len: number): void {
  s.inpkts++;
  s.inbytes += len;
}

function addIn(s: Stats, pkts: number, bytes: number): void {
  s.inpkts += pkts;
  s.inbytes += bytes;
}

function addOut(s: Stats, pkts: number, bytes: number): void {
  s.outpkts += pkts;
  s.outbytes += bytes;
}

function countOut(s: Stats, len: number): void {
  s.outpkts++;
  s.outbytes += len;
}
