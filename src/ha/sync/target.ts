/**
 * Where a backup installs what it receives (ip_vs_proc_conn). `SyncTarget` is the interface; `EngineSyncTarget`
 * implements it on the director's Engine through the engine's public connection table and service lookup, so the
 * engine needs no sync code of its own.
 */

import { Connection, connAddrs, IPPROTO_TCP, IPPROTO_UDP } from '../../l4/conn/conn.js';
import { inKey, templateKey } from '../../l4/conn/table.js';
import type { RealServer } from '../../l4/dest.js';
import type { Engine, PacketMeta } from '../../l4/engine.js';
import type { VirtualService } from '../../l4/service.js';
import {
  CONN_F_BACKUP_UPD_MASK,
  CONN_F_FWD_MASK,
  CONN_F_INACTIVE,
  CONN_F_NOOUTPUT,
  CONN_F_TEMPLATE,
  type SyncConn,
} from './codec.js';

export type InstallOutcome =
  /** a new entry */
  | 'created'
  /** an existing entry took the new state and timeout */
  | 'updated'
  /** no virtual service matches the entry */
  | 'no-service'
  /** the service has no such real server */
  | 'no-dest'
  /** the connection table is at its bound */
  | 'table-full';

export interface SyncTarget {
  installSynced(c: SyncConn): InstallOutcome;
}

/** Timeout of a synced entry without one (version 0 messages): the protocol's for its state, 3 min for templates. */
const TEMPLATE_DEFAULT_TIMEOUT_MS = 180_000;
/** MAX_SCHEDULE_TIMEOUT / HZ */
const MAX_TIMEOUT_S = Math.floor(2147483647 / 1000);

export class EngineSyncTarget implements SyncTarget {
  constructor(readonly engine: Engine) {}

  installSynced(c: SyncConn): InstallOutcome {
    const eng = this.engine;
    const template = (c.flags & CONN_F_TEMPLATE) !== 0;
    const now = eng.clock.now();
    const existing = template
      ? eng.conns.getTemplate(templateKey(c.protocol, c.caddr, c.vaddr, c.vport))
      : eng.conns.getIn(inKey(c.protocol, c.caddr, c.cport, c.vaddr, c.vport));
    let cp: Connection;
    let outcome: InstallOutcome;
    if (existing) {
      cp = existing;
      const dest = cp.dest;
      // the activity flag of a real connection moves the server's counters
      if ((cp.flags ^ c.flags) & CONN_F_INACTIVE && !template && dest) {
        if (c.flags & CONN_F_INACTIVE) dest.moveConn('active', 'inactive');
        else dest.moveConn('inactive', 'active');
      }
      cp.flags = ((c.flags & CONN_F_BACKUP_UPD_MASK) | (cp.flags & ~CONN_F_BACKUP_UPD_MASK)) >>> 0;
      outcome = 'updated';
    } else {
      const found = this.findDest(c);
      if (typeof found === 'string') return found;
      if (eng.conns.size >= eng.conns.maxConns) return 'table-full';
      cp = new Connection({
        ...connAddrs(c),
        svc: found.svc,
        // forwarding method and NOOUTPUT come from the backup's own real server (ip_vs_bind_dest)
        flags: (c.flags & ~(CONN_F_FWD_MASK | CONN_F_NOOUTPUT)) >>> 0,
        fwmark: c.fwmark,
      });
      outcome = 'created';
      cp.state = c.state;
      cp.timeoutMs = this.timeoutMs(c, template);
      cp.expires = now + cp.timeoutMs;
      eng.conns.insert(cp, found.dest);
      // binding counted the connection inactive; a synced one keeps the master's activity flag
      if (!template && !(c.flags & CONN_F_INACTIVE)) {
        cp.flags &= ~CONN_F_INACTIVE;
        found.dest.moveConn('inactive', 'active');
      }
      return outcome;
    }
    cp.state = c.state;
    cp.timeoutMs = this.timeoutMs(c, template);
    eng.conns.touch(cp, now);
    return outcome;
  }

  private timeoutMs(c: SyncConn, template: boolean): number {
    if (c.timeout) return Math.min(c.timeout, MAX_TIMEOUT_S) * 1000;
    if (template) return TEMPLATE_DEFAULT_TIMEOUT_MS;
    if (c.protocol === IPPROTO_TCP) return this.engine.tcpTimeouts[c.state] ?? TEMPLATE_DEFAULT_TIMEOUT_MS;
    if (c.protocol === IPPROTO_UDP) return this.engine.udpTimeout;
    return TEMPLATE_DEFAULT_TIMEOUT_MS;
  }

  /** ip_vs_find_dest: the service by fwmark or protocol/VIP/port, then the real server by address and port. */
  private findDest(c: SyncConn): { svc: VirtualService; dest: RealServer } | 'no-service' | 'no-dest' {
    const pkt: PacketMeta = {
      family: c.family,
      protocol: c.protocol,
      saddr: c.caddr,
      sport: c.cport,
      daddr: c.vaddr,
      dport: c.vport,
      fwmark: c.fwmark,
      tcpFlags: 0,
      length: 0,
    };
    const svc = this.engine.findService(pkt);
    if (!svc) return 'no-service';
    const masq = (c.flags & CONN_F_FWD_MASK) === 0;
    const ports = c.fwmark && !masq ? [0, c.dport] : [c.dport, 0];
    for (const port of ports) {
      const dest = svc.dests.find((d) => d.addr === c.daddr && d.port === port);
      if (dest) return { svc, dest };
    }
    return 'no-dest';
  }
}

/** A SyncTarget that only records entries by their lookup key (tests, and a backup without an engine). */
export class MemorySyncTarget implements SyncTarget {
  readonly entries = new Map<string, SyncConn>();

  installSynced(c: SyncConn): InstallOutcome {
    const key =
      c.flags & CONN_F_TEMPLATE
        ? `T|${templateKey(c.protocol, c.caddr, c.vaddr, c.vport)}`
        : inKey(c.protocol, c.caddr, c.cport, c.vaddr, c.vport);
    const had = this.entries.has(key);
    this.entries.set(key, c);
    return had ? 'updated' : 'created';
  }
}
