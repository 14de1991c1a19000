/**
 * The kernel's own view of the director's queues (/proc/net/netfilter/nfnetlink_queue, one line per bound queue,
 * nfqnl_seq_show): packets waiting for a verdict, packets dropped because the queue was full (queue_dropped) and
 * packets the kernel could not hand to the socket (user_dropped). Neither drop reaches userspace, so these are the
 * only place they are counted.
 */
import { readFileSync } from 'node:fs';

export const NFQUEUE_PROC = '/proc/net/netfilter/nfnetlink_queue';

export interface QueueStats {
  queue: number;
  /** netlink port id of the bound socket */
  portid: number;
  /** packets queued and still waiting for a verdict */
  waiting: number;
  copyMode: number;
  copyRange: number;
  /** dropped because the queue was at its maximum length */
  queueDropped: number;
  /** dropped because the netlink socket would not take them (receive buffer full) */
  userDropped: number;
  /** id of the last packet queued (a count of packets queued since the bind) */
  idSequence: number;
}

/** Parse the file's text; only queues in [first, first + count) are kept, in queue order. */
export function parseQueueStats(text: string, first = 0, count = 0x10000): QueueStats[] {
  const out: QueueStats[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/).map(Number);
    if (f.length < 8 || f.slice(0, 8).some((n) => !Number.isInteger(n))) continue;
    const [queue, portid, waiting, copyMode, copyRange, queueDropped, userDropped, idSequence] = f;
    if (queue < first || queue >= first + count) continue;
    out.push({ queue, portid, waiting, copyMode, copyRange, queueDropped, userDropped, idSequence });
  }
  return out.sort((a, b) => a.queue - b.queue);
}

/** Read the current figures; [] when the file cannot be read (no nfnetlink_queue loaded, no /proc). */
export function readQueueStats(first: number, count: number, path = NFQUEUE_PROC): QueueStats[] {
  try {
    return parseQueueStats(readFileSync(path, 'utf8'), first, count);
  } catch {
    return [];
  }
}
