/**
 * The `overlay` config section: schema validation and normalisation into the fully-defaulted form the planner works
 * on. Pure (no I/O): the CLI reads the file.
 */
import { Ajv, type ErrorObject } from 'ajv';
import { TierlbError } from '../l4/errors.js';
import { overlaySchema } from './config-schema.js';

export const DEFAULT_DSTPORT = 4789;
export const DEFAULT_MTU = 1450;
/** The ifalias put on every link the overlay creates: `down` removes only links that carry it. */
export const OWNER_ALIAS_PREFIX = 'tierlb:overlay';
export const FLOOD_MAC = '00:00:00:00:00:00';

export interface FdbEntry {
  mac: string; // lower case
  dst: string;
}

/** One VNI on this host, every default filled in. */
export interface OverlayNetwork {
  vni: number;
  bridge: string;
  vxlan: string;
  local: string;
  dev?: string;
  dstport: number;
  mtu: number;
  remotes: string[];
  /** Static per-MAC entries (the flooding entries come from `remotes`). */
  fdb: FdbEntry[];
  addresses: string[];
  mac?: string;
  ports: string[];
}

export interface OverlaySpec {
  networks: OverlayNetwork[];
}

export class OverlayConfigError extends TierlbError {
  constructor(readonly problems: string[]) {
    super('EOVERLAY_CONFIG', `invalid overlay config:\n  ${problems.join('\n  ')}`);
    this.name = 'OverlayConfigError';
  }
}

let validator: ReturnType<Ajv['compile']> | undefined;

function schemaProblems(raw: unknown): string[] {
  validator ??= new Ajv({ allErrors: true, strict: true }).compile(overlaySchema);
  if (validator(raw)) return [];
  return (validator.errors ?? []).map(
    (e: ErrorObject) =>
      `overlay${e.instancePath.replaceAll('/', '.')}: ${e.message}${
        e.keyword === 'additionalProperties'
          ? ` (${(e.params as { additionalProperty: string }).additionalProperty})`
          : ''
      }`,
  );
}

interface RawNetwork {
  vni: number;
  bridge?: string;
  vxlan?: string;
  local?: string;
  dev?: string;
  dstport?: number;
  mtu?: number;
  remotes?: string[];
  fdb?: { mac: string; dst: string }[];
  addresses?: string[];
  mac?: string;
  ports?: string[];
}
interface RawOverlay {
  local?: string;
  dev?: string;
  dstport?: number;
  mtu?: number;
  networks: RawNetwork[];
}

/** Validate the raw `overlay` section and fill in the defaults; throws OverlayConfigError listing every problem. */
export function normalizeOverlay(raw: unknown): OverlaySpec {
  const problems = schemaProblems(raw);
  if (problems.length) throw new OverlayConfigError(problems);
  const top = raw as RawOverlay;
  const networks: OverlayNetwork[] = [];
  const names = new Map<string, string>();
  const vnis = new Set<number>();
  top.networks.forEach((n, i) => {
    const where = `overlay.networks.${i}`;
    const local = n.local ?? top.local;
    if (!local) problems.push(`${where}: no local underlay address (set overlay.local or ${where}.local)`);
    if (vnis.has(n.vni)) problems.push(`${where}: VNI ${n.vni} appears twice`);
    vnis.add(n.vni);
    const net: OverlayNetwork = {
      vni: n.vni,
      bridge: n.bridge ?? `br${n.vni}`,
      vxlan: n.vxlan ?? `vx${n.vni}`,
      local: local ?? '',
      dev: n.dev ?? top.dev,
      dstport: n.dstport ?? top.dstport ?? DEFAULT_DSTPORT,
      mtu: n.mtu ?? top.mtu ?? DEFAULT_MTU,
      remotes: n.remotes ?? [],
      fdb: (n.fdb ?? []).map((e) => ({ mac: e.mac.toLowerCase(), dst: e.dst })),
      addresses: n.addresses ?? [],
      mac: n.mac?.toLowerCase(),
      ports: n.ports ?? [],
    };
    if (net.dev === undefined) delete net.dev;
    if (net.mac === undefined) delete net.mac;
    for (const [role, name] of [
      ['bridge', net.bridge],
      ['vxlan', net.vxlan],
      ...net.ports.map((p) => ['port', p]),
    ] as const) {
      if (name.length > 15) problems.push(`${where}.${role}: '${name}' is longer than 15 characters`);
      const other = names.get(name);
      if (other) problems.push(`${where}.${role}: '${name}' is already used as ${other}`);
      names.set(name, `${where}.${role}`);
    }
    if (net.remotes.includes(net.local)) problems.push(`${where}.remotes: contains the local address ${net.local}`);
    const macs = new Set<string>();
    for (const e of net.fdb) {
      if (e.mac === FLOOD_MAC) problems.push(`${where}.fdb: ${FLOOD_MAC} is for flooding: list the VTEP in remotes`);
      if (macs.has(e.mac)) problems.push(`${where}.fdb: ${e.mac} appears twice`);
      macs.add(e.mac);
    }
    networks.push(net);
  });
  if (problems.length) throw new OverlayConfigError(problems);
  return { networks };
}

/** The alias that marks a link as made by the overlay for one VNI. */
export function ownerAlias(vni: number): string {
  return `${OWNER_ALIAS_PREFIX} vni=${vni}`;
}

export function isOwnedAlias(alias: string | undefined): boolean {
  return alias === OWNER_ALIAS_PREFIX || (alias?.startsWith(`${OWNER_ALIAS_PREFIX} `) ?? false);
}
