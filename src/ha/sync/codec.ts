/**
 * The IPVS connection-sync wire format (net/netfilter/ipvs/ip_vs_sync.c): the version 1 message
 * (struct ip_vs_sync_mesg) carrying ip_vs_sync_v4 / ip_vs_sync_v6 entries with their optional parameters, each entry
 * padded to 4 bytes; the receiving side also understands the version 0 message, as the kernel does. All fields are in
 * network byte order. The decoder follows ip_vs_process_message / ip_vs_proc_sync_conn: it never throws; a message it
 * cannot use is dropped with a reason, an entry it cannot use is skipped with a reason.
 */
import { bytesToIpv6, type Family, intToIpv4, ipv4ToInt, ipv6ToBytes } from '../../common/addr.js';
import type { ConnAddrs } from '../../l4/conn/conn.js';

export const SYNC_PROTO_VER = 1;
/** IP_VS_SYNC_GROUP, IP_VS_SYNC_PORT */
export const SYNC_MCAST_GROUP = '224.0.0.81';
export const SYNC_MCAST_PORT = 8848;

export const SYNC_MESG_HEADER_LEN = 4;
export const SYNC_MESG_LEN = 8;
export const MAX_CONNS_PER_SYNCBUFF = 255;
export const SYNC_V4_LEN = 36;
export const SYNC_V6_LEN = 72;
/** struct ip_vs_sync_conn_v0 */
export const SIMPLE_CONN_SIZE = 24;
/** struct ip_vs_sync_conn_options: in_seq + out_seq, three __u32 each */
export const SEQ_OPTIONS_LEN = 24;
export const FULL_CONN_SIZE = SIMPLE_CONN_SIZE + SEQ_OPTIONS_LEN;

export const STYPE_F_INET6 = 1;
export const SVER_SHIFT = 12;
export const SVER_MASK = 0x0fff;

export const IPVS_OPT_SEQ_DATA = 1;
export const IPVS_OPT_PE_DATA = 2;
export const IPVS_OPT_PE_NAME = 3;
export const IPVS_OPT_PARAM = 7;
/** an unknown parameter with this bit set may be skipped; without it the entry is dropped */
export const IPVS_OPT_F_PARAM = 1 << (IPVS_OPT_PARAM - 1);
export const IP_VS_PEDATA_MAXLEN = 255;
export const IP_VS_PENAME_MAXLEN = 16;

/** ip_vs.h IP_VS_CONN_F_* bits the sync code looks at */
export const CONN_F_FWD_MASK = 0x0007;
export const CONN_F_SYNC = 0x0020;
export const CONN_F_HASHED = 0x0040;
export const CONN_F_NOOUTPUT = 0x0080;
export const CONN_F_INACTIVE = 0x0100;
export const CONN_F_SEQ_MASK = 0x0600;
export const CONN_F_NO_CPORT = 0x0800;
export const CONN_F_TEMPLATE = 0x1000;
export const CONN_F_ONE_PACKET = 0x2000;
/** Initial bits allowed in a backup */
export const CONN_F_BACKUP_MASK =
  CONN_F_FWD_MASK | CONN_F_NOOUTPUT | CONN_F_INACTIVE | CONN_F_SEQ_MASK | CONN_F_NO_CPORT | CONN_F_TEMPLATE;
/** Bits a later sync message may change in a backup's existing entry */
export const CONN_F_BACKUP_UPD_MASK = CONN_F_INACTIVE | CONN_F_SEQ_MASK;

/** Number of protocol states (ip_vs_protocol num_states): a state at or above it is invalid. */
export const PROTO_NUM_STATES: Readonly<Record<number, number>> = { 6: 11, 17: 1, 132: 13 };

/** struct ip_vs_seq */
export interface SyncSeq {
  initSeq: number;
  delta: number;
  previousDelta: number;
}

/** What identifies a connection and where it goes: shared by the wire entry and the master's view of an entry. */
export interface SyncTuple extends ConnAddrs {
  /** IP_VS_CONN_F_* */
  flags: number;
  state: number;
  fwmark: number;
}

/** One connection (or template) as a sync message carries it (flags as sent: HASHED cleared). */
export interface SyncConn extends SyncTuple {
  /** seconds (0 in version 0 messages: the receiver uses its own timeout for the state) */
  timeout: number;
  seq?: { in: SyncSeq; out: SyncSeq };
  peData?: Uint8Array;
  peName?: string;
}

/** The length of one entry without its trailing pad. */
export function connLength(c: SyncConn): number {
  let len = c.family === 6 ? SYNC_V6_LEN : SYNC_V4_LEN;
  if (c.flags & CONN_F_SEQ_MASK && c.seq) len += SEQ_OPTIONS_LEN + 2;
  if (c.peData?.length) {
    len += c.peData.length + 2;
    if (c.peName) len += Buffer.byteLength(c.peName) + 2;
  }
  return len;
}

function writeAddr(buf: Buffer, off: number, addr: string, family: Family): number {
  if (family === 4) {
    buf.writeUInt32BE(ipv4ToInt(addr) >>> 0, off);
    return off + 4;
  }
  buf.set(ipv6ToBytes(addr), off);
  return off + 16;
}

function readAddr(buf: Buffer, off: number, family: Family): string {
  return family === 4 ? intToIpv4(buf.readUInt32BE(off)) : bytesToIpv6(buf.subarray(off, off + 16));
}

function writeSeq(buf: Buffer, off: number, s: SyncSeq): number {
  buf.writeUInt32BE(s.initSeq >>> 0, off);
  buf.writeUInt32BE(s.delta >>> 0, off + 4);
  buf.writeUInt32BE(s.previousDelta >>> 0, off + 8);
  return off + 12;
}

function readSeq(buf: Buffer, off: number): SyncSeq {
  return { initSeq: buf.readUInt32BE(off), delta: buf.readUInt32BE(off + 4), previousDelta: buf.readUInt32BE(off + 8) };
}

/** Write one entry (ip_vs_sync_conn's v1 part) at `off`; returns the offset after it (unpadded). */
export function writeConn(buf: Buffer, off: number, c: SyncConn): number {
  const len = connLength(c);
  buf[off] = c.family === 6 ? STYPE_F_INET6 : 0;
  buf[off + 1] = c.protocol;
  buf.writeUInt16BE(len & SVER_MASK, off + 2); // version 0 in the top 4 bits
  buf.writeUInt32BE((c.flags & ~CONN_F_HASHED) >>> 0, off + 4);
  buf.writeUInt16BE(c.state, off + 8);
  buf.writeUInt16BE(c.cport, off + 10);
  buf.writeUInt16BE(c.vport, off + 12);
  buf.writeUInt16BE(c.dport, off + 14);
  buf.writeUInt32BE(c.fwmark >>> 0, off + 16);
  buf.writeUInt32BE(c.timeout >>> 0, off + 20);
  let p = writeAddr(buf, off + 24, c.caddr, c.family);
  p = writeAddr(buf, p, c.vaddr, c.family);
  p = writeAddr(buf, p, c.daddr, c.family);
  if (c.flags & CONN_F_SEQ_MASK && c.seq) {
    buf[p++] = IPVS_OPT_SEQ_DATA;
    buf[p++] = SEQ_OPTIONS_LEN;
    p = writeSeq(buf, p, c.seq.in);
    p = writeSeq(buf, p, c.seq.out);
  }
  if (c.peData?.length) {
    buf[p++] = IPVS_OPT_PE_DATA;
    buf[p++] = c.peData.length;
    buf.set(c.peData, p);
    p += c.peData.length;
    if (c.peName) {
      const name = Buffer.from(c.peName);
      buf[p++] = IPVS_OPT_PE_NAME;
      buf[p++] = name.length;
      buf.set(name, p);
      p += name.length;
    }
  }
  return p;
}

/**
 * The largest message the master sent on an interface of this MTU before Linux 4.3 (set_sync_mesg_maxlen): room for
 * whole version 0 entries after the IP and UDP headers, at most 255 of them. The daemon uses daemonMaxLen.
 */
export function sendMaxLen(mtu: number): number {
  const num = Math.floor((mtu - 20 - 8 - SYNC_MESG_HEADER_LEN - 20) / SIMPLE_CONN_SIZE);
  return SYNC_MESG_HEADER_LEN + SIMPLE_CONN_SIZE * Math.min(num, MAX_CONNS_PER_SYNCBUFF);
}

/** The largest message a backup accepts on an interface of this MTU (recv_mesg_maxlen). */
export function recvMaxLen(mtu: number): number {
  return mtu - 20 - 8;
}

/** IPv4 + UDP headers: what a sync datagram carries besides the message */
const SYNC_HLEN = 20 + 8;

/**
 * The daemon's sync_maxlen as start_sync_thread (Linux >= 4.3) settles it and `-L --daemon` reports it: --sync-maxlen
 * clamped to 1..65507 for a master, 1024..65507 for a backup; without it 1472 for a master (a 1500-byte datagram
 * whatever the interface) and the interface MTU (clamped to 1500..65535) less the headers for a backup. A master
 * fills messages up to this size; a backup drops larger ones.
 */
export function daemonMaxLen(state: 'master' | 'backup', mtu: number, requested?: number): number {
  const backup = state === 'backup';
  if (requested) return Math.min(Math.max(requested, backup ? 1024 : 1), 65535 - SYNC_HLEN);
  return (backup ? Math.min(Math.max(mtu, 1500), 65535) : 1500) - SYNC_HLEN;
}

/**
 * A version 1 message being filled (struct ip_vs_sync_buff): entries are appended, each aligned to 4 bytes, until
 * the next would not fit in `maxLen` (or 255 entries).
 */
export class SyncMessageBuilder {
  private readonly buf: Buffer;
  private head = SYNC_MESG_LEN;
  private count = 0;

  constructor(
    readonly syncid: number,
    readonly maxLen: number,
    /** when the first entry went in (for the flush timer) */
    readonly firstUse = 0,
  ) {
    this.buf = Buffer.alloc(Math.max(maxLen, SYNC_MESG_LEN));
  }

  get nrConns(): number {
    return this.count;
  }

  get size(): number {
    return this.head;
  }

  /** Whether `c` fits after the entries already in. */
  fits(c: SyncConn): boolean {
    const pad = (4 - (this.head & 3)) & 3;
    return this.count < MAX_CONNS_PER_SYNCBUFF && this.head + pad + connLength(c) <= this.maxLen;
  }

  /** Append; returns false (and leaves the message as it was) when it does not fit. */
  add(c: SyncConn): boolean {
    if (!this.fits(c)) return false;
    const pad = (4 - (this.head & 3)) & 3;
    this.buf.fill(0, this.head, this.head + pad);
    this.head = writeConn(this.buf, this.head + pad, c);
    this.count++;
    return true;
  }

  /** The datagram: header (reserved 0, syncid, size, nr_conns, version 1, spare 0) and the entries. */
  finish(): Buffer {
    const b = this.buf;
    b[0] = 0;
    b[1] = this.syncid & 0xff;
    b.writeUInt16BE(this.head, 2);
    b[4] = this.count;
    b[5] = SYNC_PROTO_VER;
    b.writeUInt16BE(0, 6);
    return Buffer.from(b.subarray(0, this.head));
  }
}

/** Encode entries into as many messages as they need. */
export function encodeMessages(syncid: number, conns: readonly SyncConn[], maxLen: number): Buffer[] {
  const out: Buffer[] = [];
  let m = new SyncMessageBuilder(syncid, maxLen);
  for (const c of conns) {
    if (m.add(c)) continue;
    if (m.nrConns === 0) throw new RangeError(`a sync entry of ${connLength(c)} bytes exceeds ${maxLen}`);
    out.push(m.finish());
    m = new SyncMessageBuilder(syncid, maxLen);
    m.add(c);
  }
  if (m.nrConns > 0) out.push(m.finish());
  return out;
}

/** Why a whole message was dropped (the kernel's "Dropping buffer" cases and the header checks). */
export type SyncDropReason =
  | 'oversize'
  | 'header-short'
  | 'size-mismatch'
  | 'syncid'
  | 'conn-short'
  | 'conn-overrun'
  | 'conn-version'
  | 'conn-type'
  | 'conn-truncated'
  | 'option-short'
  | 'option-length'
  | 'option-seq'
  | 'option-pe-data'
  | 'option-pe-name'
  | 'v0-conn-short';

/** Why one entry was skipped while the rest of the message was used. */
export type SyncSkipReason = 'unknown-param' | 'protocol' | 'state' | 'pe';

export interface DecodedMessage {
  version: 0 | 1;
  syncid: number;
  /** the entries that decoded, in order (with a drop, those before the bad one — the kernel applied them already) */
  conns: SyncConn[];
  skipped: SyncSkipReason[];
  dropped?: SyncDropReason;
}

export interface DecodeOptions {
  /** the backup's syncid: 0 accepts every message */
  syncid?: number;
  /** recv_mesg_maxlen */
  maxLen?: number;
}

/** Decode a datagram (ip_vs_process_message). Never throws. */
export function decodeMessage(buf: Buffer, o: DecodeOptions = {}): DecodedMessage {
  const res: DecodedMessage = { version: 1, syncid: buf.length > 1 ? buf[1] : 0, conns: [], skipped: [] };
  const drop = (r: SyncDropReason) => {
    res.dropped = r;
    return res;
  };
  if (o.maxLen !== undefined && buf.length > o.maxLen) return drop('oversize');
  if (buf.length < SYNC_MESG_HEADER_LEN) return drop('header-short');
  if (buf.readUInt16BE(2) !== buf.length) return drop('size-mismatch');
  if (o.syncid && res.syncid !== o.syncid) return drop('syncid');
  if (buf.length >= SYNC_MESG_LEN && buf[5] === SYNC_PROTO_VER && buf[0] === 0 && buf.readUInt16BE(6) === 0)
    return decodeV1(buf, res);
  res.version = 0;
  return decodeV0(buf, res);
}

function decodeV1(buf: Buffer, res: DecodedMessage): DecodedMessage {
  const n = buf[4];
  let next = SYNC_MESG_LEN;
  for (let i = 0; i < n; i++) {
    const p = next;
    if (p + SYNC_V4_LEN > buf.length) return { ...res, dropped: 'conn-short' };
    const verSize = buf.readUInt16BE(p + 2);
    const size = verSize & SVER_MASK;
    const end = p + size;
    if (end > buf.length) return { ...res, dropped: 'conn-overrun' };
    if (verSize >> SVER_SHIFT) return { ...res, dropped: 'conn-version' };
    const r = decodeConn(buf, p, end);
    if (typeof r === 'string') {
      if (isSkip(r)) res.skipped.push(r);
      else return { ...res, dropped: r };
    } else res.conns.push(r);
    next = p + ((size + 3) & ~3);
  }
  return res;
}

function isSkip(r: SyncDropReason | SyncSkipReason): r is SyncSkipReason {
  return r === 'unknown-param' || r === 'protocol' || r === 'state' || r === 'pe';
}

/** ip_vs_proc_sync_conn: one entry between `p` and `end`. */
function decodeConn(buf: Buffer, start: number, end: number): SyncConn | SyncDropReason | SyncSkipReason {
  const type = buf[start];
  let family: Family;
  let p: number;
  if (type & STYPE_F_INET6) {
    family = 6;
    p = start + SYNC_V6_LEN;
  } else if (type === 0) {
    family = 4;
    p = start + SYNC_V4_LEN;
  } else return 'conn-type';
  if (p > end) return 'conn-truncated';

  let seq: SyncConn['seq'];
  let peData: Uint8Array | undefined;
  let peName: string | undefined;
  while (p < end) {
    if (p + 2 > end) return 'option-short';
    const ptype = buf[p++];
    const plen = buf[p++];
    if (!plen || p + plen > end) return 'option-length';
    switch (ptype & ~IPVS_OPT_F_PARAM) {
      case IPVS_OPT_SEQ_DATA:
        if (plen !== SEQ_OPTIONS_LEN || seq) return 'option-seq';
        seq = { in: readSeq(buf, p), out: readSeq(buf, p + 12) };
        break;
      case IPVS_OPT_PE_DATA:
        if (plen > IP_VS_PEDATA_MAXLEN || peData) return 'option-pe-data';
        peData = Uint8Array.from(buf.subarray(p, p + plen));
        break;
      case IPVS_OPT_PE_NAME:
        if (plen > IP_VS_PENAME_MAXLEN || peName !== undefined) return 'option-pe-name';
        peName = buf.subarray(p, p + plen).toString('latin1');
        break;
      default:
        // a mandatory parameter we do not know: this entry is skipped, the rest of the message is used
        if (!(ptype & IPVS_OPT_F_PARAM)) return 'unknown-param';
    }
    p += plen;
  }

  const flags = ((buf.readUInt32BE(start + 4) & CONN_F_BACKUP_MASK) | CONN_F_SYNC) >>> 0;
  const protocol = buf[start + 1];
  const state = connState(protocol, flags, buf.readUInt16BE(start + 8));
  if (typeof state === 'string') return state;
  // persistence engines (sip) are not supported: such an entry is skipped, as a kernel without the engine does
  if (peData) return 'pe';
  const a = start + 24;
  const w = family === 4 ? 4 : 16;
  const c: SyncConn = {
    family,
    protocol,
    flags,
    state,
    cport: buf.readUInt16BE(start + 10),
    vport: buf.readUInt16BE(start + 12),
    dport: buf.readUInt16BE(start + 14),
    fwmark: buf.readUInt32BE(start + 16),
    timeout: buf.readUInt32BE(start + 20),
    caddr: readAddr(buf, a, family),
    vaddr: readAddr(buf, a + w, family),
    daddr: readAddr(buf, a + 2 * w, family),
  };
  if (seq) c.seq = seq;
  if (peName !== undefined) c.peName = peName;
  return c;
}

/**
 * An entry's state as ip_vs_proc_conn checks it: a connection needs a known protocol and a state below its count;
 * a template's protocol is not used for state/timeout, so its state is 0.
 */
function connState(protocol: number, flags: number, state: number): number | 'protocol' | 'state' {
  if (flags & CONN_F_TEMPLATE) return 0;
  const num = PROTO_NUM_STATES[protocol];
  if (num === undefined) return 'protocol';
  return state >= num ? 'state' : state;
}

/** ip_vs_process_message_v0 */
function decodeV0(buf: Buffer, res: DecodedMessage): DecodedMessage {
  const n = buf[0];
  let p = SYNC_MESG_HEADER_LEN;
  for (let i = 0; i < n; i++) {
    if (p + SIMPLE_CONN_SIZE > buf.length) return { ...res, dropped: 'v0-conn-short' };
    const s = p;
    const flags = ((buf.readUInt16BE(s + 20) | CONN_F_SYNC) & ~CONN_F_HASHED) >>> 0;
    let seq: SyncConn['seq'];
    if (flags & CONN_F_SEQ_MASK) {
      p += FULL_CONN_SIZE;
      if (p > buf.length) return { ...res, dropped: 'v0-conn-short' };
      seq = { in: readSeq(buf, s + SIMPLE_CONN_SIZE), out: readSeq(buf, s + SIMPLE_CONN_SIZE + 12) };
    } else p += SIMPLE_CONN_SIZE;
    const protocol = buf[s + 1];
    const state = connState(protocol, flags, buf.readUInt16BE(s + 22));
    if (typeof state === 'string') {
      res.skipped.push(state);
      continue;
    }
    const c: SyncConn = {
      family: 4,
      protocol,
      flags,
      state,
      cport: buf.readUInt16BE(s + 2),
      vport: buf.readUInt16BE(s + 4),
      dport: buf.readUInt16BE(s + 6),
      caddr: intToIpv4(buf.readUInt32BE(s + 8)),
      vaddr: intToIpv4(buf.readUInt32BE(s + 12)),
      daddr: intToIpv4(buf.readUInt32BE(s + 16)),
      fwmark: 0,
      timeout: 0,
    };
    if (seq) c.seq = seq;
    res.conns.push(c);
  }
  return res;
}
