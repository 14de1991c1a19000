/**
 * ipvsadm -L output, byte for byte: the version header, the column titles of each list mode, service lines with their
 * flags, real-server rows ("  -> %-28s %-7s %-6d %-10u %-10u" and the --stats / --rate / --thresholds /
 * --persistent-conn / --tun-info variants), print_largenum's K/M/G/T scaling, --timeout and --daemon. Addresses are
 * always printed numerically (ipvsadm without -n would resolve host and service names).
 */

import { hostPort } from '../../common/addr.js';
import type { RealServer } from '../dest.js';
import { SVC_F_ONEPACKET, type VirtualService } from '../service.js';
import { netmaskText, orderDests, orderServices, protocolName, SCHED_FLAGS_MASK, schedFlagWords } from './order.js';
import {
  FMT_EXACT,
  FMT_NOSORT,
  FMT_PERSISTENTCONN,
  FMT_RATE,
  FMT_STATS,
  FMT_THRESHOLDS,
  FMT_TUN_INFO,
} from './parse.js';
import type { SyncDaemonInfo, Timeouts } from './target.js';
import { IPVS_CONN_TAB_SIZE, IPVS_VERSION } from './usage.js';

/** printf %-Ns */
export function left(s: string | number, w: number): string {
  return String(s).padEnd(w);
}

/** printf %Ns */
export function right(s: string | number, w: number): string {
  return String(s).padStart(w);
}

/** print_largenum: a 9-wide column, scaled to K/M/G/T from 100 million unless --exact. */
export function largenum(i: number, format: number): string {
  if (format & FMT_EXACT) {
    const s = String(i);
    return right(s, s.length <= 8 ? 9 : s.length + 1);
  }
  if (i < 1e8) return right(i, 9);
  if (i < 1e9) return `${right(Math.floor(i / 1e3), 8)}K`;
  if (i < 1e11) return `${right(Math.floor(i / 1e6), 8)}M`;
  if (i < 1e14) return `${right(Math.floor(i / 1e9), 8)}G`;
  return `${right(Math.floor(i / 1e12), 8)}T`;
}

export function headerLine(): string {
  return `IP Virtual Server version ${IPVS_VERSION} (size=${IPVS_CONN_TAB_SIZE})\n`;
}

const LOCAL_COL = 'Prot LocalAddress:Port';
const REMOTE_TITLE = '  -> RemoteAddress:Port\n';

/** print_title (nothing for -S). */
export function titleLines(format: number): string {
  const head = (cols: string[], spec: (s: string) => string) => `${left(LOCAL_COL, 33)} ${cols.map(spec).join(' ')}\n`;
  if (format & FMT_STATS)
    return head(['Conns', 'InPkts', 'OutPkts', 'InBytes', 'OutBytes'], (s) => right(s, 8)) + REMOTE_TITLE;
  if (format & FMT_RATE) return head(['CPS', 'InPPS', 'OutPPS', 'InBPS', 'OutBPS'], (s) => right(s, 8)) + REMOTE_TITLE;
  if (format & FMT_THRESHOLDS)
    return head(['Uthreshold', 'Lthreshold', 'ActiveConn', 'InActConn'], (s) => left(s, 10)) + REMOTE_TITLE;
  if (format & FMT_PERSISTENTCONN)
    return (
      `${left(LOCAL_COL, 33)} ${left('Weight', 9)} ${left('PersistConn', 11)} ${left('ActiveConn', 10)} ${left('InActConn', 10)}\n` +
      REMOTE_TITLE
    );
  if (format & FMT_TUN_INFO)
    return 'Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n';
  return 'Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n';
}

/** The service column of a listing: `TCP  10.0.0.1:80`, `FWM  7`, `FWM  7 IPv6` (IPv4 names cut at 33). */
export function listServiceName(svc: VirtualService): string {
  if (svc.kind === 'fwm') return svc.family === 6 ? `FWM  ${svc.fwmark} IPv6` : `FWM  ${svc.fwmark}`;
  const name = `${left(protocolName(svc), 4)} ${hostPort(svc.addr, svc.port, svc.family)}`;
  return svc.family === 6 ? name : name.slice(0, 33);
}

/** The scheduler and flags after the service name in the plain listing. */
function serviceFlags(svc: VirtualService): string {
  let s = ` ${svc.schedName}`;
  if (svc.flags & SCHED_FLAGS_MASK) s += ` (${schedFlagWords(svc)})`;
  if (svc.persistent) {
    s += ` persistent ${svc.timeout}`;
    const mask = netmaskText(svc);
    if (mask) s += ` mask ${mask}`;
  }
  if (svc.flags & SVC_F_ONEPACKET) s += ' ops';
  return s;
}

/** ipvsadm's forward column: the kernel reports a local real server as LOCALNODE whatever -g/-m/-i said. */
export function fwdName(d: RealServer): string {
  if (d.local) return 'Local';
  return d.fwd === 'masq' ? 'Masq' : d.fwd === 'tunnel' ? 'Tunnel' : 'Route';
}

function destName(d: RealServer): string {
  const name = hostPort(d.addr, d.port, d.family);
  return d.family === 6 ? name : name.slice(0, 28);
}

function destRow(d: RealServer, format: number): string {
  const name = destName(d);
  if (format & FMT_STATS) {
    const s = d.stats.snapshot();
    return `  -> ${left(name, 28)}${[s.conns, s.inpkts, s.outpkts, s.inbytes, s.outbytes].map((n) => largenum(n, format)).join('')}\n`;
  }
  if (format & FMT_RATE) {
    const s = d.stats.snapshot();
    return `  -> ${left(name, 28)} ${right(s.cps, 8)} ${right(s.inpps, 8)} ${right(s.outpps, 8)}${largenum(s.inbps, format)}${largenum(s.outbps, format)}\n`;
  }
  if (format & FMT_THRESHOLDS)
    return `  -> ${left(name, 28)} ${left(d.uThreshold, 10)} ${left(d.lThreshold, 10)} ${left(d.activeConns, 10)} ${left(d.inactConns, 10)}\n`;
  if (format & FMT_PERSISTENTCONN)
    return `  -> ${left(name, 28)} ${left(d.weight, 9)} ${left(d.persistConns, 11)} ${left(d.activeConns, 10)} ${left(d.inactConns, 10)}\n`;
  if (format & FMT_TUN_INFO) {
    const ti = d.fwd === 'tunnel' && !d.local ? 'ipip' : 'n/a';
    return `  -> ${left(name, 28)} ${left(fwdName(d), 7)} ${left(ti, 13)} ${left(d.weight, 6)} ${left(d.activeConns, 10)} ${left(d.inactConns, 10)}\n`;
  }
  return `  -> ${left(name, 28)} ${left(fwdName(d), 7)} ${left(d.weight, 6)} ${left(d.activeConns, 10)} ${left(d.inactConns, 10)}\n`;
}

/** print_service_entry for the listings (-S has its own, in save.ts). */
export function serviceEntry(svc: VirtualService, format: number): string {
  const name = listServiceName(svc);
  let out: string;
  if (format & FMT_STATS) {
    const s = svc.stats.snapshot();
    out = `${left(name, 33)}${[s.conns, s.inpkts, s.outpkts, s.inbytes, s.outbytes].map((n) => largenum(n, format)).join('')}\n`;
  } else if (format & FMT_RATE) {
    const s = svc.stats.snapshot();
    out = `${left(name, 33)}${[s.cps, s.inpps, s.outpps, s.inbps, s.outbps].map((n) => largenum(n, format)).join('')}\n`;
  } else out = `${name}${serviceFlags(svc)}\n`;
  for (const d of orderDests(svc, !(format & FMT_NOSORT))) out += destRow(d, format);
  return out;
}

/** list_all: header, titles, every service. */
export function listAll(services: readonly VirtualService[], format: number): string {
  let out = headerLine() + titleLines(format);
  for (const svc of orderServices(services, !(format & FMT_NOSORT))) out += serviceEntry(svc, format);
  return out;
}

/** list_service: titles and the one service (no version header). */
export function listService(svc: VirtualService, format: number): string {
  return titleLines(format) + serviceEntry(svc, format);
}

export function timeoutLine(t: Timeouts): string {
  return `Timeout (tcp tcpfin udp): ${t.tcp} ${t.tcpfin} ${t.udp}\n`;
}

/** list_daemon: one line per running sync daemon; maxlen, group, port and ttl where the daemon reports them. */
export function daemonLines(daemons: readonly SyncDaemonInfo[]): string {
  return daemons
    .map((d) => {
      let line = `${d.state} sync daemon (mcast=${d.mcastIfn}, syncid=${d.syncid}`;
      if (d.maxLen) line += `, maxlen=${d.maxLen}`;
      if (d.group) line += `, group=${d.group}`;
      if (d.port) line += `, port=${d.port}`;
      if (d.ttl) line += `, ttl=${d.ttl}`;
      return `${line})\n`;
    })
    .join('');
}
