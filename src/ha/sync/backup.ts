/**
 * The backup side of connection sync (the backup thread + ip_vs_process_message): every datagram is validated and
 * decoded, and its entries are installed in a SyncTarget. Nothing throws on bad input; what is dropped or skipped is
 * counted by reason.
 */
import type { Logger } from '../../common/log.js';
import { type DecodedMessage, decodeMessage, type SyncDropReason, type SyncSkipReason } from './codec.js';
import type { InstallOutcome, SyncTarget } from './target.js';

export interface SyncBackupOptions {
  /** 0 accepts every syncid */
  syncid: number;
  /** recv_mesg_maxlen (recvMaxLen(mtu)) */
  maxLen?: number;
  target: SyncTarget;
  log?: Logger;
}

export interface SyncBackupCounters {
  /** datagrams received */
  messages: number;
  /** datagrams used (in part or whole) */
  accepted: number;
  /** whole datagrams dropped, by reason */
  dropped: Partial<Record<SyncDropReason, number>>;
  /** single entries skipped, by reason */
  skipped: Partial<Record<SyncSkipReason, number>>;
  /** entries handed to the target, by what the target did */
  installed: Partial<Record<InstallOutcome, number>>;
}

export class SyncBackup {
  readonly syncid: number;
  readonly maxLen?: number;
  readonly counters: SyncBackupCounters = { messages: 0, accepted: 0, dropped: {}, skipped: {}, installed: {} };
  private readonly target: SyncTarget;
  private readonly log?: Logger;

  constructor(o: SyncBackupOptions) {
    this.syncid = o.syncid;
    this.maxLen = o.maxLen;
    this.target = o.target;
    this.log = o.log;
  }

  /** One datagram from the sync socket. */
  receive(buf: Buffer): DecodedMessage {
    const k = this.counters;
    k.messages++;
    const m = decodeMessage(buf, { syncid: this.syncid, maxLen: this.maxLen });
    for (const r of m.skipped) k.skipped[r] = (k.skipped[r] ?? 0) + 1;
    // entries before a bad one were already installed by the kernel when it gave up on the rest
    for (const c of m.conns) {
      const out = this.target.installSynced(c);
      k.installed[out] = (k.installed[out] ?? 0) + 1;
    }
    if (m.dropped) {
      k.dropped[m.dropped] = (k.dropped[m.dropped] ?? 0) + 1;
      if (m.dropped !== 'syncid') this.log?.debug({ reason: m.dropped, len: buf.length }, 'sync message dropped');
    } else k.accepted++;
    return m;
  }
}
