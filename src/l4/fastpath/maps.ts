/**
 * The engine's side of the kernel fast path: loads fastpath.bpf.o (compiled by scripts/build-bpf.sh), attaches it at
 * tc ingress on the director's interfaces and writes its maps as the engine decides (the FastPath interface of
 * engine.ts). The layouts below mirror the structs of fastpath.bpf.c byte for byte.
 *
 * Ordering: a flow is written to the kernel only after the verdicts of the batch that made it eligible were sent
 * (flushPending, called by the worker after each verdict flush), and written unarmed: the program arms it once every
 * packet of the flow that went to the queue had its verdict (arming.ts: tags in the queued packets' timestamps, the
 * arm maps), so no packet of the flow still in the NFQUEUE is overtaken by its successors forwarded in the kernel.
 */
import { networkInterfaces } from 'node:os';
import { ipv4ToInt, ipv6ToBytes } from '../../common/addr.js';
import { type BpfMap, BpfObject, builtObjectPath, possibleCpus } from '../../sys/bpf.js';
import type { Connection } from '../conn/conn.js';
import type { RealServer } from '../dest.js';
import type { FastPath, KernelFlow } from '../engine.js';
import { Arming, parseTag } from './arming.js';

export const PROG_NAME = 'tierlb_fastpath';
export const METHOD_DR = 1;
export const METHOD_NAT = 2;
export const METHOD_TUN = 3;
export const AF_INET = 2;
export const AF_INET6 = 10;
export const MAX_REALS = 4096;

/** Per-CPU counter indexes of fastpath.bpf.c (enum C_*), in order. */
export const COUNTER_NAMES = [
  'hitDr',
  'hitNat',
  'hitNatReply',
  'missNoFlow',
  'missTcpFlags',
  'missProtocol',
  'missFragment',
  'missIpOptions',
  'missV6Ext',
  'missPull',
  'missRsDisabled',
  'missMethod',
  'missTtl',
  'missFib',
  'missMtu',
  'missRewrite',
  'notIp',
  'missUnarmed',
  'hitTun',
  'missEncap',
] as const;
export type CounterName = (typeof COUNTER_NAMES)[number];

export const FLOW4_KEY = 16;
export const FLOW6_KEY = 40;
export const FLOW_VAL = 88;
export const REAL_VAL = 48;

/** The object next to this module (dist/) or, under tsx, the one npm run build put in dist/. */
export function defaultObjectPath(): string {
  return builtObjectPath('TIERLB_BPF_OBJECT', import.meta.url, 'l4/fastpath', 'fastpath.bpf.o');
}

function putAddr(b: Buffer, off: number, addr: string): void {
  if (addr.includes(':')) b.set(ipv6ToBytes(addr), off);
  else b.writeUInt32BE(ipv4ToInt(addr), off);
}

/** struct flow4_key / flow6_key: saddr, daddr, sport, dport (network order), proto. */
export function flowKey(family: 4 | 6, proto: number, saddr: string, sport: number, daddr: string, dport: number) {
  const b = Buffer.alloc(family === 4 ? FLOW4_KEY : FLOW6_KEY);
  const n = family === 4 ? 4 : 16;
  putAddr(b, 0, saddr);
  putAddr(b, n, daddr);
  b.writeUInt16BE(sport, 2 * n);
  b.writeUInt16BE(dport, 2 * n + 2);
  b[2 * n + 4] = proto;
  return b;
}

export interface FlowValue {
  rs: number;
  method: number;
  natAddr?: string;
  natPort?: number;
  replyIfindex?: number;
  /** false: the program lets the flow's packets fall through, tagged, until it arms the entry (default true) */
  armed?: boolean;
  /** the entry's name in the tags of its unarmed packets */
  token?: number;
}

/** Offset of struct flow_val's `armed` bytes (request, reply). */
export const FLOW_ARMED = 5;

export function flowValue(v: FlowValue): Buffer {
  const b = Buffer.alloc(FLOW_VAL);
  b.writeUInt32LE(v.rs, 0);
  b[4] = v.method;
  b[FLOW_ARMED] = v.armed === false ? 0 : 1;
  b[FLOW_ARMED + 1] = v.armed === false ? 0 : 1;
  if (v.natAddr) putAddr(b, 8, v.natAddr);
  b.writeUInt16BE(v.natPort ?? 0, 24);
  b.writeUInt32LE(v.replyIfindex ?? 0, 28);
  b.writeUInt32LE(v.token ?? 0, 32);
  return b;
}

/** The state and counters part of struct flow_val. */
export function readFlowValue(
  b: Buffer,
): { lastSeenNs: bigint; armed: [boolean, boolean]; passed: [number, number] } & Omit<KernelFlow, 'lastSeenMs'> {
  return {
    armed: [b[FLOW_ARMED] !== 0, b[FLOW_ARMED + 1] !== 0],
    passed: [b.readUInt32LE(36), b.readUInt32LE(40)],
    lastSeenNs: b.readBigUInt64LE(48),
    packets: Number(b.readBigUInt64LE(56)),
    bytes: Number(b.readBigUInt64LE(64)),
    replyPackets: Number(b.readBigUInt64LE(72)),
    replyBytes: Number(b.readBigUInt64LE(80)),
  };
}

export interface RealValue {
  /** 0: the program looks the next hop up in the FIB */
  ifindex: number;
  family: 4 | 6;
  nh: string;
  enabled: boolean;
  /** TUN: the outer header's source (default: the FIB's preferred source for nh, linux 6.8+) */
  src?: string;
}

export function realValue(r: RealValue): Buffer {
  const b = Buffer.alloc(REAL_VAL);
  b.writeUInt32LE(r.ifindex, 0);
  b.writeUInt32LE(r.family === 4 ? AF_INET : AF_INET6, 4);
  putAddr(b, 8, r.nh);
  b.writeUInt32LE(r.enabled ? 1 : 0, 24);
  if (r.src) putAddr(b, 32, r.src);
  return b;
}

/** Index of an interface by name (/sys/class/net/NAME/ifindex). */
export async function ifindexOf(name: string): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  return Number.parseInt(await readFile(`/sys/class/net/${name}/ifindex`, 'utf8'), 10);
}

/** The interfaces the program goes on by default: every one with an address, but loopback. */
export function defaultInterfaces(): string[] {
  return Object.entries(networkInterfaces())
    .filter(([name, list]) => name !== 'lo' && (list ?? []).some((a) => !a.internal))
    .map(([name]) => name);
}

export interface FastPathStats {
  counters: Record<CounterName, number>;
  flows4: number;
  flows6: number;
  natReply4: number;
  natReply6: number;
  reals: number;
  /** entries written and waiting to be armed */
  unarmed: number;
  attached: { ifindex: number; kind: string }[];
}

export interface KernelFastPathOptions {
  objectPath?: string;
  maxFlows?: number;
  /** ms on the engine clock for a bpf_ktime_get_ns() value (CLOCK_MONOTONIC); default ns / 1e6 (monotonicClock) */
  nsToMs?: (ns: bigint) => number;
}

/** The loaded program and its maps, written as the engine's FastPath. */
export class KernelFastPath implements FastPath {
  readonly obj: BpfObject;
  readonly flows4: BpfMap;
  readonly flows6: BpfMap;
  readonly natReply4: BpfMap;
  readonly natReply6: BpfMap;
  readonly reals: BpfMap;
  readonly counters: BpfMap;
  readonly arm4: BpfMap;
  readonly arm6: BpfMap;
  /** real server address → index in the reals map (the entry is its next hop: one per address, never freed) */
  private readonly realIndex = new Map<string, number>();
  /** the map keys of the connections in the kernel, built once (tick() reads every flow each second) */
  private readonly keyCache = new Map<Connection, { req: Buffer; reply: Buffer | null }>();
  private nextReal = 0;
  /** writes waiting for the current batch's verdicts */
  private pending: (() => void)[] = [];
  /** entries written unarmed, by token, until the program armed them */
  private readonly arming = new Arming<Connection>();
  /** a connection's token while it waits to be armed */
  private readonly tokenOf = new Map<Connection, number>();
  private readonly armVal = Buffer.alloc(8);
  /** the ingress interface of the packet being handled (replies of NAT flows leave through it) */
  currentIndev = 0;
  private readonly nsToMs: (ns: bigint) => number;
  private readonly val = Buffer.alloc(FLOW_VAL);
  private readonly attachments: ReturnType<BpfObject['attachIngress']>[] = [];
  errors = 0;

  /** Load the object (throws BpfError with the fix: BPF_NO_LIBBPF, BPF_NO_OBJECT, BPF_PERM, BPF_LOAD). */
  constructor(o: KernelFastPathOptions = {}) {
    const max = o.maxFlows ?? 65536;
    this.obj = BpfObject.load(o.objectPath ?? defaultObjectPath(), {
      flows4: max,
      flows6: max,
      nat_reply4: max,
      nat_reply6: max,
      arm4: max,
      arm6: max,
    });
    try {
      this.flows4 = this.obj.map('flows4');
      this.flows6 = this.obj.map('flows6');
      this.natReply4 = this.obj.map('nat_reply4');
      this.natReply6 = this.obj.map('nat_reply6');
      this.reals = this.obj.map('reals');
      this.counters = this.obj.map('counters');
      this.arm4 = this.obj.map('arm4');
      this.arm6 = this.obj.map('arm6');
    } catch (e) {
      this.obj.close();
      throw e;
    }
    this.nsToMs = o.nsToMs ?? ((ns) => Number(ns / 1000n) / 1000);
  }

  /** Attach at tc ingress of each interface (tcx, else clsact). */
  attach(ifindexes: number[]): void {
    for (const i of ifindexes) this.attachments.push(this.obj.attachIngress(PROG_NAME, i));
  }

  /**
   * Follow the interfaces as they come and go (the worker's rescan, once a second): attach to each of `present` not
   * attached yet, and let go of attachments whose interface is gone (the kernel removed the link or filter with the
   * device; this frees what is left). Returns the interfaces attached now; failures are counted in `errors` and
   * retried at the next rescan.
   */
  follow(present: number[]): number[] {
    const now = new Set(present);
    for (let i = this.attachments.length - 1; i >= 0; i--) {
      const a = this.attachments[i];
      if (now.has(a.ifindex)) continue;
      try {
        a.detach();
      } catch {}
      this.attachments.splice(i, 1);
    }
    const have = new Set(this.attachments.map((a) => a.ifindex));
    const added: number[] = [];
    for (const i of present) {
      if (have.has(i)) continue;
      try {
        this.attachments.push(this.obj.attachIngress(PROG_NAME, i));
        added.push(i);
      } catch {
        this.errors++;
      }
    }
    return added;
  }

  get attached(): { ifindex: number; kind: string }[] {
    return this.attachments.map((a) => ({ ifindex: a.ifindex, kind: a.kind }));
  }

  /** The real server's index in the reals map, written when new (a flow is only added while it is available). */
  private realFor(dest: RealServer): number {
    let i = this.realIndex.get(dest.addr);
    if (i === undefined) {
      if (this.nextReal >= MAX_REALS) return -1;
      i = this.nextReal++;
      const k = Buffer.alloc(4);
      k.writeUInt32LE(i, 0);
      try {
        this.reals.update(k, realValue({ ifindex: 0, family: dest.family, nh: dest.addr, enabled: true }));
      } catch {
        this.errors++;
        return -1;
      }
      this.realIndex.set(dest.addr, i);
    }
    return i;
  }

  private keys(cp: Connection): { req: Buffer; reply: Buffer | null } {
    let k = this.keyCache.get(cp);
    if (!k) {
      const req = flowKey(cp.family, cp.protocol, cp.caddr, cp.cport, cp.vaddr, cp.vport);
      const reply = cp.fwd === 'masq' ? flowKey(cp.family, cp.protocol, cp.daddr, cp.dport, cp.caddr, cp.cport) : null;
      k = { req, reply };
      this.keyCache.set(cp, k);
    }
    return k;
  }

  add(cp: Connection, dest: RealServer): boolean {
    const rs = this.realFor(dest);
    if (rs < 0) return false;
    const nat = cp.fwd === 'masq';
    const { req, reply } = this.keys(cp);
    const value = flowValue({
      rs,
      method: nat ? METHOD_NAT : cp.fwd === 'tunnel' ? METHOD_TUN : METHOD_DR,
      natAddr: nat ? cp.daddr : undefined,
      natPort: nat ? cp.dport : undefined,
      replyIfindex: nat ? this.currentIndev : 0,
      armed: false,
    });
    const flows = cp.family === 4 ? this.flows4 : this.flows6;
    const replies = cp.family === 4 ? this.natReply4 : this.natReply6;
    this.pending.push(() => {
      if (!cp.kernel || this.keyCache.get(cp)?.req !== req) return; // left again before the batch ended
      const token = this.arming.add(cp);
      value.writeUInt32LE(token, 32);
      try {
        flows.update(req, value);
        if (reply) replies.update(reply, req);
      } catch {
        this.arming.remove(token);
        this.errors++;
        return;
      }
      this.tokenOf.set(cp, token);
    });
    return true;
  }

  remove(cp: Connection): void {
    const { req, reply } = this.keys(cp);
    this.keyCache.delete(cp);
    const flows = cp.family === 4 ? this.flows4 : this.flows6;
    const token = this.tokenOf.get(cp);
    if (token !== undefined) this.disarm(cp, token, req);
    try {
      if (reply) (cp.family === 4 ? this.natReply4 : this.natReply6).delete(reply);
      flows.delete(req);
    } catch {
      this.errors++;
    }
  }

  read(cp: Connection): KernelFlow | undefined {
    const { req } = this.keys(cp);
    if (!(cp.family === 4 ? this.flows4 : this.flows6).lookup(req, this.val)) return undefined;
    const v = readFlowValue(this.val);
    // armed by the program since (both ways for NAT): its arm value is no longer needed
    const token = this.tokenOf.get(cp);
    if (token !== undefined && v.armed[0] && (v.armed[1] || cp.fwd !== 'masq')) this.disarm(cp, token, req);
    return {
      packets: v.packets,
      bytes: v.bytes,
      replyPackets: v.replyPackets,
      replyBytes: v.replyBytes,
      lastSeenMs: v.lastSeenNs > 0n ? this.nsToMs(v.lastSeenNs) : 0,
    };
  }

  /** Forget a connection's arming state and its arm map entry. */
  private disarm(cp: Connection, token: number, req: Buffer): void {
    this.tokenOf.delete(cp);
    this.arming.remove(token);
    try {
      (cp.family === 4 ? this.arm4 : this.arm6).delete(req);
    } catch {}
  }

  /**
   * A packet was read from the queue: its timestamp may carry the tag of an unarmed entry (NFQA_TIMESTAMP). True when
   * it completes its direction's tags: flushing now (verdicts, then the arm value) gives the program the best chance
   * to arm before the flow's next packet comes.
   */
  noteRead(tsSec: number, tsUsec: number): boolean {
    if (tsSec === 0) return false;
    const tag = parseTag(tsSec, tsUsec);
    return tag ? this.arming.read(tag.token, tag.dir, tag.n) : false;
  }

  /** Entries written but not armed yet. */
  get unarmed(): number {
    return this.arming.size;
  }

  /**
   * After a batch's verdicts were sent: tell the program the last tag of each unarmed entry that had its verdict
   * (it arms the entry when no later one went to the queue), then write (unarmed) the flows that became eligible in
   * this batch.
   */
  flushPending(): void {
    if (this.arming.size > 0) {
      for (const a of this.arming.flush()) {
        const cp = a.item;
        if (this.tokenOf.get(cp) !== a.token) continue;
        this.armVal.writeUInt32LE(a.armAt[0], 0);
        this.armVal.writeUInt32LE(a.armAt[1], 4);
        try {
          (cp.family === 4 ? this.arm4 : this.arm6).update(this.keys(cp).req, this.armVal);
        } catch {
          this.errors++;
        }
      }
    }
    if (this.pending.length === 0) return;
    const p = this.pending;
    this.pending = [];
    for (const f of p) f();
  }

  /** Per-CPU counters summed, and map sizes. */
  stats(): FastPathStats {
    const n = possibleCpus();
    const v = Buffer.alloc(8 * n);
    const k = Buffer.alloc(4);
    const counters = {} as Record<CounterName, number>;
    COUNTER_NAMES.forEach((name, i) => {
      k.writeUInt32LE(i, 0);
      let sum = 0;
      if (this.counters.lookup(k, v)) for (let c = 0; c < n; c++) sum += Number(v.readBigUInt64LE(8 * c));
      counters[name] = sum;
    });
    return {
      counters,
      flows4: this.flows4.keys(FLOW4_KEY).length,
      flows6: this.flows6.keys(FLOW6_KEY).length,
      natReply4: this.natReply4.keys(FLOW4_KEY).length,
      natReply6: this.natReply6.keys(FLOW6_KEY).length,
      reals: this.nextReal,
      unarmed: this.arming.size,
      attached: this.attached,
    };
  }

  /** Detach from every interface and close the maps and the program. */
  close(): void {
    this.pending = [];
    this.arming.clear();
    this.tokenOf.clear();
    this.keyCache.clear();
    this.obj.close();
  }
}
