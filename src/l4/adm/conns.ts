/**
 * ipvsadm -L -c: the connection table as ipvsadm prints /proc/net/ip_vs_conn (print_conn), from
 * AdmTarget.connections(). Expiry is whole seconds as mm:ss. Rows are printed as given: a template of a fwmark
 * service carries the mark as its virtual address (the kernel puts it in the first 32-bit word; the engine's
 * fwmarkAddr in service.ts), which ipvsadm shows as e.g. 0.0.39.16:0.
 */
import { familyOf, hostPort } from '../../common/addr.js';
import { left } from './format.js';
import { FMT_PERSISTENTCONN } from './parse.js';
import type { ConnRow } from './target.js';

export function connTitle(format: number): string {
  if (format & FMT_PERSISTENTCONN)
    return `IPVS connection entries\npro expire ${left('state', 11)} ${left('source', 18)} ${left('virtual', 18)} ${left('destination', 18)} ${left('pe name', 16)} pe_data\n`;
  return `IPVS connection entries\npro expire ${left('state', 11)} ${left('source', 18)} ${left('virtual', 18)} destination\n`;
}

/** mm:ss, minutes not capped (printf "%02d:%02d") */
export function expireString(ms: number): string {
  const secs = Math.floor(Math.max(0, ms) / 1000);
  return `${String(Math.floor(secs / 60)).padStart(2, '0')}:${String(secs % 60).padStart(2, '0')}`;
}

export function connRow(row: ConnRow): string {
  const dfam = familyOf(row.daddr) || row.family;
  const c = hostPort(row.caddr, row.cport, row.family);
  const v = hostPort(row.vaddr, row.vport, row.family);
  const d = hostPort(row.daddr, row.dport, dfam);
  return `${left(row.protocol, 3)} ${left(expireString(row.expiresMs), 6)} ${left(row.state, 11)} ${left(c, 18)} ${left(v, 18)} ${d}\n`;
}

export function listConnections(rows: readonly ConnRow[], format: number): string {
  return connTitle(format) + rows.map(connRow).join('');
}
