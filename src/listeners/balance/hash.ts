/**
 * Map-based hashing shared by source, uri and hdr (HAProxy's default `hash-type map-based`): the key's hash indexes
 * the weighted map of the current candidates. Adding or removing a server remaps keys (as map-based does).
 */
import { weightedMap } from './swrr.js';
import type { LbServer } from './types.js';

/** FNV-1a 32 with a murmur3 finaliser (so near keys — 10.0.0.1, 10.0.0.2 — spread). */
export function hash32(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export class HashMap {
  private key = '';
  private map: LbServer[] = [];

  lookup(candidates: readonly LbServer[], key: string): LbServer {
    const k = candidates.map((s) => `${s.id}:${s.weight}`).join(',');
    if (k !== this.key) {
      this.key = k;
      this.map = weightedMap(candidates);
    }
    const id = this.map[hash32(key) % this.map.length]!.id;
    return candidates.find((s) => s.id === id)!;
  }
}
