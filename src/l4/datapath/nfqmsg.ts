/**
 * nfnetlink_queue messages, encoded and decoded by hand (pure, no I/O): the config messages (bind, copy mode, queue
 * length), NFQNL_MSG_PACKET parsing, and NFQNL_MSG_VERDICT encoding with an optional new mark and payload.
 * Layouts from <linux/netlink.h>, <linux/netfilter/nfnetlink.h>, <linux/netfilter/nfnetlink_queue.h>.
 */

export const NETLINK_NETFILTER = 12;
export const NFNL_SUBSYS_QUEUE = 3;
export const NFQNL_MSG_PACKET = 0;
export const NFQNL_MSG_VERDICT = 1;
export const NFQNL_MSG_CONFIG = 2;

export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const NLM_F_REQUEST = 0x1;
export const NLM_F_ACK = 0x4;

export const NFQA_PACKET_HDR = 1;
export const NFQA_VERDICT_HDR = 2;
export const NFQA_MARK = 3;
export const NFQA_TIMESTAMP = 4;
export const NFQA_IFINDEX_INDEV = 5;
export const NFQA_IFINDEX_OUTDEV = 6;
export const NFQA_HWADDR = 9;
export const NFQA_PAYLOAD = 10;

export const NFQA_CFG_CMD = 1;
export const NFQA_CFG_PARAMS = 2;
export const NFQA_CFG_QUEUE_MAXLEN = 3;

export const NFQNL_CFG_CMD_BIND = 1;
export const NFQNL_CFG_CMD_UNBIND = 2;
export const NFQNL_COPY_PACKET = 2;

export const NF_DROP = 0;
export const NF_ACCEPT = 1;

const NLA_TYPE_MASK = 0x3fff;

const align4 = (n: number) => (n + 3) & ~3;

/** One queued packet. `payload` is a view into the receive buffer: copy it before the next receive. */
export interface QueuedPacket {
  id: number;
  /** ETH_P_IP 0x0800 or ETH_P_IPV6 0x86dd */
  hwProtocol: number;
  hook: number;
  mark: number;
  indev: number;
  outdev: number;
  /** source MAC of the frame, when the kernel reported one */
  hwaddr?: Uint8Array;
  /** NFQA_TIMESTAMP (seconds, microseconds; 0 without one): carries the fast path's tags (fastpath/arming.ts) */
  tsSec?: number;
  tsUsec?: number;
  payload: Uint8Array;
}

function putNlmsg(buf: Uint8Array, off: number, len: number, type: number, flags: number, seq: number): void {
  putLe32(buf, off, len);
  putLe16(buf, off + 4, type);
  putLe16(buf, off + 6, flags);
  putLe32(buf, off + 8, seq);
  putLe32(buf, off + 12, 0);
}

function putLe16(b: Uint8Array, o: number, v: number): void {
  b[o] = v & 0xff;
  b[o + 1] = (v >>> 8) & 0xff;
}

function putLe32(b: Uint8Array, o: number, v: number): void {
  b[o] = v & 0xff;
  b[o + 1] = (v >>> 8) & 0xff;
  b[o + 2] = (v >>> 16) & 0xff;
  b[o + 3] = (v >>> 24) & 0xff;
}

function putBe32(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >>> 24) & 0xff;
  b[o + 1] = (v >>> 16) & 0xff;
  b[o + 2] = (v >>> 8) & 0xff;
  b[o + 3] = v & 0xff;
}

/** nfgenmsg: family, version 0, res_id (queue number, big endian). */
function putNfgen(buf: Uint8Array, off: number, family: number, resId: number): void {
  buf[off] = family;
  buf[off + 1] = 0;
  buf[off + 2] = (resId >> 8) & 0xff;
  buf[off + 3] = resId & 0xff;
}

function putAttr(buf: Uint8Array, off: number, type: number, data: Uint8Array): number {
  const len = 4 + data.length;
  buf[off] = len & 0xff;
  buf[off + 1] = len >> 8;
  buf[off + 2] = type & 0xff;
  buf[off + 3] = type >> 8;
  buf.set(data, off + 4);
  return off + align4(len);
}

function be32Bytes(v: number): Uint8Array {
  const b = new Uint8Array(4);
  putBe32(b, 0, v);
  return b;
}

function buildMsg(
  type: number,
  flags: number,
  seq: number,
  family: number,
  resId: number,
  attrs: [number, Uint8Array][],
) {
  let len = 16 + 4;
  for (const [, d] of attrs) len += align4(4 + d.length);
  const buf = new Uint8Array(len);
  putNlmsg(buf, 0, len, type, flags, seq);
  putNfgen(buf, 16, family, resId);
  let off = 20;
  for (const [t, d] of attrs) off = putAttr(buf, off, t, d);
  return buf;
}

const CFG_TYPE = (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_CONFIG;
const VERDICT_TYPE = (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_VERDICT;

/** Config command (bind/unbind) for a queue; acked. */
export function cfgCmd(queue: number, cmd: number, seq: number): Uint8Array {
  // struct nfqnl_msg_config_cmd { __u8 command; __u8 _pad; __be16 pf; }
  return buildMsg(CFG_TYPE, NLM_F_REQUEST | NLM_F_ACK, seq, 0, queue, [[NFQA_CFG_CMD, new Uint8Array([cmd, 0, 0, 0])]]);
}

/** Copy-packet mode with range, and the queue's maximum length; acked. */
export function cfgParams(queue: number, copyRange: number, maxLen: number, seq: number): Uint8Array {
  // struct nfqnl_msg_config_params { __be32 copy_range; __u8 copy_mode; } __attribute__ ((packed))
  const p = new Uint8Array(5);
  p.set(be32Bytes(copyRange), 0);
  p[4] = NFQNL_COPY_PACKET;
  return buildMsg(CFG_TYPE, NLM_F_REQUEST | NLM_F_ACK, seq, 0, queue, [
    [NFQA_CFG_PARAMS, p],
    [NFQA_CFG_QUEUE_MAXLEN, be32Bytes(maxLen)],
  ]);
}

/** Size of an encoded verdict, to size batch buffers. */
export function verdictSize(payloadLen: number | undefined, withMark: boolean): number {
  let n = 20 + 12;
  if (withMark) n += 8;
  if (payloadLen !== undefined) n += align4(4 + payloadLen);
  return n;
}

/**
 * Encode a verdict into `buf` at `off` (no ack requested); returns the new offset. `mark` undefined leaves the mark;
 * `payload` replaces the packet (NAT rewrites).
 */
export function putVerdict(
  buf: Uint8Array,
  off: number,
  queue: number,
  id: number,
  verdict: number,
  mark?: number,
  payload?: Uint8Array,
): number {
  const len = verdictSize(payload?.length, mark !== undefined);
  putNlmsg(buf, off, len, VERDICT_TYPE, NLM_F_REQUEST, 0);
  putNfgen(buf, off + 16, 0, queue);
  let p = off + 20;
  // NFQA_VERDICT_HDR: struct nfqnl_msg_verdict_hdr { __be32 verdict; __be32 id; }
  putLe16(buf, p, 12);
  putLe16(buf, p + 2, NFQA_VERDICT_HDR);
  putBe32(buf, p + 4, verdict);
  putBe32(buf, p + 8, id);
  p += 12;
  if (mark !== undefined) {
    putLe16(buf, p, 8);
    putLe16(buf, p + 2, NFQA_MARK);
    putBe32(buf, p + 4, mark);
    p += 8;
  }
  if (payload) p = putAttr(buf, p, NFQA_PAYLOAD, payload);
  return p;
}

/**
 * The verdicts of one batch, encoded back to back into one buffer (netlink processes every message of a datagram):
 * the owner sends `buf[0, off)` and resets. Pure, so the hot-path bench uses the same encoding as the worker.
 */
export class VerdictBatch {
  buf: Uint8Array;
  off = 0;
  count = 0;

  constructor(
    readonly queue: number,
    size = 1 << 18,
  ) {
    this.buf = new Uint8Array(size);
  }

  /** whether a verdict of this shape still fits in the buffer */
  fits(payloadLen: number | undefined, withMark: boolean): boolean {
    return this.off + verdictSize(payloadLen, withMark) <= this.buf.length;
  }

  /** Append a verdict; the caller made room (`fits`, or a reset). A buffer too small for one verdict grows. */
  add(id: number, verdict: number, mark?: number, payload?: Uint8Array): void {
    const need = verdictSize(payload?.length, mark !== undefined);
    if (this.off + need > this.buf.length) {
      const b = new Uint8Array(Math.max(this.buf.length * 2, this.off + need * 2));
      b.set(this.buf.subarray(0, this.off));
      this.buf = b;
    }
    this.off = putVerdict(this.buf, this.off, this.queue, id, verdict, mark, payload);
    this.count++;
  }

  reset(): void {
    this.off = 0;
    this.count = 0;
  }
}

export type NlMessage =
  | { kind: 'packet'; pkt: QueuedPacket }
  | { kind: 'error'; errno: number; seq: number }
  | { kind: 'other'; type: number };

const le16 = (b: Uint8Array, o: number) => b[o] | (b[o + 1] << 8);
const le32 = (b: Uint8Array, o: number) => (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0;
const be16 = (b: Uint8Array, o: number) => (b[o] << 8) | b[o + 1];
const be32 = (b: Uint8Array, o: number) => ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;

type PacketMsg = { kind: 'packet'; pkt: QueuedPacket };
const EMPTY = new Uint8Array(0);
const newPacketMsg = (): PacketMsg => ({
  kind: 'packet',
  pkt: {
    id: 0,
    hwProtocol: 0,
    hook: 0,
    mark: 0,
    indev: 0,
    outdev: 0,
    hwaddr: undefined,
    tsSec: 0,
    tsUsec: 0,
    payload: EMPTY,
  },
});

/**
 * Packet messages reused from datagram to datagram by `parseMessages` (the worker's receive loop): a message and its
 * QueuedPacket are valid until the next parse with the same pool. The pooled form leaves `hwaddr` unset (nothing on
 * the hot path reads it).
 */
export class MessagePool {
  private readonly msgs: PacketMsg[] = [];
  private used = 0;

  reset(): void {
    this.used = 0;
  }

  take(): PacketMsg {
    if (this.used === this.msgs.length) this.msgs.push(newPacketMsg());
    return this.msgs[this.used++];
  }

  /** give the last message taken back (it was not a valid packet) */
  untake(): void {
    this.used--;
  }
}

/** Walk every netlink message in a received datagram; with a pool, packet messages are the pool's (reused). */
export function parseMessages(
  buf: Uint8Array,
  len: number,
  out: NlMessage[] = [],
  pool?: MessagePool,
  resetPool = true,
): NlMessage[] {
  if (resetPool) pool?.reset();
  let off = 0;
  while (off + 16 <= len) {
    const mlen = le32(buf, off);
    if (mlen < 16 || off + mlen > len) break;
    const type = le16(buf, off + 4);
    if (type === NLMSG_ERROR) {
      out.push({ kind: 'error', errno: -(le32(buf, off + 16) | 0), seq: le32(buf, off + 8) });
    } else if (type === ((NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET)) {
      const m = pool ? pool.take() : newPacketMsg();
      if (readPacketMsg(buf, off + 20, off + mlen, m.pkt, !pool)) out.push(m);
      else pool?.untake();
    } else {
      out.push({ kind: 'other', type });
    }
    off += align4(mlen);
  }
  return out;
}

/** Fill `q` from the attributes of a NFQNL_MSG_PACKET; false without a packet id or payload. */
function readPacketMsg(buf: Uint8Array, off: number, end: number, q: QueuedPacket, withHwaddr: boolean): boolean {
  let id = -1;
  q.hwProtocol = 0;
  q.hook = 0;
  q.mark = 0;
  q.indev = 0;
  q.outdev = 0;
  q.hwaddr = undefined;
  q.tsSec = 0;
  q.tsUsec = 0;
  let payload: Uint8Array | undefined;
  while (off + 4 <= end) {
    const alen = le16(buf, off);
    const atype = le16(buf, off + 2) & NLA_TYPE_MASK;
    if (alen < 4 || off + alen > end) break;
    const d = off + 4;
    switch (atype) {
      case NFQA_PACKET_HDR:
        id = be32(buf, d);
        q.hwProtocol = be16(buf, d + 4);
        q.hook = buf[d + 6];
        break;
      case NFQA_MARK:
        q.mark = be32(buf, d);
        break;
      case NFQA_TIMESTAMP:
        // struct nfqnl_msg_packet_timestamp { __be64 sec; __be64 usec; }
        if (alen >= 20) {
          q.tsSec = be32(buf, d) * 0x1_0000_0000 + be32(buf, d + 4);
          q.tsUsec = be32(buf, d + 12);
        }
        break;
      case NFQA_IFINDEX_INDEV:
        q.indev = be32(buf, d);
        break;
      case NFQA_IFINDEX_OUTDEV:
        q.outdev = be32(buf, d);
        break;
      case NFQA_HWADDR:
        if (withHwaddr) q.hwaddr = buf.subarray(d + 4, d + 4 + Math.min(be16(buf, d), 8));
        break;
      case NFQA_PAYLOAD:
        payload = buf.subarray(d, off + alen);
        break;
      default:
        break;
    }
    off += align4(alen);
  }
  if (id < 0 || !payload) return false;
  q.id = id;
  q.payload = payload;
  return true;
}
