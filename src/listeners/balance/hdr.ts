/**
 * balance hdr(name): the value of a request header picks the server; without the header the request falls back to
 * roundrobin, as in HAProxy. For `host` the port is ignored and the name compared case-insensitively.
 */
import { HashMap } from './hash.js';
import { roundrobin } from './roundrobin.js';
import type { Balancer, LbServer, PickRequest } from './types.js';

export function hdr(name: string): Balancer {
  const header = name.toLowerCase();
  const map = new HashMap();
  const fallback = roundrobin();
  return {
    name: `hdr(${header})`,
    pick(candidates: readonly LbServer[], req: PickRequest) {
      const raw = req.headers?.[header];
      let v = Array.isArray(raw) ? raw[0] : raw;
      if (v === undefined || v === '') return fallback.pick(candidates, req);
      if (header === 'host') v = v.replace(/:\d+$/, '').toLowerCase();
      return map.lookup(candidates, v);
    },
  };
}
