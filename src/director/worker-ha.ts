/**
 * The HA side of the director's data-path worker (the thread that owns the engine):
 * - the connection sync daemons (`--start-daemon` / `--stop-daemon` / `-L --daemon`): they need the engine — the
 *   master reads each forwarded packet's connection (the kernel's ip_vs_in sync hook), the backup installs what it
 *   receives through EngineSyncTarget — so they run here. While one runs the worker yields to its event loop once
 *   per pass (sockets and the flush timer need it);
 * - DR real servers under health checks keep their mark route while out of the table (pin), so a check still
 *   reaches them through the VIP;
 * - the numbers behind `/metrics` (snapshot).
 */

import type { SyncBackupCounters } from '../ha/sync/backup.js';
import { SyncDaemonControl, type SyncDaemonStart, startFromAdm } from '../ha/sync/daemon.js';
import type { SyncMasterStats } from '../ha/sync/master.js';
import { EngineSyncTarget } from '../ha/sync/target.js';
import { CMD_STARTDAEMON, CMD_STOPDAEMON, parseCommand } from '../l4/adm/parse.js';
import type { Counters, Forwarder } from '../l4/datapath/forward.js';
import type { Engine, EngineStats } from '../l4/engine.js';
import { describeService } from '../l4/service.js';
import type { StatsSnapshot } from '../l4/stats.js';

export type HaRequest =
  | { op: 'sync-start'; start: SyncDaemonStart }
  | { op: 'sync-stop'; state?: 'master' | 'backup' }
  | { op: 'pin'; rips: string[] }
  | { op: 'snapshot' };

export interface DestSnapshot {
  addr: string;
  port: number;
  fwd: string;
  weight: number;
  activeConns: number;
  inactConns: number;
  stats: StatsSnapshot;
}

export interface ServiceSnapshot {
  service: string;
  stats: StatsSnapshot;
  dests: DestSnapshot[];
}

export interface MetricsSnapshot {
  services: ServiceSnapshot[];
  counters: Counters;
  engine?: EngineStats;
  sync: { master?: SyncMasterStats; backup?: SyncBackupCounters; daemons: { state: string; syncid: number }[] };
}

export class WorkerHa {
  readonly sync: SyncDaemonControl;
  /** a sync daemon runs: the worker yields to its event loop once per pass */
  active = false;

  constructor(
    private readonly engine: Engine,
    private readonly fwd: Forwarder,
  ) {
    this.sync = new SyncDaemonControl({ target: new EngineSyncTarget(engine) });
    // -L --daemon lists through the AdmTarget's daemons()
    engine.daemons = () => this.sync.list();
  }

  private refresh(): void {
    this.active = this.sync.list().length > 0;
    const master = this.sync.master;
    this.fwd.onForward = master ? (conn) => master.packet(conn) : null;
  }

  async request(r: HaRequest): Promise<unknown> {
    switch (r.op) {
      case 'sync-start':
        await this.sync.start(r.start);
        this.refresh();
        return this.sync.list();
      case 'sync-stop':
        if (r.state) await this.sync.stop(r.state);
        else await this.sync.stopAll();
        this.refresh();
        return this.sync.list();
      case 'pin': {
        this.fwd.pinned.clear();
        const marks: Record<string, number> = {};
        for (const rip of r.rips) {
          this.fwd.pinned.add(rip);
          marks[rip] = this.fwd.markFor(rip);
        }
        return marks;
      }
      case 'snapshot':
        return this.snapshot();
    }
  }

  /**
   * `--start-daemon` / `--stop-daemon` (async: sockets) are answered here, before the synchronous ipvsadm runner;
   * null for every other command line.
   */
  async adm(line: string): Promise<string | null> {
    let argv: string[];
    try {
      argv = (JSON.parse(line) as { argv: string[] }).argv;
      if (!Array.isArray(argv) || !argv.some((a) => a.includes('daemon'))) return null;
    } catch {
      return null;
    }
    let ce: ReturnType<typeof parseCommand>;
    try {
      ce = parseCommand(argv, { out: () => {}, err: () => {} });
    } catch {
      return null;
    }
    if (!ce || (ce.cmd !== CMD_STARTDAEMON && ce.cmd !== CMD_STOPDAEMON)) return null;
    try {
      const d = ce.daemon;
      if (ce.cmd === CMD_STARTDAEMON) await this.request({ op: 'sync-start', start: startFromAdm(d) });
      else await this.request({ op: 'sync-stop', state: d.state || undefined });
      return JSON.stringify({ code: 0, stdout: '', stderr: '' });
    } catch (e) {
      // a failed operation: ipvsadm prints the error and returns -1 (exit 255)
      return JSON.stringify({ code: 255, stdout: '', stderr: `${(e as Error).message}\n` });
    }
  }

  snapshot(): MetricsSnapshot {
    const services = this.engine.table.list().map((svc) => ({
      service: describeService(svc),
      stats: svc.stats.snapshot(),
      dests: svc.dests.map((d) => ({
        addr: d.addr,
        port: d.port,
        fwd: d.fwd,
        weight: d.weight,
        activeConns: d.activeConns,
        inactConns: d.inactConns,
        stats: d.stats.snapshot(),
      })),
    }));
    return {
      services,
      counters: this.fwd.counters,
      engine: this.engine.stats(),
      sync: {
        master: this.sync.master ? { ...this.sync.master.stats } : undefined,
        backup: this.sync.backup ? structuredClone(this.sync.backup.counters) : undefined,
        daemons: this.sync.list().map((d) => ({ state: d.state, syncid: d.syncid })),
      },
    };
  }
}
