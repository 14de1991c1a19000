/**
 * The connection table (ip_vs_conn.c): an index for client→director lookups, one for NAT replies (both numeric, one
 * of each per family: flow4.ts, flow6.ts), one for persistence templates, a dense array for O(1) random sampling
 * (ip_vs_random_dropentry) and an expiry heap driven by `expire(now)`. Binding to real servers keeps ActiveConn/InActConn/PersistConn the way ip_vs_bind_dest and
 * ip_vs_unbind_dest do.
 */
import { ipv4ToInt } from '../../common/addr.js';
import type { RealServer } from '../dest.js';
import { SVC_F_ONEPACKET } from '../service.js';
import {
  ADDR6_C,
  ADDR6_D,
  ADDR6_V,
  addr4,
  CONN_F_FWD_MASK,
  CONN_F_INACTIVE,
  CONN_F_MASQ,
  type Connection,
  CTPL_S_ASSURED,
  destConnFlags,
  IPPROTO_TCP,
} from './conn.js';
import { FlowIndex4 } from './flow4.js';
import { FlowIndex6, ipv6Words } from './flow6.js';
import { ExpiryHeap } from './heap.js';
import { TCP_S_ESTABLISHED, TCP_S_SYN_RECV, TCP_S_SYNACK } from './tcp.js';

/**
 * Bytes one entry costs, for the table's byte estimate (entries × this) and the memory bound: measured by
 * `npm run bench:conn-bytes` (heap after gc, per entry, 1M entries: 228 DR, 271 NAT, the entry with its share of
 * the indexes, expiry heap and dense array), rounded up from the larger.
 */
export const CONN_ENTRY_BYTES = 272;
/** The same for an IPv6 entry (406 DR, 509 NAT at 1M entries: it keeps the client's address string), rounded up. */
export const CONN6_ENTRY_BYTES = 512;

/** A template (or any entry) that still controls connections is re-armed for this long (ip_vs_conn_expire). */
export const CONTROL_REARM_MS = 60_000;
/** todrop_entry: entries that saw traffic in the last 60 s are never dropped. */
const TODROP_IDLE_MS = 60_000;

export function inKey(protocol: number, caddr: string, cport: number, vaddr: string, vport: number): string {
  return `${protocol}|${caddr}|${cport}|${vaddr}|${vport}`;
}

/** Key of a reply packet daddr:dport → caddr:cport (same layout as a packet's source → destination). */
export function outKey(protocol: number, saddr: string, sport: number, daddr: string, dport: number): string {
  return `${protocol}|${saddr}|${sport}|${daddr}|${dport}`;
}

export function templateKey(protocol: number, caddr: string, vaddr: string, vport: number): string {
  return `${protocol}|${caddr}|${vaddr}|${vport}`;
}

/** The address words of an IPv6 inKey()/outKey() string being looked up: source at 0, destination at 4. */
const KEY6 = new Int32Array(8);
/** An IPv6 entry's caddr, vaddr, daddr words while it is indexed (INS6) and unindexed (DEL6). */
const INS6 = new Int32Array(12);
const DEL6 = new Int32Array(12);

/** Look an inKey()/outKey() string up in the numeric index of its family (undefined for a malformed key). */
function byKey(key: string, idx4: FlowIndex4<Connection>, idx6: FlowIndex6<Connection>): Connection | undefined {
  const f = key.split('|');
  if (f.length !== 5) return undefined;
  const six = f[1].includes(':');
  if (six !== f[3].includes(':')) return undefined;
  const p = Number(f[0]);
  if (!six) return idx4.get(p, ipv4ToInt(f[1]), Number(f[2]), ipv4ToInt(f[3]), Number(f[4]));
  ipv6Words(f[1], KEY6, 0);
  ipv6Words(f[3], KEY6, 4);
  return idx6.get(p, KEY6, 0, Number(f[2]), KEY6, 4, Number(f[4]));
}

export interface ConnTableEvents {
  /** called after an entry left the table (expired or dropped) */
  onRemove?(conn: Connection, why: 'expired' | 'dropped'): void;
}

export class ConnTable {
  /** connections client → VIP and (NAT) real server → client, by family, keyed by numbers */
  private readonly in4 = new FlowIndex4<Connection>();
  private readonly out4 = new FlowIndex4<Connection>();
  private readonly in6 = new FlowIndex6<Connection>();
  private readonly out6 = new FlowIndex6<Connection>();
  private readonly byTemplate = new Map<string, Connection>();
  private readonly all: Connection[] = [];
  private readonly heap = new ExpiryHeap<Connection>();
  /** heap entries whose connection already left the table */
  private stale = 0;
  /** todrop_counter[] of todrop_entry */
  private readonly todropCounter = new Int8Array(9);

  constructor(
    public maxConns: number,
    private readonly random: () => number,
    private readonly events: ConnTableEvents = {},
  ) {}

  get size(): number {
    return this.all.length;
  }

  /** IPv6 entries in the table (for the byte estimate) */
  size6 = 0;

  /** The table's memory, estimated: entries × the bytes measured for their family (CONN_ENTRY_BYTES, CONN6_...). */
  get bytes(): number {
    return (this.all.length - this.size6) * CONN_ENTRY_BYTES + this.size6 * CONN6_ENTRY_BYTES;
  }

  /** free entries before the bound is hit */
  get available(): number {
    return Math.max(0, this.maxConns - this.all.length);
  }

  /** Lookup by an inKey() string (any family). */
  getIn(key: string): Connection | undefined {
    return byKey(key, this.in4, this.in6);
  }

  /** Lookup by an outKey() string (any family). */
  getOut(key: string): Connection | undefined {
    return byKey(key, this.out4, this.out6);
  }

  /** The hot path's lookup of an IPv4 packet client → VIP (addresses as unsigned 32-bit numbers): no key string. */
  getIn4(protocol: number, saddr: number, sport: number, daddr: number, dport: number): Connection | undefined {
    return this.in4.get(protocol, saddr, sport, daddr, dport);
  }

  /** The hot path's lookup of an IPv4 NAT reply real server → client. */
  getOut4(protocol: number, saddr: number, sport: number, daddr: number, dport: number): Connection | undefined {
    return this.out4.get(protocol, saddr, sport, daddr, dport);
  }

  /**
   * The hot path's lookup of an IPv6 packet client → VIP: the addresses as four 32-bit words at s[sOff..] and d[dOff..]
   * (the parser's words): no key string.
   */
  getIn6(
    protocol: number,
    s: Int32Array,
    sOff: number,
    sport: number,
    d: Int32Array,
    dOff: number,
    dport: number,
  ): Connection | undefined {
    return this.in6.get(protocol, s, sOff, sport, d, dOff, dport);
  }

  /** The hot path's lookup of an IPv6 NAT reply real server → client. */
  getOut6(
    protocol: number,
    s: Int32Array,
    sOff: number,
    sport: number,
    d: Int32Array,
    dOff: number,
    dport: number,
  ): Connection | undefined {
    return this.out6.get(protocol, s, sOff, sport, d, dOff, dport);
  }

  getTemplate(key: string): Connection | undefined {
    return this.byTemplate.get(key);
  }

  /** Snapshot of every entry (connections and templates). */
  entries(): Connection[] {
    return this.all.slice();
  }

  /**
   * Bind a new entry to `dest` and hash it (ip_vs_conn_new + ip_vs_bind_dest + ip_vs_conn_hash). The caller checked
   * the bound. `timeoutMs`/`expires` are taken as set on the entry.
   */
  insert(conn: Connection, dest: RealServer | null): void {
    if (dest) this.bindDest(conn, dest);
    if (conn.template) {
      conn.inKey = templateKey(conn.protocol, conn.caddr, conn.vaddr, conn.vport);
      const old = this.byTemplate.get(conn.inKey);
      if (old && old !== conn) this.invalidateTemplate(old);
      this.byTemplate.set(conn.inKey, conn);
    } else if (conn.family === 4) {
      const p = conn.protocol;
      const c4 = conn.caddr4;
      const v4 = addr4(conn.vaddr);
      const old = this.in4.get(p, c4, conn.cport, v4, conn.vport);
      if (old && old !== conn) this.unindex(old);
      this.in4.set(p, c4, conn.cport, v4, conn.vport, conn);
      conn.indexedIn = true;
      if ((conn.flags & CONN_F_FWD_MASK) === CONN_F_MASQ) {
        const d4 = addr4(conn.daddr);
        const o = this.out4.set(p, d4, conn.dport, c4, conn.cport, conn);
        if (o && o !== conn) o.indexedOut = false;
        conn.indexedOut = true;
      }
    } else {
      const p = conn.protocol;
      const w = INS6;
      ipv6Words(conn.caddr, w, ADDR6_C);
      ipv6Words(conn.vaddr, w, ADDR6_V);
      // unindex() below fills its own words (DEL6), not these
      const old = this.in6.get(p, w, ADDR6_C, conn.cport, w, ADDR6_V, conn.vport);
      if (old && old !== conn) this.unindex(old);
      this.in6.set(p, w, ADDR6_C, conn.cport, w, ADDR6_V, conn.vport, conn);
      conn.indexedIn = true;
      if ((conn.flags & CONN_F_FWD_MASK) === CONN_F_MASQ) {
        ipv6Words(conn.daddr, w, ADDR6_D);
        const o = this.out6.set(p, w, ADDR6_D, conn.dport, w, ADDR6_C, conn.cport, conn);
        if (o && o !== conn) o.indexedOut = false;
        conn.indexedOut = true;
      }
    }
    conn.slot = this.all.length;
    this.all.push(conn);
    if (conn.family === 6) this.size6++;
    this.arm(conn);
  }

  /** ip_vs_control_add */
  controlAdd(conn: Connection, ct: Connection): void {
    if (conn.controlledBy) this.controlDel(conn);
    conn.controlledBy = ct;
    ct.nControl++;
  }

  /** ip_vs_control_del */
  controlDel(conn: Connection): void {
    const ct = conn.controlledBy;
    if (!ct) return;
    conn.controlledBy = null;
    ct.nControl--;
  }

  /** ip_vs_control_assure_ct: the controlling template has seen a working connection. */
  assure(conn: Connection): void {
    const ct = conn.controlledBy;
    if (ct?.template) ct.state |= CTPL_S_ASSURED;
  }

  /**
   * Invalidate a template whose real server is gone (ip_vs_check_template): it no longer matches lookups (the kernel
   * rehashes it with ports 0xffff) and lives on only until its timer runs out.
   */
  invalidateTemplate(ct: Connection): void {
    if (ct.vport === 0xffff) return;
    if (ct.inKey && this.byTemplate.get(ct.inKey) === ct) this.byTemplate.delete(ct.inKey);
    ct.inKey = '';
    ct.vport = 0xffff;
    ct.dport = 0xffff;
    ct.cport = 0;
  }

  /** Restart the entry's timer from `now` with its current timeout (__ip_vs_conn_put_timer). */
  touch(conn: Connection, now: number): void {
    conn.expires = now + conn.timeoutMs;
    if (!conn.inHeap && conn.live) this.arm(conn);
  }

  /**
   * Expire the entry now (ip_vs_conn_expire_now): unless it still controls connections, it leaves the table at once.
   * Returns whether it left.
   */
  expireNow(conn: Connection, now: number): boolean {
    if (!conn.live) return true;
    if (conn.nControl > 0) {
      conn.expires = now;
      return false;
    }
    this.remove(conn, 'expired');
    return true;
  }

  /**
   * Delete an entry outside its timer (ip_vs_conn_del with cp->timeout = 0): a controlling template that is left
   * without connections and was never assured goes with it.
   */
  drop(conn: Connection): void {
    if (!conn.live || conn.nControl > 0) return;
    const ct = conn.controlledBy;
    this.remove(conn, 'dropped');
    if (ct?.live && ct.nControl === 0 && !(ct.template && ct.state & CTPL_S_ASSURED)) this.remove(ct, 'dropped');
  }

  /** Run every due timer (ip_vs_conn_expire). O(due · log n). Returns how many entries left the table. */
  expire(now: number): number {
    let n = 0;
    const heap = this.heap;
    while (heap.peekTime() <= now) {
      const conn = heap.pop() as Connection;
      conn.inHeap = false;
      if (!conn.live) {
        this.stale--;
        continue;
      }
      if (conn.expires > now) {
        this.arm(conn);
        continue;
      }
      if (conn.nControl > 0) {
        // do I control anybody? then expire later
        conn.timeoutMs = CONTROL_REARM_MS;
        conn.expires = now + CONTROL_REARM_MS;
        this.arm(conn);
        continue;
      }
      this.remove(conn, 'expired');
      n++;
    }
    if (this.stale > 1024 && this.stale > this.heap.size >> 1) {
      this.heap.filter((c) => {
        if (c.live) return true;
        c.inHeap = false;
        return false;
      });
      this.stale = 0;
    }
    return n;
  }

  /**
   * ip_vs_random_dropentry: look at 1/32 of the table at random and drop half-open TCP entries, unassured templates and
   * idle entries with few packets (todrop_entry). Returns how many were dropped.
   */
  randomDrop(now: number): number {
    const probes = Math.max(1, this.all.length >> 5);
    let dropped = 0;
    for (let i = 0; i < probes && this.all.length > 0; i++) {
      const conn = this.all[Math.floor(this.random() * this.all.length)];
      if (this.dropCandidate(conn, now)) {
        this.drop(conn);
        dropped++;
      }
    }
    return dropped;
  }

  /**
   * Make room for one entry when the table is full: probe a few random entries and drop the first half-open TCP one
   * (the drop_entry rule without its rate limiting). Returns whether an entry was freed.
   */
  evictHalfOpen(probes = 8): boolean {
    for (let i = 0; i < probes && this.all.length > 0; i++) {
      const conn = this.all[Math.floor(this.random() * this.all.length)];
      if (
        conn.nControl === 0 &&
        !conn.template &&
        conn.protocol === IPPROTO_TCP &&
        (conn.state === TCP_S_SYN_RECV || conn.state === TCP_S_SYNACK)
      ) {
        this.drop(conn);
        return true;
      }
    }
    return false;
  }

  /** Remove everything (ip_vs_conn_flush). */
  flush(): number {
    const n = this.all.length;
    for (let i = this.all.length - 1; i >= 0; i--) {
      const c = this.all[i];
      if (c.nControl === 0) this.remove(c, 'dropped');
    }
    // what is left are templates whose connections are now gone
    for (let i = this.all.length - 1; i >= 0; i--) this.remove(this.all[i], 'dropped');
    this.heap.clear();
    for (const c of this.all) c.inHeap = false;
    this.stale = 0;
    return n;
  }

  private dropCandidate(conn: Connection, now: number): boolean {
    if (conn.nControl > 0) return false;
    if (conn.template) {
      if (conn.svc.flags & SVC_F_ONEPACKET) return this.todropEntry(conn, now);
      return !(conn.state & CTPL_S_ASSURED);
    }
    if (conn.protocol === IPPROTO_TCP) {
      if (conn.state === TCP_S_SYN_RECV || conn.state === TCP_S_SYNACK) return true;
      if (conn.state === TCP_S_ESTABLISHED) return this.todropEntry(conn, now);
      return false;
    }
    return this.todropEntry(conn, now);
  }

  /** todrop_entry: drop idle entries with i ∈ [1, 8] incoming packets, every i-th time one is looked at. */
  private todropEntry(conn: Connection, now: number): boolean {
    if (now - (conn.expires - conn.timeoutMs) < TODROP_IDLE_MS) return false;
    const i = conn.inpkts;
    if (i > 8 || i < 1) return false;
    if (--this.todropCounter[i] > 0) return false;
    this.todropCounter[i] = i;
    return true;
  }

  private arm(conn: Connection): void {
    conn.inHeap = true;
    this.heap.push(conn.expires, conn);
  }

  private bindDest(conn: Connection, dest: RealServer): void {
    conn.flags |= conn.template ? destConnFlags(dest) & ~CONN_F_INACTIVE : destConnFlags(dest);
    conn.dest = dest;
    dest.bindConn(conn.template ? 'template' : conn.inactive ? 'inactive' : 'active');
  }

  private unbindDest(conn: Connection): void {
    const dest = conn.dest;
    if (!dest) return;
    dest.unbindConn(conn.template ? 'template' : conn.inactive ? 'inactive' : 'active');
  }

  private unindex(conn: Connection): void {
    // IPv6 entries keep no words (an Int32Array per entry costs more than the entry): they are parsed again here
    let w: Int32Array | null = null;
    if (conn.family === 6 && (conn.indexedIn || conn.indexedOut)) {
      w = DEL6;
      ipv6Words(conn.caddr, w, ADDR6_C);
      if (conn.indexedIn) ipv6Words(conn.vaddr, w, ADDR6_V);
      if (conn.indexedOut) ipv6Words(conn.daddr, w, ADDR6_D);
    }
    if (conn.indexedIn) {
      if (w) this.in6.delete(conn.protocol, w, ADDR6_C, conn.cport, w, ADDR6_V, conn.vport, conn);
      else this.in4.delete(conn.protocol, conn.caddr4, conn.cport, addr4(conn.vaddr), conn.vport, conn);
      conn.indexedIn = false;
    }
    if (conn.indexedOut) {
      if (w) this.out6.delete(conn.protocol, w, ADDR6_D, conn.dport, w, ADDR6_C, conn.cport, conn);
      else this.out4.delete(conn.protocol, addr4(conn.daddr), conn.dport, conn.caddr4, conn.cport, conn);
      conn.indexedOut = false;
    }
    if (conn.inKey) {
      if (this.byTemplate.get(conn.inKey) === conn) this.byTemplate.delete(conn.inKey);
      conn.inKey = '';
    }
  }

  private remove(conn: Connection, why: 'expired' | 'dropped'): void {
    if (!conn.live) return;
    this.unindex(conn);
    this.controlDel(conn);
    this.unbindDest(conn);
    if (conn.family === 6) this.size6--;
    const last = this.all.pop() as Connection;
    if (last !== conn) {
      this.all[conn.slot] = last;
      last.slot = conn.slot;
    }
    conn.slot = -1;
    if (conn.inHeap) this.stale++;
    this.events.onRemove?.(conn, why);
  }
}
