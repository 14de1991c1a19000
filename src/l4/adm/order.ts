/**
 * The order and the names ipvsadm prints services and real servers in (libipvs ipvs_cmp_services / ipvs_cmp_dests,
 * print_service_entry's svc_name; addrport_to_anyname with -n is addr.ts hostPort). Shared by the listings and by -S.
 *
 * The comparisons subtract unsigned 32-bit values into a C int, so two addresses more than 2^31 apart compare the
 * "wrong" way round (10.0.0.1 sorts after 200.0.0.1); that is reproduced, it is what ipvsadm prints.
 */
import { type Family, intToIpv4, ipv4ToInt, ipv6ToBytes } from '../../common/addr.js';
import { AF_INET, AF_INET6 } from '../../sys/constants.js';
import type { RealServer } from '../dest.js';
import { PROTO_NUM, SVC_F_SCHED1, SVC_F_SCHED2, SVC_F_SCHED3, type VirtualService } from '../service.js';

export function afNumber(family: Family): number {
  return family === 6 ? AF_INET6 : AF_INET;
}

/** The address as the four 32-bit words of a union nf_inet_addr (IPv4 in the first word). */
export function addrWords(addr: string, family: Family): number[] {
  if (family === 4) return [ipv4ToInt(addr), 0, 0, 0];
  const b = ipv6ToBytes(addr);
  const w: number[] = [];
  for (let i = 0; i < 16; i += 4) w.push(((b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]) >>> 0);
  return w;
}

/** (int)(a - b) for two unsigned 32-bit values */
function cdiff(a: number, b: number): number {
  return (a - b) | 0;
}

function cmpAddr(af1: Family, w1: number[], w2: number[]): number {
  if (af1 === 6) {
    let r = 0;
    for (let i = 0; !r && i < 4; i++) r = cdiff(w1[i], w2[i]);
    return r;
  }
  return cdiff(w1[0], w2[0]);
}

/** the protocol the kernel keeps for a service: ipvsadm sends TCP for fwmark services */
export function svcProtocol(svc: VirtualService): number {
  return svc.kind === 'fwm' ? PROTO_NUM.tcp : PROTO_NUM[svc.kind];
}

export function cmpServices(s1: VirtualService, s2: VirtualService): number {
  let r = cdiff(s1.fwmark, s2.fwmark);
  if (r) return r;
  r = afNumber(s1.family) - afNumber(s2.family);
  if (r) return r;
  r = svcProtocol(s1) - svcProtocol(s2);
  if (r) return r;
  r = cmpAddr(s1.family, addrWords(s1.addr, s1.family), addrWords(s2.addr, s2.family));
  if (r) return r;
  return s1.port - s2.port;
}

export function cmpDests(d1: RealServer, d2: RealServer): number {
  const r = cmpAddr(d1.family, addrWords(d1.addr, d1.family), addrWords(d2.addr, d2.family));
  if (r) return r;
  return d1.port - d2.port;
}

/** Services in print order: sorted, or as the table holds them with --nosort. */
export function orderServices(list: readonly VirtualService[], sort: boolean): VirtualService[] {
  return sort ? [...list].sort(cmpServices) : [...list];
}

/** Real servers in print order: sorted, or in the kernel's list order (newest first) with --nosort. */
export function orderDests(svc: VirtualService, sort: boolean): RealServer[] {
  return sort ? [...svc.dests].sort(cmpDests) : [...svc.dests];
}

export function protocolName(svc: VirtualService): string {
  return svc.kind === 'fwm' ? '?' : svc.kind.toUpperCase();
}

/** `-t` / `-u` / `--sctp-service` as -S writes the service type */
export function protocolOption(svc: VirtualService): string {
  return svc.kind === 'tcp' ? '-t' : svc.kind === 'udp' ? '-u' : '--sctp-service';
}

/** A persistent service's netmask as the listing (`mask`) and -S (`-M`) print it; '' for the full mask. */
export function netmaskText(svc: VirtualService): string {
  if (svc.family === 4) return svc.netmask !== 0xffffffff ? intToIpv4(svc.netmask) : '';
  return svc.netmask !== 128 ? String(svc.netmask) : '';
}

/** print_sched_flags: the -b words of a service, comma-separated ('' when none). */
export function schedFlagWords(svc: VirtualService): string {
  const f = svc.flags;
  const words: string[] = [];
  const names =
    svc.schedName === 'sh'
      ? ['sh-fallback', 'sh-port', '']
      : svc.schedName === 'mh'
        ? ['mh-fallback', 'mh-port', '']
        : ['flag-1', 'flag-2', 'flag-3'];
  const bits = [SVC_F_SCHED1, SVC_F_SCHED2, SVC_F_SCHED3];
  for (let i = 0; i < 3; i++) if (f & bits[i] && names[i]) words.push(names[i]);
  return words.join(',');
}

export const SCHED_FLAGS_MASK = SVC_F_SCHED1 | SVC_F_SCHED2 | SVC_F_SCHED3;
