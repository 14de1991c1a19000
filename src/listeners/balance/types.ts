/**
 * The balancing interface, one algorithm per file like HAProxy's lb_*.c. Algorithms are pure: they see the
 * candidate servers (up, weight > 0, not excluded by a retry; in id order) with their cluster-wide connection counts
 * and pick one. The pool (../pool.ts) owns server state, queues and maxconn; algorithms only choose.
 */

export interface LbServer {
  /** position in the listener's server list (HAProxy's puid order; `first` uses it) */
  readonly id: number;
  readonly name: string;
  /** effective weight now (configured × agent % × slowstart ramp); candidates always have weight > 0 */
  readonly weight: number;
  /** connections currently on this server, counted over every worker */
  readonly conns: number;
  /** 0 = unlimited */
  readonly maxconn: number;
}

/** What a request exposes to the hash-based algorithms. */
export interface PickRequest {
  /** client address (after accept-proxy) */
  src?: string;
  /** request path (mode http) */
  uri?: string;
  /** request headers, lower-case names (mode http) */
  headers?: Record<string, string | string[] | undefined>;
}

export interface Balancer {
  readonly name: string;
  /**
   * Choose among `candidates` (non-empty). Returns null when every server the algorithm would use is full; a hashing
   * algorithm may return a full server (the request then waits for that server, as in HAProxy).
   */
  pick(candidates: readonly LbServer[], req: PickRequest): LbServer | null;
}

export interface BalancerContext {
  /** [0, 1); tests pass a seeded one */
  random: () => number;
  /** where leastconn keeps the id its ties last went to; shared by the workers (../shared.ts), else local */
  tie?: Cell;
}

/** One number kept somewhere (a local variable, or a word of the cluster's shared memory). */
export interface Cell {
  get(): number;
  set(v: number): void;
}

export function localCell(v = 0): Cell {
  return {
    get: () => v,
    set: (x) => {
      v = x;
    },
  };
}

/** A server may take one more connection. */
export function hasRoom(s: LbServer): boolean {
  return s.maxconn === 0 || s.conns < s.maxconn;
}
