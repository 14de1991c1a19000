/**
 * What `tierlb adm` operates on. The same ipvsadm code runs against a rules file (a ServiceTable read from -S text)
 * and against the live director (its engine, inside the daemon), so the engine implements this interface.
 */

import { AdmError } from '../../common/errors.js';
import type { ConnAddrs } from '../conn/conn.js';
import type { ServiceTable } from '../services.js';

/** ipvsadm --set / --timeout values, in seconds (0 in a --set argument means "leave unchanged"). */
export interface Timeouts {
  tcp: number;
  tcpfin: number;
  udp: number;
}

/** ip_vs_set_timeout accepts up to INT_MAX / HZ seconds (HZ=1000). */
export const MAX_TIMEOUT_S = Math.floor(2147483647 / 1000);

/** ip_vs_set_timeout's check of --set values: EINVAL unless each is a whole number of seconds in 0..MAX_TIMEOUT_S. */
export function checkTimeouts(t: Timeouts): void {
  for (const v of [t.tcp, t.tcpfin, t.udp])
    if (!Number.isInteger(v) || v < 0 || v > MAX_TIMEOUT_S) throw new AdmError('EINVAL', 'Invalid argument');
}

/** One row of `ipvsadm -L -c`: a connection or a persistence template. */
export interface ConnRow extends Omit<ConnAddrs, 'protocol'> {
  /** 'TCP' | 'UDP' | 'SCTP' | 'IP' (templates of fwmark services print as IP) */
  protocol: string;
  /** ipvsadm's state name: ESTABLISHED, SYN_RECV, ... ; UDP for udp; NONE for templates */
  state: string;
  /** milliseconds until the entry expires */
  expiresMs: number;
  template: boolean;
  /** fwmark of the service for templates of fwmark services (0 otherwise) */
  fwmark: number;
}

/**
 * A running sync daemon as `-L --daemon` shows it. The kernel (Linux >= 4.3) reports the settled maxlen, group, port
 * and TTL; ipvsadm prints each only when it is there (an older kernel reports none).
 */
export interface SyncDaemonInfo {
  state: 'master' | 'backup';
  mcastIfn: string;
  syncid: number;
  /** sync_maxlen: the largest message */
  maxLen?: number;
  /** the multicast group (inet_ntop form) */
  group?: string;
  port?: number;
  ttl?: number;
}

export interface AdmTarget {
  readonly table: ServiceTable;
  getTimeouts(): Timeouts;
  /** values of 0 leave the current value */
  setTimeouts(t: Timeouts): void;
  connections(): ConnRow[];
  daemons?(): SyncDaemonInfo[];
}
