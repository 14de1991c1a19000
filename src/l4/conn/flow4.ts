/**
 * The connection table's index of IPv4 flows: (protocol, address a, port a, address b, port b) → entry, addresses as
 * 32-bit numbers, in typed arrays — a lookup builds no key string and allocates nothing. Open addressing with linear
 * probing, deletion by backward shift (no tombstones), doubled at three-quarters load.
 */
export class FlowIndex4<T> {
  private mask = 0;
  private addrA = new Int32Array(0);
  private addrB = new Int32Array(0);
  /** port a << 16 | port b */
  private ports = new Int32Array(0);
  private proto = new Uint8Array(0);
  private vals: (T | undefined)[] = [];
  private n = 0;

  constructor(capacity = 1024) {
    let cap = 16;
    while (cap < capacity) cap <<= 1;
    this.alloc(cap);
  }

  private alloc(cap: number): void {
    this.mask = cap - 1;
    this.addrA = new Int32Array(cap);
    this.addrB = new Int32Array(cap);
    this.ports = new Int32Array(cap);
    this.proto = new Uint8Array(cap);
    this.vals = new Array<T | undefined>(cap).fill(undefined);
  }

  get size(): number {
    return this.n;
  }

  get(protocol: number, a: number, portA: number, b: number, portB: number): T | undefined {
    const i = this.find(protocol, a | 0, (portA << 16) | portB, b | 0);
    return i < 0 ? undefined : this.vals[i];
  }

  /** Add or replace; returns the entry that was there. */
  set(protocol: number, a: number, portA: number, b: number, portB: number, v: T): T | undefined {
    const pp = (portA << 16) | portB;
    const i = this.find(protocol, a | 0, pp, b | 0);
    if (i >= 0) {
      const old = this.vals[i];
      this.vals[i] = v;
      return old;
    }
    if ((this.n + 1) * 4 > this.vals.length * 3) this.grow();
    let j = slot(protocol, a | 0, pp, b | 0) & this.mask;
    while (this.vals[j] !== undefined) j = (j + 1) & this.mask;
    this.addrA[j] = a;
    this.addrB[j] = b;
    this.ports[j] = pp;
    this.proto[j] = protocol;
    this.vals[j] = v;
    this.n++;
    return undefined;
  }

  /** Remove the key when it maps to `v` (any entry when `v` is omitted); returns whether something was removed. */
  delete(protocol: number, a: number, portA: number, b: number, portB: number, v?: T): boolean {
    let i = this.find(protocol, a | 0, (portA << 16) | portB, b | 0);
    if (i < 0 || (v !== undefined && this.vals[i] !== v)) return false;
    const mask = this.mask;
    const vals = this.vals;
    vals[i] = undefined;
    this.n--;
    // backward shift: move up every entry of the probe run that would no longer be found past the hole
    for (let j = (i + 1) & mask; vals[j] !== undefined; j = (j + 1) & mask) {
      const k = slot(this.proto[j], this.addrA[j], this.ports[j], this.addrB[j]) & mask;
      // the entry stays when its home slot k lies cyclically in (i, j]
      if (i <= j ? i < k && k <= j : i < k || k <= j) continue;
      this.addrA[i] = this.addrA[j];
      this.addrB[i] = this.addrB[j];
      this.ports[i] = this.ports[j];
      this.proto[i] = this.proto[j];
      vals[i] = vals[j];
      vals[j] = undefined;
      i = j;
    }
    return true;
  }

  clear(): void {
    this.vals.fill(undefined);
    this.n = 0;
  }

  private find(protocol: number, a: number, pp: number, b: number): number {
    const mask = this.mask;
    const vals = this.vals;
    for (let i = slot(protocol, a, pp, b) & mask; vals[i] !== undefined; i = (i + 1) & mask) {
      if (this.addrA[i] === a && this.ports[i] === pp && this.addrB[i] === b && this.proto[i] === protocol) return i;
    }
    return -1;
  }

  private grow(): void {
    const { addrA, addrB, ports, proto, vals } = this;
    this.alloc(vals.length * 2);
    for (let i = 0; i < vals.length; i++) {
      const v = vals[i];
      if (v === undefined) continue;
      let j = slot(proto[i], addrA[i], ports[i], addrB[i]) & this.mask;
      while (this.vals[j] !== undefined) j = (j + 1) & this.mask;
      this.addrA[j] = addrA[i];
      this.addrB[j] = addrB[i];
      this.ports[j] = ports[i];
      this.proto[j] = proto[i];
      this.vals[j] = v;
    }
  }
}

/** A 32-bit mix of the key (multiply-xorshift). */
function slot(protocol: number, a: number, pp: number, b: number): number {
  let h = Math.imul(a ^ protocol, 0x9e3779b1);
  h = Math.imul(h ^ (h >>> 16) ^ b, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13) ^ pp, 0xc2b2ae35);
  return h ^ (h >>> 16);
}
