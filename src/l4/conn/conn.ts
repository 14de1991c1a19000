/**
 * A connection entry (struct ip_vs_conn): the flow tuple seen by the director, the real server it is bound to, its
 * protocol state and timer, and, for persistence, the template that controls it. Templates are Connections too
 * (flag CONN_F_TEMPLATE, client port 0), exactly as in the kernel.
 */
import { type Family, intToIpv4, ipv4ToInt } from '../../common/addr.js';
import { IPPROTO_IP, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP } from '../../sys/constants.js';
import type { FwdMethod, RealServer } from '../dest.js';
import type { VirtualService } from '../service.js';
import { TCP_S_NONE, tcpStateName } from './tcp.js';
import { UDP_STATE_NAME } from './udp.js';

/** ip_vs.h IP_VS_CONN_F_* */
export const CONN_F_FWD_MASK = 0x0007;
export const CONN_F_MASQ = 0x0000;
export const CONN_F_LOCALNODE = 0x0001;
export const CONN_F_TUNNEL = 0x0002;
export const CONN_F_DROUTE = 0x0003;
export const CONN_F_BYPASS = 0x0004;
export const CONN_F_HASHED = 0x0040;
export const CONN_F_NOOUTPUT = 0x0080;
export const CONN_F_INACTIVE = 0x0100;
export const CONN_F_NO_CPORT = 0x0800;
export const CONN_F_TEMPLATE = 0x1000;
export const CONN_F_ONE_PACKET = 0x2000;

/** Template state bit set once a controlled connection is seen to work (IP_VS_CTPL_S_ASSURED). */
export const CTPL_S_ASSURED = 0x0001;

/** The protocol numbers are the kernel's (src/sys/constants.ts), here for the connection table's users. */
export { IPPROTO_IP, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP };

export function fwdFlag(fwd: FwdMethod): number {
  return fwd === 'masq' ? CONN_F_MASQ : fwd === 'tunnel' ? CONN_F_TUNNEL : CONN_F_DROUTE;
}

/** The connection flags a new connection to `dest` starts with (dest->conn_flags, __ip_vs_update_dest). */
export function destConnFlags(dest: RealServer): number {
  const f = fwdFlag(dest.fwd) | CONN_F_INACTIVE;
  return dest.fwd === 'masq' ? f : f | CONN_F_NOOUTPUT;
}

/**
 * What names a connection: protocol, family and the client, virtual and destination address:port — shared by
 * ipvsadm -L -c rows (Engine.connections) and connection sync (src/ha/sync: master entries, backup Connections).
 */
export interface ConnAddrs {
  protocol: number;
  family: Family;
  caddr: string;
  cport: number;
  vaddr: string;
  vport: number;
  daddr: string;
  dport: number;
}

/** Those fields of a connection (or a sync entry), copied. */
export function connAddrs(c: ConnAddrs): ConnAddrs {
  return {
    protocol: c.protocol,
    family: c.family,
    caddr: c.caddr,
    cport: c.cport,
    vaddr: c.vaddr,
    vport: c.vport,
    daddr: c.daddr,
    dport: c.dport,
  };
}

export function protoName(protocol: number): string {
  switch (protocol) {
    case IPPROTO_TCP:
      return 'TCP';
    case IPPROTO_UDP:
      return 'UDP';
    case IPPROTO_SCTP:
      return 'SCTP';
    case IPPROTO_IP:
      return 'IP';
    default:
      return 'ERR!';
  }
}

/** Where caddr, vaddr and daddr start in the table's IPv6 address words (src/l4/conn/table.ts). */
export const ADDR6_C = 0;
export const ADDR6_V = 4;
export const ADDR6_D = 8;

/** Cumulative packets and bytes the kernel fast path forwarded for one flow, per direction. */
export interface KernelCounts {
  packets: number;
  bytes: number;
  replyPackets: number;
  replyBytes: number;
}

/** Parts of an entry most entries never use, allocated on first write (see Connection). */
class ConnExtra {
  /** IPv6 client address (IPv4 ones are kept as a number) */
  caddr: string | null = null;
  /** the virtual address when it is not the service's (fwmark services, their templates) */
  vaddr: string | null = null;
  fwmark = 0;
  inKey = '';
  kernel: KernelCounts | null = null;
  controlledBy: Connection | null = null;
  nControl = 0;
}

/** Bits of Connection.bits: protocol (8), family 6, table bookkeeping, the destination port (16, from bit 12). */
const B_V6 = 0x100;
const B_IN = 0x200;
const B_OUT = 0x400;
const B_HEAP = 0x800;
const DPORT_SHIFT = 12;

/** What a new entry is made from: an IPv4 client address may come as a number (the data path's) instead of a string. */
export type ConnInit = Omit<ConnAddrs, 'caddr'> &
  ({ caddr: string; caddr4?: undefined } | { caddr?: undefined; caddr4: number }) & {
    svc: VirtualService;
    flags: number;
    fwmark: number;
  };

/**
 * The entry is kept small, since a flood fills the table with them (bench/conn-bytes.ts measures it): 17 fields, all
 * small integers or shared references. IPv4 addresses are 32-bit numbers (the strings are formatted on demand), the
 * protocol, family, destination port and the table's flags share one integer, the ports of the client and the
 * service another, and what few entries use (the IPv6 client string, templates' keys, persistence control, the fast
 * path's counters, a fwmark) lives in a ConnExtra made on first use.
 */
/** An IPv4 address string (a VIP's, a real server's: few, long-lived) as a signed 32-bit number, cached. */
const ADDR4 = new Map<string, number>();
export function addr4(a: string): number {
  let n = ADDR4.get(a);
  if (n === undefined) {
    if (ADDR4.size >= 4096) ADDR4.clear();
    n = ipv4ToInt(a) | 0;
    ADDR4.set(a, n);
  }
  return n;
}

export class Connection {
  /** protocol | family | table flags | dport << 12 */
  private bits: number;
  /** cport << 16 | vport */
  private cv: number;
  /** the real server's address (the real server's own string) */
  readonly daddr: string;
  /**
   * IPv4 connections: the client address as a 32-bit number (signed, so it stays a small integer); the virtual and
   * real server addresses are the service's and real server's (the table reads their numbers from addr4())
   */
  caddr4 = 0;
  /** the real server (kept after the entry leaves the table, as the kernel keeps cp->dest until the entry is freed) */
  dest: RealServer | null = null;
  /** the service the connection was scheduled by */
  readonly svc: VirtualService;
  /** CONN_F_* */
  flags: number;
  /** protocol state (TCP_S_*, UDP_S_NORMAL) or, for templates, CTPL_S_* bits */
  state = TCP_S_NONE;
  /** current timeout in ms (restarted from the last packet) */
  timeoutMs = 3_000;
  /** clock time (ms) at which the entry expires */
  expires = 0;
  inpkts = 0;
  inbytes = 0;
  outpkts = 0;
  outbytes = 0;
  /** position in the table's dense array, -1 when not in the table */
  slot = -1;
  private x: ConnExtra | null = null;

  constructor(o: ConnInit) {
    const v6 = o.family === 6;
    this.bits = (o.protocol & 0xff) | (v6 ? B_V6 : 0) | ((o.dport & 0xffff) << DPORT_SHIFT);
    this.cv = ((o.cport & 0xffff) << 16) | (o.vport & 0xffff);
    this.svc = o.svc;
    this.daddr = o.daddr;
    this.flags = o.flags;
    if (o.fwmark) this.extra().fwmark = o.fwmark;
    if (o.vaddr !== o.svc.addr) this.extra().vaddr = o.vaddr;
    if (v6) this.extra().caddr = o.caddr ?? '';
    else this.caddr4 = (o.caddr4 ?? ipv4ToInt(o.caddr as string)) | 0;
  }

  private extra(): ConnExtra {
    if (this.x === null) this.x = new ConnExtra();
    return this.x;
  }

  /** IP protocol number; 0 (IPPROTO_IP) for templates of fwmark services */
  get protocol(): number {
    return this.bits & 0xff;
  }

  get family(): Family {
    return this.bits & B_V6 ? 6 : 4;
  }

  get caddr(): string {
    return this.bits & B_V6 ? (this.x?.caddr ?? '') : intToIpv4(this.caddr4);
  }

  /** for templates of fwmark services: the fwmark in address form, as the kernel stores it */
  get vaddr(): string {
    return this.x?.vaddr ?? this.svc.addr;
  }

  get cport(): number {
    return this.cv >>> 16;
  }

  set cport(p: number) {
    this.cv = ((p & 0xffff) << 16) | (this.cv & 0xffff);
  }

  get vport(): number {
    return this.cv & 0xffff;
  }

  set vport(p: number) {
    this.cv = (this.cv & ~0xffff) | (p & 0xffff);
  }

  get dport(): number {
    return this.bits >>> DPORT_SHIFT;
  }

  set dport(p: number) {
    this.bits = (this.bits & ((1 << DPORT_SHIFT) - 1)) | ((p & 0xffff) << DPORT_SHIFT);
  }

  /** skb->mark of the packet that created the entry */
  get fwmark(): number {
    return this.x?.fwmark ?? 0;
  }

  /** the persistence template that controls this connection (cp->control) */
  get controlledBy(): Connection | null {
    return this.x?.controlledBy ?? null;
  }

  set controlledBy(c: Connection | null) {
    if (c !== null || this.x !== null) this.extra().controlledBy = c;
  }

  /** how many connections this entry controls (cp->n_control) */
  get nControl(): number {
    return this.x?.nControl ?? 0;
  }

  set nControl(n: number) {
    if (n !== 0 || this.x !== null) this.extra().nControl = n;
  }

  /**
   * The kernel fast path forwards this connection's packets (src/l4/fastpath): its flow counters as last read, so
   * the next read adds only what is new; null while the connection is not in the kernel's flow map.
   */
  get kernel(): KernelCounts | null {
    return this.x?.kernel ?? null;
  }

  set kernel(k: KernelCounts | null) {
    if (k !== null || this.x !== null) this.extra().kernel = k;
  }

  // table bookkeeping (owned by ConnTable)
  /** templates: key in the template index; '' when not indexed */
  get inKey(): string {
    return this.x?.inKey ?? '';
  }

  set inKey(k: string) {
    if (k !== '' || this.x !== null) this.extra().inKey = k;
  }

  /** indexed in the table's numeric input / output index of its family (IPv4: flow4.ts, IPv6: flow6.ts) */
  get indexedIn(): boolean {
    return (this.bits & B_IN) !== 0;
  }

  set indexedIn(b: boolean) {
    this.bits = b ? this.bits | B_IN : this.bits & ~B_IN;
  }

  get indexedOut(): boolean {
    return (this.bits & B_OUT) !== 0;
  }

  set indexedOut(b: boolean) {
    this.bits = b ? this.bits | B_OUT : this.bits & ~B_OUT;
  }

  /** the expiry heap holds an entry for this connection */
  get inHeap(): boolean {
    return (this.bits & B_HEAP) !== 0;
  }

  set inHeap(b: boolean) {
    this.bits = b ? this.bits | B_HEAP : this.bits & ~B_HEAP;
  }

  get template(): boolean {
    return (this.flags & CONN_F_TEMPLATE) !== 0;
  }

  get inactive(): boolean {
    return (this.flags & CONN_F_INACTIVE) !== 0;
  }

  get noOutput(): boolean {
    return (this.flags & CONN_F_NOOUTPUT) !== 0;
  }

  get fwd(): FwdMethod {
    const f = this.flags & CONN_F_FWD_MASK;
    return f === CONN_F_MASQ ? 'masq' : f === CONN_F_TUNNEL ? 'tunnel' : 'route';
  }

  /** still in the connection table */
  get live(): boolean {
    return this.slot >= 0;
  }

  /** The state as ipvsadm -L -c prints it. */
  get stateName(): string {
    if (this.template) return 'NONE';
    if (this.protocol === IPPROTO_TCP) return tcpStateName(this.state);
    if (this.protocol === IPPROTO_UDP) return UDP_STATE_NAME;
    return 'NONE';
  }
}
