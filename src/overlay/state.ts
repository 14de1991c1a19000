/**
 * What exists: parsers of `ip -j -d addr show` (or `ip -j -d link show`) and `bridge -j fdb show` into the small
 * model the planner compares with the config. Pure: the executor runs the commands and hands over their stdout.
 */
import { TierlbError } from '../common/errors.js';

/** Output of `ip -j` / `bridge -j` that is not the JSON array expected. */
export class OverlayStateError extends TierlbError {
  override readonly code = 'EOVERLAY_STATE';
  constructor(message: string) {
    super('EOVERLAY_STATE', message);
    this.name = 'OverlayStateError';
  }
}

export interface VxlanInfo {
  id: number;
  local?: string;
  /** The underlay device (`dev` at creation). */
  link?: string;
  port?: number;
  learning?: boolean;
  /** A multicast group or a default remote set with `remote`. */
  group?: string;
  remote?: string;
}

export interface LinkState {
  name: string;
  kind: string; // 'vxlan', 'bridge', 'veth', ... ('' when ip does not say)
  mtu: number;
  up: boolean; // administratively up
  master?: string;
  mac?: string;
  alias?: string;
  vxlan?: VxlanInfo;
  /** Global-scope IPv4 addresses as "a.b.c.d/len" (only with `ip addr`). */
  addresses: string[];
}

export interface FdbState {
  mac: string;
  dev: string;
  dst: string;
}

export interface HostState {
  links: Map<string, LinkState>;
  /** VXLAN forwarding entries (`self` entries with a `dst`), keyed per device. */
  fdb: FdbState[];
}

interface IpJsonLink {
  ifname: string;
  flags?: string[];
  mtu?: number;
  master?: string;
  address?: string;
  ifalias?: string;
  linkinfo?: {
    info_kind?: string;
    info_data?: Partial<VxlanInfo>;
  };
  addr_info?: { family?: string; local?: string; prefixlen?: number; scope?: string }[];
}

function parseJsonArray(text: string, what: string): unknown[] {
  const trimmed = text.trim();
  if (!trimmed) return [];
  let v: unknown;
  try {
    v = JSON.parse(trimmed);
  } catch (e) {
    throw new OverlayStateError(`${what}: not JSON (${(e as Error).message}); is iproute2 recent enough for -j?`);
  }
  if (!Array.isArray(v)) throw new OverlayStateError(`${what}: expected a JSON array`);
  return v;
}

export function parseIpLinks(json: string): Map<string, LinkState> {
  const links = new Map<string, LinkState>();
  for (const raw of parseJsonArray(json, 'ip -j link') as IpJsonLink[]) {
    if (!raw || typeof raw.ifname !== 'string') continue;
    const info = raw.linkinfo;
    const link: LinkState = {
      name: raw.ifname,
      kind: info?.info_kind ?? '',
      mtu: raw.mtu ?? 0,
      up: (raw.flags ?? []).includes('UP'),
      addresses: (raw.addr_info ?? [])
        .filter((a) => a.family === 'inet' && a.scope !== 'host' && a.local)
        .map((a) => `${a.local}/${a.prefixlen}`),
    };
    if (raw.master) link.master = raw.master;
    if (raw.address) link.mac = raw.address.toLowerCase();
    if (raw.ifalias) link.alias = raw.ifalias;
    if (info?.info_kind === 'vxlan' && info.info_data) {
      const d = info.info_data;
      const vx: VxlanInfo = { id: d.id ?? -1 };
      if (d.local) vx.local = d.local;
      if (d.link) vx.link = d.link;
      if (d.port !== undefined) vx.port = d.port;
      if (d.learning !== undefined) vx.learning = d.learning;
      if (d.group) vx.group = d.group;
      if (d.remote) vx.remote = d.remote;
      link.vxlan = vx;
    }
    links.set(link.name, link);
  }
  return links;
}

interface BridgeJsonFdb {
  mac?: string;
  ifname?: string;
  dst?: string;
  master?: string;
  flags?: string[];
}

/** The VXLAN devices' own forwarding entries (those with a `dst`); the bridges' learned entries are left out. */
export function parseBridgeFdb(json: string): FdbState[] {
  const out: FdbState[] = [];
  for (const e of parseJsonArray(json, 'bridge -j fdb') as BridgeJsonFdb[]) {
    if (!e?.mac || !e.ifname || !e.dst || e.master) continue;
    out.push({ mac: e.mac.toLowerCase(), dev: e.ifname, dst: e.dst });
  }
  return out;
}

export function parseHostState(ipJson: string, fdbJson: string): HostState {
  return { links: parseIpLinks(ipJson), fdb: parseBridgeFdb(fdbJson) };
}
