/**
 * The fwmark of each listener (one fwmark service per listener on the directors, marked by VIP:port), from 0x2710
 * (10000) upward as in source article 004 — and stable across edits: a listener keeps the mark it had (the previous
 * allocation, kept beside the cluster file, or a `fwmark:` pinned in it); only a new listener takes a mark, the lowest
 * free one. Adding, removing or reordering listeners never renumbers the others (a renumbering would move every
 * established connection of a listener to another service on a reload).
 */

export const FWMARK_BASE = 0x2710;

export interface MarkRequest {
  /** the listener's name: its identity across edits */
  name: string;
  /** a mark pinned in the cluster file */
  pinned?: number;
}

/**
 * Marks for `listeners`, in their order: pinned ones as pinned, then previously allocated ones (unless that mark is
 * now pinned by another listener), then the lowest free mark ≥ base for the rest, in listing order. Pure.
 */
export function allocateFwmarks(
  listeners: readonly MarkRequest[],
  previous: Readonly<Record<string, number>> = {},
  base = FWMARK_BASE,
): Record<string, number> {
  const out: Record<string, number> = {};
  const used = new Set<number>();
  for (const l of listeners)
    if (l.pinned !== undefined) {
      out[l.name] = l.pinned;
      used.add(l.pinned);
    }
  for (const l of listeners) {
    if (l.name in out) continue;
    const p = previous[l.name];
    if (p !== undefined && !used.has(p)) {
      out[l.name] = p;
      used.add(p);
    }
  }
  let next = base;
  for (const l of listeners) {
    if (l.name in out) continue;
    while (used.has(next)) next++;
    out[l.name] = next;
    used.add(next);
  }
  // in the listeners' order
  return Object.fromEntries(listeners.map((l) => [l.name, out[l.name]]));
}
