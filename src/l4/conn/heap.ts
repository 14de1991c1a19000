/**
 * The expiry queue: a binary min-heap of (deadline, item) in flat arrays. Deadlines are not updated in place when a
 * packet restarts a connection's timer; the table re-files an entry whose item's deadline moved when it reaches the
 * top, so the per-packet path never touches the heap and a tick costs O(due · log n).
 */
export class ExpiryHeap<T> {
  private times: number[] = [];
  private items: T[] = [];

  get size(): number {
    return this.items.length;
  }

  push(time: number, item: T): void {
    const times = this.times;
    const items = this.items;
    let i = items.length;
    times.push(time);
    items.push(item);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (times[p] <= time) break;
      times[i] = times[p];
      items[i] = items[p];
      i = p;
    }
    times[i] = time;
    items[i] = item;
  }

  /** Deadline of the top entry; Infinity when empty. */
  peekTime(): number {
    return this.items.length ? this.times[0] : Number.POSITIVE_INFINITY;
  }

  /** Remove and return the top item (undefined when empty). */
  pop(): T | undefined {
    const items = this.items;
    const n = items.length;
    if (n === 0) return undefined;
    const top = items[0];
    const lastT = this.times.pop() as number;
    const lastI = items.pop() as T;
    if (n > 1) this.siftDown(0, lastT, lastI);
    return top;
  }

  /** Keep only the entries whose item passes `keep`, then re-heapify (O(n)). */
  filter(keep: (item: T) => boolean): void {
    const t: number[] = [];
    const it: T[] = [];
    for (let i = 0; i < this.items.length; i++) {
      if (keep(this.items[i])) {
        t.push(this.times[i]);
        it.push(this.items[i]);
      }
    }
    this.times = t;
    this.items = it;
    for (let i = (it.length >> 1) - 1; i >= 0; i--) this.siftDown(i, t[i], it[i]);
  }

  clear(): void {
    this.times = [];
    this.items = [];
  }

  private siftDown(i: number, time: number, item: T): void {
    const times = this.times;
    const items = this.items;
    const n = items.length;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && times[c + 1] < times[c]) c++;
      if (times[c] >= time) break;
      times[i] = times[c];
      items[i] = items[c];
      i = c;
    }
    times[i] = time;
    items[i] = item;
  }
}
