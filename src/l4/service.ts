/**
 * A virtual service (struct ip_vs_service): keyed by protocol+VIP+port or by fwmark (per address family), with its
 * scheduler, flags, persistence and real servers.
 */
import { bytesToIpv6, type Family, hostPort, intToIpv4 } from '../common/addr.js';
import type { RealServer } from './dest.js';
import type { Scheduler } from './schedulers/types.js';
import { Stats } from './stats.js';

export type ServiceProtocol = 'tcp' | 'udp' | 'sctp';

/** ip_vs.h IP_VS_SVC_F_* */
export const SVC_F_PERSISTENT = 0x0001;
export const SVC_F_HASHED = 0x0002;
export const SVC_F_ONEPACKET = 0x0004;
/** scheduler flag 1: sh-fallback / mh-fallback */
export const SVC_F_SCHED1 = 0x0008;
/** scheduler flag 2: sh-port / mh-port */
export const SVC_F_SCHED2 = 0x0010;
export const SVC_F_SCHED3 = 0x0020;

/** Default persistence timeout when -p is given without a value (ipvsadm: 360 s). */
export const DEFAULT_PERSISTENCE_S = 360;

export interface ServiceId {
  /** 'fwm' for a firewall-mark service */
  kind: ServiceProtocol | 'fwm';
  family: Family;
  /** VIP (absent for fwmark services) */
  addr?: string;
  port?: number;
  fwmark?: number;
}

export function serviceKey(id: ServiceId): string {
  return id.kind === 'fwm' ? `fwm|${id.family}|${id.fwmark}` : `${id.kind}|${id.addr}|${id.port}`;
}

/** The address a fwmark template carries as its virtual address (the kernel copies the mark into vaddr.ip). */
export function fwmarkAddr(fwmark: number, family: Family): string {
  if (family === 4) return intToIpv4(fwmark >>> 0);
  const b = new Uint8Array(16);
  b[0] = (fwmark >>> 24) & 255;
  b[1] = (fwmark >>> 16) & 255;
  b[2] = (fwmark >>> 8) & 255;
  b[3] = fwmark & 255;
  return bytesToIpv6(b);
}

export const PROTO_NUM: Record<ServiceProtocol, number> = { tcp: 6, udp: 17, sctp: 132 };

export class VirtualService {
  readonly kind: ServiceProtocol | 'fwm';
  readonly family: Family;
  readonly addr: string;
  readonly port: number;
  readonly fwmark: number;
  /** the virtual address of this fwmark service's persistence templates (fwmarkAddr); '' for other services */
  readonly templateAddr: string;
  schedName: string;
  scheduler!: Scheduler;
  /** IP_VS_SVC_F_* bits (PERSISTENT set when timeout > 0) */
  flags: number;
  /** persistence timeout in seconds; 0 = not persistent */
  timeout: number;
  /** persistence granularity: IPv4 netmask as a 32-bit number, IPv6 prefix length */
  netmask: number;
  /**
   * real servers in the kernel's svc->destinations order: list_add_rcu puts a new one at the head, so the newest
   * comes first. rr/wrr/fo iterate, and ipvsadm -L prints, in this order.
   */
  readonly dests: RealServer[] = [];
  readonly stats = new Stats();

  constructor(id: ServiceId, o: { schedName: string; flags: number; timeout: number; netmask: number }) {
    this.kind = id.kind;
    this.family = id.family;
    this.addr = id.addr ?? (id.family === 6 ? '::' : '0.0.0.0');
    this.port = id.port ?? 0;
    this.fwmark = id.fwmark ?? 0;
    this.templateAddr = id.kind === 'fwm' ? fwmarkAddr(this.fwmark, this.family) : '';
    this.schedName = o.schedName;
    this.flags = o.flags;
    this.timeout = o.timeout;
    this.netmask = o.netmask;
  }

  get key(): string {
    return serviceKey(this);
  }

  get persistent(): boolean {
    return (this.flags & SVC_F_PERSISTENT) !== 0;
  }

  /** IP protocol number for tcp/udp/sctp services; 0 for fwmark services (any protocol). */
  get protocolNumber(): number {
    return this.kind === 'fwm' ? 0 : PROTO_NUM[this.kind];
  }

  toString(): string {
    if (this.kind === 'fwm') return `FWM  ${this.fwmark}${this.family === 6 ? ' IPv6' : ''}`;
    return `${this.kind.toUpperCase()}  ${hostPort(this.addr, this.port, this.family)}`;
  }
}

/** `TCP 10.0.0.1:80` / `FWM 10000` / `FWM 10000 IPv6`, as ipvsadm names services. */
export function describeService(id: ServiceId): string {
  if (id.kind === 'fwm') return `FWM ${id.fwmark}${id.family === 6 ? ' IPv6' : ''}`;
  return `${id.kind.toUpperCase()} ${hostPort(id.addr ?? '', id.port ?? 0, id.family)}`;
}
