/**
 * The `overlay` config section: schema validation and normalisation into the fully-defaulted form the planner works
 * on. Pure (no I/O): the CLI reads the file.
 */
import { Ajv, type ErrorObject } from 'ajv';
import { TierlbError } from '../common/errors.js';
import { overlaySchema } from './config-schema.js';
import { overlayProblems } from './semantics.js';

export { FLOOD_MAC } from './semantics.js';

export const DEFAULT_DSTPORT = 4789;
export const DEFAULT_MTU = 1450;
/** The ifalias put on every link the overlay creates: `down` removes only links that carry it. */
export const OWNER_ALIAS_PREFIX = 'tierlb:overlay';

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
  for (const p of overlayProblems(raw)) problems.push(`overlay.${p.path.join('.')}: ${p.message}`);
  if (problems.length) throw new OverlayConfigError(problems);
  const top = raw as RawOverlay;
  const networks = top.networks.map((n): OverlayNetwork => {
    const net: OverlayNetwork = {
      vni: n.vni,
      bridge: n.bridge ?? `br${n.vni}`,
      vxlan: n.vxlan ?? `vx${n.vni}`,
      local: (n.local ?? top.local)!,
      dstport: n.dstport ?? top.dstport ?? DEFAULT_DSTPORT,
      mtu: n.mtu ?? top.mtu ?? DEFAULT_MTU,
      remotes: n.remotes ?? [],
      fdb: (n.fdb ?? []).map((e) => ({ mac: e.mac.toLowerCase(), dst: e.dst })),
      addresses: n.addresses ?? [],
      ports: n.ports ?? [],
    };
    const dev = n.dev ?? top.dev;
    if (dev) net.dev = dev;
    if (n.mac) net.mac = n.mac.toLowerCase();
    return net;
  });
  return { networks };
}

/** The alias that marks a link as made by the overlay for one VNI. */
export function ownerAlias(vni: number): string {
  return `${OWNER_ALIAS_PREFIX} vni=${vni}`;
}

export function isOwnedAlias(alias: string | undefined): boolean {
  return alias === OWNER_ALIAS_PREFIX || (alias?.startsWith(`${OWNER_ALIAS_PREFIX} `) ?? false);
}
