/**
 * The overlay section's checks beyond the JSON schema (duplicate VNIs and link names, a missing local address,
 * flooding MACs in `fdb`). Pure and defensive (it also runs on configs the schema rejected); used by the config
 * loader's section validator and by normalizeOverlay.
 */
export const FLOOD_MAC = '00:00:00:00:00:00';

export interface OverlayProblem {
  /** Relative to the `overlay` section, e.g. ['networks', 0, 'vni']. */
  path: (string | number)[];
  message: string;
}

const isObj = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);
const strs = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);

export function overlayProblems(section: unknown): OverlayProblem[] {
  const problems: OverlayProblem[] = [];
  if (!isObj(section) || !Array.isArray(section.networks)) return problems;
  const names = new Map<string, string>();
  const vnis = new Map<number, number>();
  section.networks.forEach((n: unknown, i: number) => {
    if (!isObj(n) || typeof n.vni !== 'number') return;
    const at = (...p: (string | number)[]) => ['networks', i, ...p];
    const first = vnis.get(n.vni);
    if (first !== undefined) problems.push({ path: at('vni'), message: `VNI ${n.vni} is also network ${first}'s` });
    else vnis.set(n.vni, i);
    const local = typeof n.local === 'string' ? n.local : section.local;
    if (typeof local !== 'string') {
      problems.push({ path: at(), message: "no local underlay address (set overlay.local or the network's local)" });
    }
    const links: [(string | number)[], string][] = [
      [['bridge'], typeof n.bridge === 'string' ? n.bridge : `br${n.vni}`],
      [['vxlan'], typeof n.vxlan === 'string' ? n.vxlan : `vx${n.vni}`],
      ...strs(n.ports).map((p, j): [(string | number)[], string] => [['ports', j], p]),
    ];
    for (const [rel, name] of links) {
      const path = at(...rel);
      if (name.length > 15) problems.push({ path, message: `'${name}' is longer than 15 characters` });
      const other = names.get(name);
      if (other) problems.push({ path, message: `'${name}' is already used as ${other}` });
      else names.set(name, path.join('.'));
    }
    if (typeof local === 'string' && strs(n.remotes).includes(local)) {
      problems.push({ path: at('remotes'), message: `contains the local address ${local}` });
    }
    const macs = new Set<string>();
    (Array.isArray(n.fdb) ? n.fdb : []).forEach((e: unknown, j: number) => {
      if (!isObj(e) || typeof e.mac !== 'string') return;
      const mac = e.mac.toLowerCase();
      if (mac === FLOOD_MAC) {
        problems.push({ path: at('fdb', j, 'mac'), message: `${FLOOD_MAC} is for flooding: list the VTEP in remotes` });
      }
      if (macs.has(mac)) problems.push({ path: at('fdb', j, 'mac'), message: `${mac} appears twice` });
      macs.add(mac);
    });
  });
  return problems;
}
