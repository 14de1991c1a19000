/**
 * An AdmTarget over a bare ServiceTable: what `tierlb adm --rules FILE` edits offline. No connections, no sync
 * daemons; timeouts start at the kernel's defaults (tcp 900, tcpfin 120, udp 300) and --set changes them.
 */
import { systemClock } from '../clock.js';
import type { SchedulerContext } from '../schedulers/types.js';
import { ServiceTable } from '../services.js';
import type { AdmTarget, ConnRow, Timeouts } from './target.js';

export const DEFAULT_TIMEOUTS: Readonly<Timeouts> = { tcp: 900, tcpfin: 120, udp: 300 };

export class TableTarget implements AdmTarget {
  readonly table: ServiceTable;
  private timeouts: Timeouts = { ...DEFAULT_TIMEOUTS };

  constructor(ctx: SchedulerContext = { clock: systemClock, random: Math.random }) {
    this.table = new ServiceTable(ctx);
  }

  getTimeouts(): Timeouts {
    return { ...this.timeouts };
  }

  setTimeouts(t: Timeouts): void {
    if (t.tcp) this.timeouts.tcp = t.tcp;
    if (t.tcpfin) this.timeouts.tcpfin = t.tcpfin;
    if (t.udp) this.timeouts.udp = t.udp;
  }

  connections(): ConnRow[] {
    return [];
  }
}
