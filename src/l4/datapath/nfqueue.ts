/**
 * One nfnetlink_queue over a raw netlink socket: bind in copy-packet mode, receive packets, send verdicts. Blocking
 * receives with a short timeout (SO_RCVTIMEO) so the owning worker can notice a stop request; verdicts of one batch
 * go out in a single send (netlink processes every message of the datagram). The kernel sends each queued packet as
 * its own datagram, so a receive takes up to `batch` of them in one recvmmsg (MSG_WAITFORONE: it waits for the
 * first only).
 */

import {
  AF_NETLINK,
  EAGAIN,
  EINTR,
  MSG_DONTWAIT,
  MSG_WAITFORONE,
  NETLINK_NO_ENOBUFS,
  SO_RCVBUFFORCE,
  SO_SNDBUFFORCE,
  SOCK_RAW,
  SOL_NETLINK,
  SOL_SOCKET,
} from '../../sys/constants.js';
import {
  address,
  bindNetlink,
  close,
  recv,
  recvmmsg,
  SysError,
  send,
  setRecvTimeout,
  setsockoptInt,
  socket,
} from '../../sys/libc.js';
import { DatapathError } from './errors.js';
import {
  cfgCmd,
  cfgParams,
  MessagePool,
  NETLINK_NETFILTER,
  NFQNL_CFG_CMD_BIND,
  NFQNL_CFG_CMD_UNBIND,
  type NlMessage,
  parseMessages,
  VerdictBatch,
} from './nfqmsg.js';

export interface NfQueueOptions {
  queue: number;
  /** bytes of each packet copied to userspace (0xffff: whole packets) */
  copyRange?: number;
  /** kernel queue length before packets are dropped (no bypass) */
  maxLen?: number;
  rcvbuf?: number;
  recvTimeoutMs?: number;
  /** datagrams (packets) taken per receive call (recvmmsg); 1: one recv each (default TIERLB_NFQ_BATCH or 16) */
  batch?: number;
}

/** Bytes of one receive slot: a whole packet (copy range 0xffff) and its attributes. */
const SLOT = 0x10000 + 4096;
/** struct mmsghdr (x86_64, aarch64): struct msghdr (56 bytes) + msg_len, padded to 64 */
const MMSGHDR = 64;
const IOVEC = 16;

function defaultBatch(): number {
  const n = Number.parseInt(process.env.TIERLB_NFQ_BATCH ?? '', 10);
  return Number.isInteger(n) && n >= 1 && n <= 256 ? n : 16;
}

export class NfQueue {
  readonly fd: number;
  readonly queue: number;
  private seq = 1;
  private readonly rbuf = new Uint8Array(SLOT);
  /** recvmmsg: `batch` slots, their iovecs and mmsghdrs (off-heap buffers: their addresses do not move) */
  private readonly batchN: number;
  private slots?: Buffer;
  private vec?: Buffer;
  private iov?: Buffer;
  private readonly batch: VerdictBatch;
  /** the packet messages of a receive, reused by the next one */
  private readonly pool = new MessagePool();
  private closed = false;

  constructor(o: NfQueueOptions) {
    this.queue = o.queue;
    this.batch = new VerdictBatch(o.queue);
    this.batchN = o.batch ?? defaultBatch();
    if (this.batchN > 1) {
      const n = this.batchN;
      this.slots = Buffer.alloc(n * SLOT);
      this.iov = Buffer.alloc(n * IOVEC);
      this.vec = Buffer.alloc(n * MMSGHDR);
      const base = address(this.slots);
      const iovBase = address(this.iov);
      for (let i = 0; i < n; i++) {
        this.iov.writeBigUInt64LE(base + BigInt(i * SLOT), i * IOVEC);
        this.iov.writeBigUInt64LE(BigInt(SLOT), i * IOVEC + 8);
        this.vec.writeBigUInt64LE(iovBase + BigInt(i * IOVEC), i * MMSGHDR + 16); // msg_iov
        this.vec.writeBigUInt64LE(1n, i * MMSGHDR + 24); // msg_iovlen
      }
    }
    this.fd = socket(AF_NETLINK, SOCK_RAW, NETLINK_NETFILTER);
    try {
      setsockoptInt(this.fd, SOL_SOCKET, SO_RCVBUFFORCE, o.rcvbuf ?? 8 << 20);
      setsockoptInt(this.fd, SOL_SOCKET, SO_SNDBUFFORCE, 4 << 20);
      setsockoptInt(this.fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, 1);
      setRecvTimeout(this.fd, o.recvTimeoutMs ?? 100);
      bindNetlink(this.fd);
      this.request(cfgCmd(o.queue, NFQNL_CFG_CMD_BIND, this.seq++), 'bind');
      this.request(cfgParams(o.queue, o.copyRange ?? 0xffff, o.maxLen ?? 4096, this.seq++), 'params');
    } catch (e) {
      close(this.fd);
      throw e;
    }
  }

  /** Send an acked config message and wait for its ack. */
  private request(msg: Uint8Array, what: string): void {
    const r = send(this.fd, msg, msg.length);
    if (r < 0) throw new SysError(`nfqueue ${what} send`, -r);
    const seq = new DataView(msg.buffer).getUint32(8, true);
    for (let tries = 0; tries < 50; tries++) {
      const n = recv(this.fd, this.rbuf);
      if (n === -EINTR) continue;
      if (n < 0) throw new SysError(`nfqueue ${what} ack`, -n);
      for (const m of parseMessages(this.rbuf, n)) {
        if (m.kind === 'error' && m.seq === seq) {
          if (m.errno !== 0) throw new SysError(`nfqueue ${what}`, m.errno);
          return;
        }
      }
    }
    throw new DatapathError(
      'ENFQUEUE_NO_ACK',
      `nfqueue ${what}: no ack from the kernel (is nfnetlink_queue loaded? modprobe nfnetlink_queue)`,
    );
  }

  /**
   * Receive one datagram; `wait` false returns at once when nothing is pending. Returns the parsed messages (packet
   * messages and their payloads are reused / views into the receive buffer, valid until the next call), [] on
   * timeout / nothing pending.
   */
  receive(wait: boolean, out: NlMessage[]): NlMessage[] {
    out.length = 0;
    if (this.vec && this.slots) return this.receiveMany(wait, out, this.vec, this.slots);
    const n = recv(this.fd, this.rbuf, wait ? 0 : MSG_DONTWAIT);
    if (n < 0) {
      if (n === -EAGAIN || n === -EINTR) return out;
      throw new SysError('nfqueue recv', -n);
    }
    return parseMessages(this.rbuf, n, out, this.pool);
  }

  /** Up to `batch` datagrams in one recvmmsg, parsed in order into `out`. */
  private receiveMany(wait: boolean, out: NlMessage[], vec: Buffer, slots: Buffer): NlMessage[] {
    const got = recvmmsg(this.fd, vec, this.batchN, wait ? MSG_WAITFORONE : MSG_DONTWAIT);
    if (got < 0) {
      if (got === -EAGAIN || got === -EINTR) return out;
      throw new SysError('nfqueue recvmmsg', -got);
    }
    this.pool.reset();
    for (let i = 0; i < got; i++) {
      const len = vec.readUInt32LE(i * MMSGHDR + 56);
      parseMessages(slots.subarray(i * SLOT, i * SLOT + SLOT), len, out, this.pool, false);
    }
    return out;
  }

  /** Queue a verdict for the next flush. */
  verdict(id: number, verdict: number, mark?: number, payload?: Uint8Array): void {
    if (!this.batch.fits(payload?.length, mark !== undefined)) this.flush();
    this.batch.add(id, verdict, mark, payload);
  }

  /** Verdicts queued since the last flush. */
  get pendingVerdicts(): number {
    return this.batch.count;
  }

  /** Send all queued verdicts in one datagram. */
  flush(): void {
    const b = this.batch;
    if (b.off === 0) return;
    const r = send(this.fd, b.buf, b.off);
    b.reset();
    if (r < 0) throw new SysError('nfqueue verdict send', -r);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.flush();
      const m = cfgCmd(this.queue, NFQNL_CFG_CMD_UNBIND, this.seq++);
      send(this.fd, m, m.length);
    } catch {}
    close(this.fd);
  }
}
