/**
 * Ordering between the NFQUEUE and the kernel fast path: when a flow enters the kernel's flow map, packets of that
 * flow may still wait in the NFQUEUE (received before the entry existed, or before it was armed, and not yet read by
 * the engine). If the program forwarded the flow's next packets at once, they would overtake those. So an entry is
 * written unarmed: the program lets its packets fall through to the queue, counting them (`passed`, one count per
 * direction: request, NAT reply; in segments, as the queue splits a GSO skb into its segments) and tagging each with
 * the entry's token, the direction and the count so far (skb->tstamp, which reaches the engine as NFQA_TIMESTAMP):
 * every segment of one skb carries the same tag, the count at its last segment.
 *
 * The engine counts the tagged packets it reads. When that count equals the highest tag read, every packet tagged so
 * far has been read; after the verdicts of the batch were sent it writes the count into the arm map, and the program
 * arms the direction at the first packet that finds its `passed` equal to it — no packet of that direction is left
 * in the queue then: every tagged one had its verdict, and the untagged ones (queued before the entry was written)
 * were ahead of the first tagged one. Until then the direction goes on through userspace, which is always correct; a
 * tagged packet lost before the engine read it keeps the direction there. A direction whose packets never pause (a
 * flood faster than the engine) stays in userspace too: there is no moment without one of them queued.
 *
 * Pure bookkeeping; the map writes are the caller's (maps.ts).
 */

/** Tags carry a number up to this; past it a packet falls through untagged (the direction then never arms). */
export const TAG_MAX = 499_999;

/** NFQA_TIMESTAMP seconds of a tagged packet: 2^32 + token (beyond any real receive time). */
export const TAG_EPOCH = 2 ** 32;

interface Waiting<T> {
  item: T;
  token: number;
  /** highest tag read, per direction (request, reply) */
  read: [number, number];
  /** tagged packets read, per direction */
  count: [number, number];
  /** counts written to the arm map */
  sent: [number, number];
}

export type Direction = 0 | 1;

export class Arming<T> {
  private readonly byToken = new Map<number, Waiting<T>>();
  private readonly dirty = new Set<Waiting<T>>();
  private next = 1;

  /** A new entry is about to be written unarmed: its token (never 0, unique among the waiting). */
  add(item: T): number {
    let token = this.next;
    while (token === 0 || this.byToken.has(token)) token = (token + 1) >>> 0;
    this.next = (token + 1) >>> 0;
    this.byToken.set(token, { item, token, read: [0, 0], count: [0, 0], sent: [0, 0] });
    return token;
  }

  /** The entry is gone or armed: forget it. */
  remove(token: number): void {
    const w = this.byToken.get(token);
    if (!w) return;
    this.byToken.delete(token);
    this.dirty.delete(w);
  }

  /**
   * A packet tagged (token, direction, n) was read from the queue (before its verdict). True when every packet of
   * the direction tagged so far has now been read: an arm value could be written at the next flush.
   */
  read(token: number, dir: Direction, n: number): boolean {
    const w = this.byToken.get(token);
    if (!w) return false;
    w.count[dir]++;
    if (n > w.read[dir]) w.read[dir] = n;
    this.dirty.add(w);
    return w.count[dir] === w.read[dir];
  }

  /** Entries waiting to be armed. */
  get size(): number {
    return this.byToken.size;
  }

  has(token: number): boolean {
    return this.byToken.has(token);
  }

  /**
   * After a batch's verdicts were sent: the arm values to write, per direction the count of tagged packets read when
   * it covers every tag read (a GSO skb's segments all read), when one of them grew.
   */
  flush(): { item: T; token: number; armAt: [number, number] }[] {
    const out: { item: T; token: number; armAt: [number, number] }[] = [];
    for (const w of this.dirty) {
      let grew = false;
      for (const d of [0, 1] as const) {
        if (w.count[d] === w.read[d] && w.count[d] > w.sent[d]) {
          w.sent[d] = w.count[d];
          grew = true;
        }
      }
      if (grew) out.push({ item: w.item, token: w.token, armAt: [w.sent[0], w.sent[1]] });
    }
    this.dirty.clear();
    return out;
  }

  clear(): void {
    this.byToken.clear();
    this.dirty.clear();
  }
}

/**
 * The tag of a queued packet from its NFQA_TIMESTAMP (seconds, microseconds), or null: a receive time, or no
 * timestamp.
 */
export function parseTag(sec: number, usec: number): { token: number; dir: Direction; n: number } | null {
  if (sec < TAG_EPOCH || sec >= TAG_EPOCH * 2 || usec < 1 || usec > 2 * TAG_MAX + 1) return null;
  if (usec <= TAG_MAX) return { token: sec - TAG_EPOCH, dir: 0, n: usec };
  if (usec === TAG_MAX + 1) return null;
  return { token: sec - TAG_EPOCH, dir: 1, n: usec - TAG_MAX - 1 };
}
