/** The cluster section's checks beyond the JSON schema. Pure and defensive (it also runs on rejected configs). */

export interface ClusterProblem {
  path: (string | number)[];
  message: string;
}

const isObj = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);
const list = (v: unknown): Record<string, unknown>[] => (Array.isArray(v) ? v.filter(isObj) : []);

export function clusterProblems(section: unknown): ClusterProblem[] {
  const problems: ClusterProblem[] = [];
  if (!isObj(section)) return problems;
  // node names are unique over every role (they are what --node selects)
  const nodes = new Map<string, string>();
  for (const role of ['directors', 'lb_nodes', 'hypervisors', 'backends'] as const)
    (Array.isArray(section[role]) ? section[role] : []).forEach((n: unknown, i: number) => {
      if (!isObj(n) || typeof n.name !== 'string') return;
      const first = nodes.get(n.name);
      if (first) problems.push({ path: [role, i, 'name'], message: `'${n.name}' is also ${first}` });
      else nodes.set(n.name, `${role}[${i}]`);
    });
  const vips = new Map<string, string>();
  list(section.vips).forEach((v) => {
    if (typeof v.name === 'string' && typeof v.address === 'string') vips.set(v.name, v.address);
  });
  const names = new Map<string, number>();
  const binds = new Map<string, number>();
  const marks = new Map<number, number>();
  (Array.isArray(section.listeners) ? section.listeners : []).forEach((l: unknown, i: number) => {
    if (!isObj(l)) return;
    if (typeof l.name === 'string') {
      const first = names.get(l.name);
      if (first !== undefined)
        problems.push({ path: ['listeners', i, 'name'], message: `also listener ${first}'s name` });
      else names.set(l.name, i);
    }
    if (typeof l.vip === 'string' && !vips.has(l.vip))
      problems.push({
        path: ['listeners', i, 'vip'],
        message: `no VIP named '${l.vip}' (known: ${[...vips.keys()].join(', ') || 'none'})`,
      });
    const bind = `${String(l.vip)}:${String(l.port)}`;
    const b = binds.get(bind);
    if (b !== undefined)
      problems.push({ path: ['listeners', i, 'port'], message: `listener ${b} has this VIP and port` });
    else binds.set(bind, i);
    if (typeof l.fwmark === 'number') {
      const m = marks.get(l.fwmark);
      if (m !== undefined) problems.push({ path: ['listeners', i, 'fwmark'], message: `listener ${m} pins it too` });
      else marks.set(l.fwmark, i);
    }
  });
  if (isObj(section.overlay))
    list(section.lb_nodes).forEach((n, i) => {
      if (n.underlay === undefined || n.overlay === undefined)
        problems.push({ path: ['lb_nodes', i], message: 'with an overlay, an LB node needs underlay and overlay' });
    });
  return problems;
}
