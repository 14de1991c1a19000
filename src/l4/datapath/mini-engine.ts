/**
 * A minimal stand-in for src/l4/engine.ts, used by the worker only when the real engine module is not there: a flow
 * table keyed by the 5-tuple, new TCP connections (SYN) and UDP flows scheduled by the service's scheduler, NAT
 * replies found by the reverse tuple, entries forgotten after FIN/RST or idle time. No persistence, no state machine.
 */
import type { Timeouts } from '../adm/target.js';
import type { Clock } from '../clock.js';
import type { RealServer } from '../dest.js';
import type { VirtualService } from '../service.js';
import { ServiceTable } from '../services.js';
import type { DpEngine, DpVerdict } from './forward.js';
import { type PacketMeta, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN } from './packet.js';

interface Flow {
  vaddr: string;
  vport: number;
  daddr: string;
  dport: number;
  dest: RealServer;
  svc: VirtualService;
  active: boolean;
  expires: number;
  key: string;
  out: string;
}

export class MiniEngine implements DpEngine {
  readonly table: ServiceTable;
  private readonly flows = new Map<string, Flow>();
  private readonly outFlows = new Map<string, Flow>();
  private timeouts: Timeouts = { tcp: 900, tcpfin: 120, udp: 300 };

  constructor(private readonly clock: Clock) {
    this.table = new ServiceTable({ clock, random: Math.random });
  }

  getTimeouts(): Timeouts {
    return { ...this.timeouts };
  }
  setTimeouts(t: Timeouts): void {
    this.timeouts = {
      tcp: t.tcp || this.timeouts.tcp,
      tcpfin: t.tcpfin || this.timeouts.tcpfin,
      udp: t.udp || this.timeouts.udp,
    };
  }
  connections() {
    return [];
  }

  private findService(p: PacketMeta): VirtualService | undefined {
    if (p.fwmark) {
      const s = this.table.get({ kind: 'fwm', family: p.family, fwmark: p.fwmark });
      if (s) return s;
    }
    const kind = p.protocol === 6 ? 'tcp' : p.protocol === 17 ? 'udp' : p.protocol === 132 ? 'sctp' : null;
    return kind ? this.table.get({ kind, family: p.family, addr: p.daddr, port: p.dport }) : undefined;
  }

  process(p: PacketMeta): DpVerdict {
    const key = `${p.protocol}|${p.saddr}|${p.sport}|${p.daddr}|${p.dport}`;
    let f = this.flows.get(key);
    const now = this.clock.now();
    if (f && p.protocol === 6 && p.tcpFlags & TCP_SYN && !(p.tcpFlags & TCP_ACK) && !f.active) {
      this.remove(f);
      f = undefined;
    }
    if (!f) {
      const svc = this.findService(p);
      if (!svc) return { kind: 'pass' };
      if (p.protocol === 6 && !(p.tcpFlags & TCP_SYN)) return { kind: 'drop', reason: 'no connection' };
      const dest = svc.scheduler.schedule(svc, p);
      if (!dest) return { kind: 'drop', reason: 'no destination available' };
      const dport = dest.port || p.dport;
      f = {
        vaddr: p.daddr,
        vport: p.dport,
        daddr: dest.addr,
        dport,
        dest,
        svc,
        active: true,
        expires: 0,
        key,
        out: '',
      };
      f.out = `${p.protocol}|${dest.addr}|${dport}|${p.saddr}|${p.sport}`;
      this.flows.set(key, f);
      if (dest.fwd === 'masq') this.outFlows.set(f.out, f);
      dest.bindConn('active');
    }
    this.touch(f, p, now);
    return { kind: 'forward', conn: f, dest: f.dest };
  }

  processReply(p: PacketMeta): DpVerdict {
    const f = this.outFlows.get(`${p.protocol}|${p.saddr}|${p.sport}|${p.daddr}|${p.dport}`);
    if (!f) return { kind: 'pass' };
    this.touch(f, p, this.clock.now());
    return { kind: 'forward', conn: f, dest: f.dest };
  }

  private touch(f: Flow, p: PacketMeta, now: number): void {
    if (p.protocol === 6 && p.tcpFlags & (TCP_FIN | TCP_RST) && f.active) {
      f.active = false;
      f.dest.moveConn('active', 'inactive');
    }
    const t = p.protocol !== 6 ? this.timeouts.udp : f.active ? this.timeouts.tcp : this.timeouts.tcpfin;
    f.expires = now + t * 1000;
  }

  private remove(f: Flow): void {
    this.flows.delete(f.key);
    this.outFlows.delete(f.out);
    f.dest.unbindConn(f.active ? 'active' : 'inactive');
  }

  tick(): void {
    const now = this.clock.now();
    for (const f of this.flows.values()) if (f.expires <= now) this.remove(f);
  }
}
