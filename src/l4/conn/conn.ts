/**
 * A connection entry (struct ip_vs_conn): the flow tuple seen by the director, the real server it is bound to, its
 * protocol state and timer, and, for persistence, the template that controls it. Templates are Connections too
 * (flag CONN_F_TEMPLATE, client port 0), exactly as in the kernel.
 */
import type { Family } from '../../common/addr.js';
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

/** Where caddr, vaddr and daddr start in a connection's `addr6` words. */
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

export class Connection {
  /** IP protocol number; 0 (IPPROTO_IP) for templates of fwmark services */
  readonly protocol: number;
  readonly family: Family;
  readonly caddr: string;
  cport: number;
  /** for templates of fwmark services: the fwmark in address form, as the kernel stores it */
  readonly vaddr: string;
  vport: number;
  readonly daddr: string;
  dport: number;
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
  /** skb->mark of the packet that created the entry */
  readonly fwmark: number;
  inpkts = 0;
  outpkts = 0;
  inbytes = 0;
  outbytes = 0;
  /** the persistence template that controls this connection (cp->control) */
  controlledBy: Connection | null = null;
  /** how many connections this entry controls (cp->n_control) */
  nControl = 0;
  /**
   * The kernel fast path forwards this connection's packets (src/l4/fastpath): its flow counters as last read, so
   * the next read adds only what is new; null while the connection is not in the kernel's flow map.
   */
  kernel: KernelCounts | null = null;

  // table bookkeeping (owned by ConnTable)
  /** templates: key in the template index; '' when not indexed */
  inKey = '';
  /** indexed in the table's numeric input / output index of its family (IPv4: flow4.ts, IPv6: flow6.ts) */
  indexedIn = false;
  indexedOut = false;
  /** IPv4 connections: caddr, vaddr, daddr as unsigned 32-bit numbers (set when the table indexes the entry) */
  caddr4 = 0;
  vaddr4 = 0;
  daddr4 = 0;
  /** IPv6 connections: caddr, vaddr, daddr as four 32-bit words each, at ADDR6_C, ADDR6_V, ADDR6_D (set when indexed) */
  addr6: Int32Array | null = null;
  /** position in the table's dense array, -1 when not in the table */
  slot = -1;
  /** the expiry heap holds an entry for this connection */
  inHeap = false;

  constructor(o: ConnAddrs & { svc: VirtualService; flags: number; fwmark: number }) {
    this.protocol = o.protocol;
    this.family = o.family;
    this.caddr = o.caddr;
    this.cport = o.cport;
    this.vaddr = o.vaddr;
    this.vport = o.vport;
    this.daddr = o.daddr;
    this.dport = o.dport;
    this.svc = o.svc;
    this.flags = o.flags;
    this.fwmark = o.fwmark;
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
