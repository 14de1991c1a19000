/**
 * The connection table's index of IPv6 flows: (protocol, address a, port a, address b, port b) → entry, each address as
 * four 32-bit words (big-endian, as in the packet) read from a caller's Int32Array at an offset — a lookup builds no
 * key string and allocates nothing. Open addressing with linear probing, deletion by backward shift (no tombstones),
 * doubled at three-quarters load, as FlowIndex4; each slot keeps its key's hash, compared before the full key.
 */
import { ipv6ToBytes } from '../../common/addr.js';

/** A 32-bit hash of a key (injectable so that tests can force collisions). */
export type FlowHash6 = (
  protocol: number,
  a: Int32Array,
  aOff: number,
  pp: number,
  b: Int32Array,
  bOff: number,
) => number;

/** Words per slot in the address array: address a then address b. */
const W = 8;

export class FlowIndex6<T> {
  private mask = 0;
  /** slot i: address a in words [8i, 8i+4), address b in [8i+4, 8i+8) */
  private addrs = new Int32Array(0);
  /** port a << 16 | port b */
  private ports = new Int32Array(0);
  private proto = new Uint8Array(0);
  private hashes = new Int32Array(0);
  private vals: (T | undefined)[] = [];
  private n = 0;

  constructor(
    capacity = 1024,
    private readonly hash: FlowHash6 = hash6,
  ) {
    let cap = 16;
    while (cap < capacity) cap <<= 1;
    this.alloc(cap);
  }

  private alloc(cap: number): void {
    this.mask = cap - 1;
    this.addrs = new Int32Array(cap * W);
    this.ports = new Int32Array(cap);
    this.proto = new Uint8Array(cap);
    this.hashes = new Int32Array(cap);
    this.vals = new Array<T | undefined>(cap).fill(undefined);
  }

  get size(): number {
    return this.n;
  }

  /** The entry of (protocol, a[aOff..aOff+4), portA, b[bOff..bOff+4), portB). */
  get(
    protocol: number,
    a: Int32Array,
    aOff: number,
    portA: number,
    b: Int32Array,
    bOff: number,
    portB: number,
  ): T | undefined {
    const pp = (portA << 16) | portB;
    const i = this.find(protocol, a, aOff, pp, b, bOff, this.hash(protocol, a, aOff, pp, b, bOff) | 0);
    return i < 0 ? undefined : this.vals[i];
  }

  /** Add or replace; returns the entry that was there. */
  set(
    protocol: number,
    a: Int32Array,
    aOff: number,
    portA: number,
    b: Int32Array,
    bOff: number,
    portB: number,
    v: T,
  ): T | undefined {
    const pp = (portA << 16) | portB;
    const h = this.hash(protocol, a, aOff, pp, b, bOff) | 0;
    const i = this.find(protocol, a, aOff, pp, b, bOff, h);
    if (i >= 0) {
      const old = this.vals[i];
      this.vals[i] = v;
      return old;
    }
    if ((this.n + 1) * 4 > this.vals.length * 3) this.grow();
    let j = h & this.mask;
    while (this.vals[j] !== undefined) j = (j + 1) & this.mask;
    const addrs = this.addrs;
    const o = j * W;
    addrs[o] = a[aOff];
    addrs[o + 1] = a[aOff + 1];
    addrs[o + 2] = a[aOff + 2];
    addrs[o + 3] = a[aOff + 3];
    addrs[o + 4] = b[bOff];
    addrs[o + 5] = b[bOff + 1];
    addrs[o + 6] = b[bOff + 2];
    addrs[o + 7] = b[bOff + 3];
    this.ports[j] = pp;
    this.proto[j] = protocol;
    this.hashes[j] = h;
    this.vals[j] = v;
    this.n++;
    return undefined;
  }

  /** Remove the key when it maps to `v` (any entry when `v` is omitted); returns whether something was removed. */
  delete(
    protocol: number,
    a: Int32Array,
    aOff: number,
    portA: number,
    b: Int32Array,
    bOff: number,
    portB: number,
    v?: T,
  ): boolean {
    const pp = (portA << 16) | portB;
    let i = this.find(protocol, a, aOff, pp, b, bOff, this.hash(protocol, a, aOff, pp, b, bOff) | 0);
    if (i < 0 || (v !== undefined && this.vals[i] !== v)) return false;
    const mask = this.mask;
    const vals = this.vals;
    vals[i] = undefined;
    this.n--;
    // backward shift: move up every entry of the probe run that would no longer be found past the hole
    for (let j = (i + 1) & mask; vals[j] !== undefined; j = (j + 1) & mask) {
      const k = this.hashes[j] & mask;
      // the entry stays when its home slot k lies cyclically in (i, j]
      if (i <= j ? i < k && k <= j : i < k || k <= j) continue;
      this.addrs.copyWithin(i * W, j * W, j * W + W);
      this.ports[i] = this.ports[j];
      this.proto[i] = this.proto[j];
      this.hashes[i] = this.hashes[j];
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

  private find(
    protocol: number,
    a: Int32Array,
    aOff: number,
    pp: number,
    b: Int32Array,
    bOff: number,
    h: number,
  ): number {
    const mask = this.mask;
    const vals = this.vals;
    const addrs = this.addrs;
    for (let i = h & mask; vals[i] !== undefined; i = (i + 1) & mask) {
      if (this.hashes[i] !== h || this.ports[i] !== pp || this.proto[i] !== protocol) continue;
      const o = i * W;
      if (
        addrs[o] === a[aOff] &&
        addrs[o + 1] === a[aOff + 1] &&
        addrs[o + 2] === a[aOff + 2] &&
        addrs[o + 3] === a[aOff + 3] &&
        addrs[o + 4] === b[bOff] &&
        addrs[o + 5] === b[bOff + 1] &&
        addrs[o + 6] === b[bOff + 2] &&
        addrs[o + 7] === b[bOff + 3]
      )
        return i;
    }
    return -1;
  }

  private grow(): void {
    const { addrs, ports, proto, hashes, vals } = this;
    this.alloc(vals.length * 2);
    for (let i = 0; i < vals.length; i++) {
      const v = vals[i];
      if (v === undefined) continue;
      const h = hashes[i];
      let j = h & this.mask;
      while (this.vals[j] !== undefined) j = (j + 1) & this.mask;
      this.addrs.set(addrs.subarray(i * W, i * W + W), j * W);
      this.ports[j] = ports[i];
      this.proto[j] = proto[i];
      this.hashes[j] = h;
      this.vals[j] = v;
    }
  }
}

/** The default hash: a multiply-xorshift mix of the protocol, the ports and the eight address words. */
export function hash6(protocol: number, a: Int32Array, aOff: number, pp: number, b: Int32Array, bOff: number): number {
  let h = Math.imul(pp ^ protocol, 0x9e3779b1);
  h = Math.imul(h ^ (h >>> 15) ^ a[aOff], 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13) ^ a[aOff + 1], 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 16) ^ a[aOff + 2], 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13) ^ a[aOff + 3], 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 16) ^ b[bOff], 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13) ^ b[bOff + 1], 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 16) ^ b[bOff + 2], 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13) ^ b[bOff + 3], 0xc2b2ae35);
  return h ^ (h >>> 16);
}

/** Write an IPv6 address string (any textual form) as four big-endian 32-bit words into out[off..off+4). */
export function ipv6Words(addr: string, out: Int32Array, off: number): void {
  const b = ipv6ToBytes(addr);
  for (let i = 0; i < 4; i++)
    out[off + i] = (b[4 * i] << 24) | (b[4 * i + 1] << 16) | (b[4 * i + 2] << 8) | b[4 * i + 3];
}
