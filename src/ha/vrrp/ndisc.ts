/**
 * Unsolicited Neighbor Advertisements (RFC 4861 4.4, 7.2.6): what an IPv6 VRRP master sends for each virtual
 * address instead of a gratuitous ARP, built as keepalived's vrrp_ndisc.c does: Ethernet to 33:33:00:00:00:01, IPv6
 * from the virtual address to ff02::1 with hop limit 255, ICMPv6 type 136 with the Override flag (and the Router
 * flag when the interface forwards IPv6), the target address and a Target Link-Layer Address option. Pure.
 */
import { ipv6ToBytes } from '../../common/addr.js';
import { ETH_P_IPV6, IPPROTO_ICMPV6 } from '../../sys/constants.js';
import { inetChecksum, pseudoHeader6 } from './packet.js';

export { ETH_P_IPV6, IPPROTO_ICMPV6 };
export const ND_NEIGHBOR_ADVERT = 136;
export const ND_OPT_TARGET_LINKADDR = 2;
export const NA_FLAG_ROUTER = 0x80;
export const NA_FLAG_SOLICITED = 0x40;
export const NA_FLAG_OVERRIDE = 0x20;
const ALL_NODES = 'ff02::1';
/** 14 Ethernet + 40 IPv6 + 24 NA + 8 option */
export const NA_FRAME_LEN = 86;

/** The ICMPv6 part of the NA (24 bytes + the 8-byte target link-layer address option), checksum included. */
export function naMessage(mac: Buffer, target: string, router: boolean, src = target, dst = ALL_NODES): Buffer {
  const m = Buffer.alloc(32);
  m[0] = ND_NEIGHBOR_ADVERT;
  m[4] = NA_FLAG_OVERRIDE | (router ? NA_FLAG_ROUTER : 0);
  m.set(ipv6ToBytes(target), 8);
  m[24] = ND_OPT_TARGET_LINKADDR;
  m[25] = 1; // in units of 8 bytes
  mac.copy(m, 26, 0, 6);
  m.writeUInt16BE(inetChecksum(pseudoHeader6(src, dst, m.length, IPPROTO_ICMPV6), m), 2);
  return m;
}

/** The whole Ethernet frame of an unsolicited NA for `addr` from the interface with MAC `mac`. */
export function naFrame(mac: Buffer, addr: string, router = false): Buffer {
  const f = Buffer.alloc(NA_FRAME_LEN);
  f[0] = 0x33;
  f[1] = 0x33;
  f[5] = 0x01;
  mac.copy(f, 6, 0, 6);
  f.writeUInt16BE(ETH_P_IPV6, 12);
  const msg = naMessage(mac, addr, router);
  f[14] = 0x60; // version 6, traffic class 0, flow label 0
  f.writeUInt16BE(msg.length, 18);
  f[20] = IPPROTO_ICMPV6;
  f[21] = 255; // hop limit: RFC 4861 7.1.2 drops anything else
  f.set(ipv6ToBytes(addr), 22);
  f.set(ipv6ToBytes(ALL_NODES), 38);
  msg.copy(f, 54);
  return f;
}
