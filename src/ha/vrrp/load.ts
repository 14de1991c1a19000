/**
 * The `vrrp` section of a config loaded by src/config → the in-memory VrrpConfig. The loader has already checked the
 * schema and the section's own checks (src/ha/config-schema.ts); the checks that need the whole VrrpConfig
 * (checkVrrpConfig: duplicate names and VRIDs, undefined scripts, sync groups) are placed here at the file:line of
 * the instance or sync group they name, so every problem of a YAML file has its place.
 */
import {
  ConfigError,
  type ConfigPath,
  type ConfigProblem,
  hasPath,
  type LoadedConfig,
  problemAt,
} from '../../config/index.js';
import '../config-schema.js'; // registers the vrrp section with the loader
import { checkVrrpConfig, type VrrpSection, vrrpFromSection } from './config.js';
import type { VrrpConfig } from './types.js';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const nameOf = (v: unknown): unknown => (isObj(v) ? v.name : v);
const addrOf = (v: unknown): string => {
  const a = isObj(v) ? v.address : v;
  return typeof a === 'string' ? a.split('/')[0] : '';
};

/** The keywords a checkVrrpConfig message starts with → where in the instance it points. */
const AT_KEY: [RegExp, ConfigPath][] = [
  [/^virtual_router_id\b/, ['virtual_router_id']],
  [/^priority\b/, ['priority']],
  [/^advert_int\b/, ['advert_int']],
  [/^auth_pass\b/, ['authentication', 'auth_pass']],
  [/^authentication\b/, ['authentication']],
  [/^unicast_peer\b/, ['unicast_peer']],
  [/^VRRPv2\b/, ['version']],
  [/^no virtual_ipaddress/, []],
];

/** Where in one instance a checkVrrpConfig message (after `vrrp instance NAME: `) points, relative to it. */
function instanceDetail(inst: unknown, rest: string): ConfigPath {
  if (!isObj(inst)) return [];
  for (const [re, path] of AT_KEY) if (re.test(rest)) return path;
  const script = /^track_script (\S+) /.exec(rest);
  if (script) {
    const j = list(inst.track_script).findIndex((t) => nameOf(t) === script[1]);
    return j >= 0 ? ['track_script', j] : ['track_script'];
  }
  const addr = /^virtual address (\S+?)(?:\/\d+)?[: ]/.exec(rest)?.[1] ?? /\[([^\]]+)\]$/.exec(rest)?.[1];
  if (addr) {
    const v = list(inst.virtual_ipaddress).findIndex((x) => addrOf(x) === addr);
    if (v >= 0) return ['virtual_ipaddress', v];
    if (inst.unicast_src_ip === addr) return ['unicast_src_ip'];
    const p = list(inst.unicast_peer).indexOf(addr);
    if (p >= 0) return ['unicast_peer', p];
  }
  return [];
}

/**
 * checkVrrpConfig's messages as problems at their places. `base`: where the section is in the file (['vrrp'], or []
 * for a file that is the section alone). Messages come in the section's order, so a name used twice is placed at the
 * use the message is about (the later one).
 */
export function placeVrrpProblems(
  messages: string[],
  section: unknown,
  loaded: Pick<LoadedConfig, 'source'>,
  base: ConfigPath,
): ConfigProblem[] {
  const sec = isObj(section) ? section : {};
  const instances = list(sec.instances);
  const groups = list(sec.sync_groups);
  let nextInstance = 0;
  let nextGroup = 0;
  const out: ConfigProblem[] = [];
  const at = (path: ConfigPath, detail: ConfigPath, message: string) => {
    const full = [...base, ...path, ...detail];
    out.push(problemAt(loaded.source, hasPath(loaded.source, full) ? full : [...base, ...path], message));
  };
  /** the entry named `name` at or after `from` (a name used twice: `again` skips its first use) */
  const find = (items: unknown[], name: string, from: number, again = false) => {
    const first = items.findIndex((x) => nameOf(x) === name);
    const later = items.findIndex((x, k) => k >= from && (!again || k > first) && nameOf(x) === name);
    return later >= 0 ? later : first;
  };
  for (const m of messages) {
    const inst = /^vrrp instance (\S+): (.*)$/.exec(m);
    const group = /^vrrp sync group (\S+): (.*)$/.exec(m);
    if (inst) {
      const i = find(instances, inst[1], nextInstance, inst[2] === 'duplicate instance name');
      if (i < 0) {
        at([], [], m);
        continue;
      }
      nextInstance = i;
      at(['instances', i], instanceDetail(instances[i], inst[2]), m);
    } else if (group) {
      const g = find(groups, group[1], nextGroup);
      if (g < 0) {
        at([], [], m);
        continue;
      }
      nextGroup = g;
      const n = /^instance (\S+) /.exec(group[2])?.[1];
      const k = n === undefined ? -1 : list((groups[g] as Obj | undefined)?.group).indexOf(n);
      at(['sync_groups', g], k >= 0 ? ['group', k] : [], m);
    } else at([], [], m);
  }
  return out;
}

/**
 * The VRRP configuration of a loaded config (its `vrrp` section; the whole file when it was read as that section
 * alone). Throws ConfigError with every problem at its file:line; `undefined` when the file has no vrrp section.
 */
export function vrrpFromLoaded(loaded: LoadedConfig): VrrpConfig | undefined {
  const section = loaded.config.vrrp;
  if (section === undefined) return undefined;
  const cfg = vrrpFromSection(section as VrrpSection);
  const problems = checkVrrpConfig(cfg);
  if (problems.length)
    throw new ConfigError(placeVrrpProblems(problems, section, loaded, loaded.bare === 'vrrp' ? [] : ['vrrp']));
  return cfg;
}
