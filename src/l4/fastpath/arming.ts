/**
 * Ordering between the NFQUEUE and the kernel fast path: when a flow enters the kernel's flow map, packets of that
 * flow may still wait in the NFQUEUE (received by the kernel before the entry existed, not yet read by the engine).
 * If the program forwarded the flow's next packets at once, they would overtake those. So an entry is written
 * unarmed (the program treats it as a miss and the packets keep going to the queue, in order) and armed only once
 * every packet queued before it was written has had its verdict.
 *
 * The queue's packet ids tell when that is: the kernel numbers the packets of a queue in order (nfqnl's
 * id_sequence, shown in /proc/net/netfilter/nfnetlink_queue) and hands them to the socket in that order. After an
 * entry is written, the next verdict flush reads the queue's state: nothing waiting — every earlier packet had its
 * verdict, arm now; else remember the last id queued, S, and arm once a packet with id >= S was read and the verdicts
 * of its batch were sent. The state is read one flush after the write, not at once, so a packet that missed the
 * entry on another CPU just before it was written (the tc program and the queueing run in one softirq pass) is
 * queued by then.
 *
 * Pure: the queue's state and the arming write are the caller's.
 */

export interface QueueState {
  /** packets queued and waiting for a verdict (read by the engine or not) */
  waiting: number;
  /** id of the last packet queued */
  idSequence: number;
}

/** a - b as signed 32-bit: ids wrap at 2^32 */
function after(a: number, b: number): boolean {
  return ((a - b) | 0) >= 0;
}

export class Arming<T> {
  /** written since the last flush: their queue mark is taken at the next one */
  private fresh: T[] = [];
  /** written earlier, waiting for the read of packet id `seq` */
  private marked: { item: T; seq: number }[] = [];
  /** the highest packet id read (valid once `seen`) */
  private lastId = 0;
  private seen = false;
  /** a packet was read since the last flush */
  private busy = false;

  /** A flow's entry was written unarmed. */
  add(item: T): void {
    this.fresh.push(item);
  }

  /** A packet was read from the queue (before its verdict). */
  read(id: number): void {
    if (!this.seen || after(id, this.lastId)) this.lastId = id;
    this.seen = true;
    this.busy = true;
  }

  /** Entries waiting to be armed. */
  get size(): number {
    return this.fresh.length + this.marked.length;
  }

  /**
   * After a batch's verdicts were sent: the entries that may be armed now. `queue` is read only when entries wait
   * for a mark, or wait for an id while nothing was read (an idle queue, or packets lost before the socket); null
   * (the state cannot be read) keeps them waiting.
   */
  flush(queue: () => QueueState | null): T[] {
    const out: T[] = [];
    const idle = !this.busy;
    this.busy = false;
    if (this.marked.length > 0 && this.seen) {
      const keep: { item: T; seq: number }[] = [];
      for (const m of this.marked) {
        if (after(this.lastId, m.seq)) out.push(m.item);
        else keep.push(m);
      }
      this.marked = keep;
    }
    if (this.fresh.length > 0 || (idle && this.marked.length > 0)) {
      const q = queue();
      if (q) {
        if (q.waiting === 0) {
          for (const m of this.marked) out.push(m.item);
          this.marked = [];
          for (const item of this.fresh) out.push(item);
        } else for (const item of this.fresh) this.marked.push({ item, seq: q.idSequence });
        this.fresh = [];
      }
    }
    return out;
  }

  clear(): void {
    this.fresh = [];
    this.marked = [];
  }
}
