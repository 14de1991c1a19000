/**
 * SipHash (Aumasson & Bernstein) as lib/siphash.c computes it, in 32-bit halves so it runs without BigInt.
 * The kernel's siphash() is SipHash-2-4; on 64-bit kernels its hsiphash() is SipHash-1-3 with the same 128-bit key
 * layout, truncated to 32 bits (on 32-bit kernels hsiphash is HalfSipHash-1-3, which we do not model).
 */

/** A 128-bit key as the kernel's two 64-bit words (key[0], key[1]), each split into high and low 32 bits. */
export interface SipKey {
  readonly k0hi: number;
  readonly k0lo: number;
  readonly k1hi: number;
  readonly k1lo: number;
}

/** A key from two 64-bit words given as (unsigned) integers below 2^53 or as bigints. */
export function sipKey(k0: number | bigint, k1: number | bigint): SipKey {
  const a = BigInt(k0);
  const b = BigInt(k1);
  return {
    k0hi: Number((a >> 32n) & 0xffffffffn),
    k0lo: Number(a & 0xffffffffn),
    k1hi: Number((b >> 32n) & 0xffffffffn),
    k1lo: Number(b & 0xffffffffn),
  };
}

class SipState {
  v0h: number;
  v0l: number;
  v1h: number;
  v1l: number;
  v2h: number;
  v2l: number;
  v3h: number;
  v3l: number;

  constructor(k: SipKey) {
    // "somepseudorandomlygeneratedbytes"
    this.v0h = (0x736f6d65 ^ k.k0hi) >>> 0;
    this.v0l = (0x70736575 ^ k.k0lo) >>> 0;
    this.v1h = (0x646f7261 ^ k.k1hi) >>> 0;
    this.v1l = (0x6e646f6d ^ k.k1lo) >>> 0;
    this.v2h = (0x6c796765 ^ k.k0hi) >>> 0;
    this.v2l = (0x6e657261 ^ k.k0lo) >>> 0;
    this.v3h = (0x74656462 ^ k.k1hi) >>> 0;
    this.v3l = (0x79746573 ^ k.k1lo) >>> 0;
  }

  /** SIPROUND */
  round(): void {
    let lo: number;
    let hi: number;
    // v0 += v1; v1 = rol64(v1, 13); v1 ^= v0; v0 = rol64(v0, 32)
    lo = (this.v0l + this.v1l) >>> 0;
    this.v0h = (this.v0h + this.v1h + (lo < this.v0l ? 1 : 0)) >>> 0;
    this.v0l = lo;
    hi = ((this.v1h << 13) | (this.v1l >>> 19)) >>> 0;
    lo = ((this.v1l << 13) | (this.v1h >>> 19)) >>> 0;
    this.v1h = (hi ^ this.v0h) >>> 0;
    this.v1l = (lo ^ this.v0l) >>> 0;
    hi = this.v0h;
    this.v0h = this.v0l;
    this.v0l = hi;
    // v2 += v3; v3 = rol64(v3, 16); v3 ^= v2
    lo = (this.v2l + this.v3l) >>> 0;
    this.v2h = (this.v2h + this.v3h + (lo < this.v2l ? 1 : 0)) >>> 0;
    this.v2l = lo;
    hi = ((this.v3h << 16) | (this.v3l >>> 16)) >>> 0;
    lo = ((this.v3l << 16) | (this.v3h >>> 16)) >>> 0;
    this.v3h = (hi ^ this.v2h) >>> 0;
    this.v3l = (lo ^ this.v2l) >>> 0;
    // v0 += v3; v3 = rol64(v3, 21); v3 ^= v0
    lo = (this.v0l + this.v3l) >>> 0;
    this.v0h = (this.v0h + this.v3h + (lo < this.v0l ? 1 : 0)) >>> 0;
    this.v0l = lo;
    hi = ((this.v3h << 21) | (this.v3l >>> 11)) >>> 0;
    lo = ((this.v3l << 21) | (this.v3h >>> 11)) >>> 0;
    this.v3h = (hi ^ this.v0h) >>> 0;
    this.v3l = (lo ^ this.v0l) >>> 0;
    // v2 += v1; v1 = rol64(v1, 17); v1 ^= v2; v2 = rol64(v2, 32)
    lo = (this.v2l + this.v1l) >>> 0;
    this.v2h = (this.v2h + this.v1h + (lo < this.v2l ? 1 : 0)) >>> 0;
    this.v2l = lo;
    hi = ((this.v1h << 17) | (this.v1l >>> 15)) >>> 0;
    lo = ((this.v1l << 17) | (this.v1h >>> 15)) >>> 0;
    this.v1h = (hi ^ this.v2h) >>> 0;
    this.v1l = (lo ^ this.v2l) >>> 0;
    hi = this.v2h;
    this.v2h = this.v2l;
    this.v2l = hi;
  }

  /** One message word m: v3 ^= m; c rounds; v0 ^= m. */
  absorb(mh: number, ml: number, c: number): void {
    this.v3h = (this.v3h ^ mh) >>> 0;
    this.v3l = (this.v3l ^ ml) >>> 0;
    for (let i = 0; i < c; i++) this.round();
    this.v0h = (this.v0h ^ mh) >>> 0;
    this.v0l = (this.v0l ^ ml) >>> 0;
  }

  /** The last word b (length byte + tail), then d finalization rounds; returns v0^v1^v2^v3 as [hi, lo]. */
  finish(bh: number, bl: number, c: number, d: number): [number, number] {
    this.absorb(bh, bl, c);
    this.v2l = (this.v2l ^ 0xff) >>> 0;
    for (let i = 0; i < d; i++) this.round();
    return [(this.v0h ^ this.v1h ^ this.v2h ^ this.v3h) >>> 0, (this.v0l ^ this.v1l ^ this.v2l ^ this.v3l) >>> 0];
  }
}

function le32(m: Uint8Array, i: number): number {
  return (m[i] | (m[i + 1] << 8) | (m[i + 2] << 16) | (m[i + 3] << 24)) >>> 0;
}

/** SipHash-c-d of a byte string; the 64-bit result as [hi, lo] 32-bit halves. */
export function sipHash(c: number, d: number, key: SipKey, msg: Uint8Array): [number, number] {
  const s = new SipState(key);
  const whole = msg.length - (msg.length % 8);
  for (let i = 0; i < whole; i += 8) s.absorb(le32(msg, i + 4), le32(msg, i), c);
  // b = len << 56 | the 0..7 remaining bytes, little-endian
  let bh = (msg.length & 0xff) << 24;
  let bl = 0;
  for (let i = whole; i < msg.length; i++) {
    const shift = (i - whole) * 8;
    if (shift < 32) bl |= msg[i] << shift;
    else bh |= msg[i] << (shift - 32);
  }
  return s.finish(bh >>> 0, bl >>> 0, c, d);
}

/** The kernel's siphash() (SipHash-2-4) as a bigint, for tests and diagnostics. */
export function siphash24(key: SipKey, msg: Uint8Array): bigint {
  const [hi, lo] = sipHash(2, 4, key, msg);
  return (BigInt(hi) << 32n) | BigInt(lo);
}

/** The kernel's hsiphash() on 64-bit: SipHash-1-3, low 32 bits. */
export function hsiphash(key: SipKey, msg: Uint8Array): number {
  return sipHash(1, 3, key, msg)[1];
}

/**
 * hsiphash(&v, sizeof(u32), key) for a u32 v held in a little-endian host's memory (x86, arm64): the same as
 * hsiphash_1u32(v). No allocation: this is what mh computes per packet.
 */
export function hsiphashU32(key: SipKey, v: number): number {
  const s = new SipState(key);
  return s.finish(0x04000000, v >>> 0, 1, 3)[1];
}
