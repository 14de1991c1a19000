/**
 * The master side of connection sync (ip_vs_sync_conn and the master thread): each processed packet may queue its
 * connection — and the persistence template controlling it — into the current message; full messages go out at
 * once, a partly filled one after IPVS_SYNC_FLUSH_TIME (2 s). No sockets here: `send` is injected.
 */
import { connAddrs } from '../../l4/conn/conn.js';
import { RealTimers, type TimerHandle, type Timers } from '../checks/timers.js';
import {
  CONN_F_HASHED,
  CONN_F_ONE_PACKET,
  CONN_F_TEMPLATE,
  connLength,
  SYNC_MESG_LEN,
  type SyncConn,
  SyncMessageBuilder,
  type SyncTuple,
} from './codec.js';
import { DEFAULT_SYNC_SYSCTL, type SyncMarks, type SyncSysctl, syncConnNeeded } from './rule.js';

/** What the master reads of a connection (the engine's Connection has these fields). */
export interface SyncSource extends SyncTuple {
  timeoutMs: number;
  /** incoming packets (cp->in_pkts) */
  inpkts: number;
  /** the persistence template (cp->control) */
  controlledBy: SyncSource | null;
}

/** The entry a connection is sent as. */
export function toSyncConn(c: SyncSource): SyncConn {
  return {
    ...connAddrs(c),
    flags: (c.flags & ~CONN_F_HASHED) >>> 0,
    state: c.state,
    fwmark: c.fwmark,
    timeout: Math.floor(c.timeoutMs / 1000),
  };
}

/** IPVS_SYNC_FLUSH_TIME */
export const SYNC_FLUSH_MS = 2000;
/** IPVS_SYNC_CHECK_PERIOD */
export const SYNC_CHECK_MS = 1000;

export interface SyncMasterOptions {
  syncid: number;
  /** the largest datagram (daemonMaxLen) */
  maxLen: number;
  send: (msg: Buffer) => void;
  timers?: Timers;
  sysctl?: Partial<SyncSysctl>;
  flushMs?: number;
}

export interface SyncMasterStats {
  messages: number;
  conns: number;
  bytes: number;
}

interface Marks extends SyncMarks {
  /** a template's own in_pkts (counts the syncs of the connections it controls) */
  tplPkts: number;
}

export class SyncMaster {
  readonly syncid: number;
  readonly maxLen: number;
  readonly sysctl: SyncSysctl;
  readonly stats: SyncMasterStats = { messages: 0, conns: 0, bytes: 0 };
  private readonly timers: Timers;
  private readonly send: (msg: Buffer) => void;
  private readonly flushMs: number;
  private readonly marks = new WeakMap<SyncSource, Marks>();
  private cur: SyncMessageBuilder | undefined;
  private timer: TimerHandle | undefined;
  private running = false;

  constructor(o: SyncMasterOptions) {
    this.syncid = o.syncid;
    this.maxLen = o.maxLen;
    this.send = o.send;
    this.timers = o.timers ?? new RealTimers();
    this.sysctl = { ...DEFAULT_SYNC_SYSCTL, ...o.sysctl };
    this.flushMs = o.flushMs ?? SYNC_FLUSH_MS;
  }

  /** Start the flush timer. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.arm();
  }

  /** Stop: the partly filled message is dropped, as the kernel's master thread does on exit. */
  stop(): void {
    this.running = false;
    this.timers.clear(this.timer);
    this.timer = undefined;
    this.cur = undefined;
  }

  /** ip_vs_in's hook after a packet of `cp` went through: ONE_PACKET entries count as sync_threshold. */
  packet(cp: SyncSource): void {
    const pkts = cp.flags & CONN_F_ONE_PACKET ? this.sysctl.syncThreshold : cp.inpkts;
    this.syncConn(cp, pkts);
  }

  /** ip_vs_sync_conn: queue `cp` if the rule says so, then its controlling template. */
  syncConn(cp: SyncSource, pkts: number): void {
    let c: SyncSource | null = cp;
    let n = pkts;
    // ONE_PACKET connections are never synced themselves, only their controller
    if (c.flags & CONN_F_ONE_PACKET) ({ c, n } = this.controller(c));
    while (c) {
      const m = this.marksOf(c);
      if (syncConnNeeded(this.sysctl, c, m, n, this.timers.clock.now())) this.queue(toSyncConn(c));
      ({ c, n } = this.controller(c));
    }
  }

  /** Send the partly filled message now. */
  flush(): void {
    const b = this.cur;
    this.cur = undefined;
    if (b && b.nrConns > 0) this.emit(b.finish());
  }

  private controller(cp: SyncSource): { c: SyncSource | null; n: number } {
    const ct = cp.controlledBy;
    if (!ct) return { c: null, n: 0 };
    if (ct.flags & CONN_F_TEMPLATE) {
      const m = this.marksOf(ct);
      return { c: ct, n: ++m.tplPkts };
    }
    return { c: ct, n: this.sysctl.syncThreshold };
  }

  private marksOf(c: SyncSource): Marks {
    let m = this.marks.get(c);
    if (!m) {
      m = { oldState: 0, syncEndtime: 0, tplPkts: 0 };
      this.marks.set(c, m);
    }
    return m;
  }

  private queue(e: SyncConn): void {
    if (this.cur?.add(e)) return;
    this.flush();
    // ip_vs_sync_buff_create: a new message holds at least its first entry, however small --sync-maxlen is
    const size = Math.max(this.maxLen, SYNC_MESG_LEN + connLength(e));
    this.cur = new SyncMessageBuilder(this.syncid, size, this.timers.clock.now());
    this.cur.add(e);
  }

  private emit(msg: Buffer): void {
    this.stats.messages++;
    this.stats.conns += msg[4];
    this.stats.bytes += msg.length;
    this.send(msg);
  }

  private arm(): void {
    this.timer = this.timers.set(Math.min(SYNC_CHECK_MS, this.flushMs), () => {
      if (!this.running) return;
      // entries that waited in the current message for the flush time go out
      if (this.cur && this.timers.clock.now() - this.cur.firstUse >= this.flushMs) this.flush();
      this.arm();
    });
  }
}
