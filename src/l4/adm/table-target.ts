/**
 * An AdmTarget over a bare ServiceTable: what `tierlb adm --rules FILE` edits offline. No connections, no sync
 * daemons; timeouts start at the kernel's defaults (tcp 900, tcpfin 120, udp 300) and --set changes them.
 */
import { systemClock } from '../../common/clock.js';
import { TCP_DEFAULT_TIMEOUTS_MS, TCP_S_ESTABLISHED, TCP_S_FIN_WAIT } from '../conn/tcp.js';
import { UDP_DEFAULT_TIMEOUT_MS } from '../conn/udp.js';
import type { SchedulerContext } from '../schedulers/types.js';
import { ServiceTable } from '../services.js';
import { type AdmTarget, type ConnRow, checkTimeouts, type Timeouts } from './target.js';

/** The kernel's defaults, in seconds (the engine's timeout tables). */
export const DEFAULT_TIMEOUTS: Readonly<Timeouts> = {
  tcp: TCP_DEFAULT_TIMEOUTS_MS[TCP_S_ESTABLISHED] / 1000,
  tcpfin: TCP_DEFAULT_TIMEOUTS_MS[TCP_S_FIN_WAIT] / 1000,
  udp: UDP_DEFAULT_TIMEOUT_MS / 1000,
};

export class TableTarget implements AdmTarget {
  readonly table: ServiceTable;
  private timeouts: Timeouts = { ...DEFAULT_TIMEOUTS };

  constructor(ctx: SchedulerContext = { clock: systemClock, random: Math.random }) {
    this.table = new ServiceTable(ctx);
  }

  getTimeouts(): Timeouts {
    return { ...this.timeouts };
  }

  /** As the engine: values the kernel refuses are refused here too (EINVAL), so a rules file sees the same errors. */
  setTimeouts(t: Timeouts): void {
    checkTimeouts(t);
    if (t.tcp) this.timeouts.tcp = t.tcp;
    if (t.tcpfin) this.timeouts.tcpfin = t.tcpfin;
    if (t.udp) this.timeouts.udp = t.udp;
  }

  connections(): ConnRow[] {
    return [];
  }
}
