/**
 * The overlay planner: config + observed state → the `ip` / `bridge` commands that bring the host to the config
 * (`planUp`) or remove what the overlay made (`planDown`), and the object-by-object comparison `tierlb overlay show`
 * prints. Pure: no kernel, no processes. Applying the plan and planning again yields no commands (idempotence).
 *
 * Ownership: every link the overlay creates gets the alias `tierlb:overlay vni=N`; a link of the configured name
 * without it is someone else's and is neither changed nor removed (a conflict is reported instead).
 */
import { FLOOD_MAC, isOwnedAlias, type OverlayNetwork, type OverlaySpec, ownerAlias } from './config.js';
import type { FdbState, HostState, LinkState } from './state.js';

export interface Command {
  /** argv without the namespace: argv[0] is 'ip' or 'bridge'. */
  argv: string[];
  why: string;
}

export type CheckStatus = 'ok' | 'missing' | 'differs' | 'foreign' | 'extra';

/** One row of `overlay show`: an object the config wants (or an extra one the overlay owns). */
export interface Check {
  vni: number;
  object: string;
  want: string;
  have: string;
  status: CheckStatus;
}

export interface Plan {
  commands: Command[];
  /** Problems that keep (part of) the config from being applied: foreign links, missing ports. */
  conflicts: string[];
  checks: Check[];
}

/** The argv to run, with `-n NS` after the program when a namespace is given. */
export function render(cmd: Command, netns?: string): string[] {
  const [prog, ...rest] = cmd.argv;
  return netns ? [prog, '-n', netns, ...rest] : [...cmd.argv];
}

/** A shell-like one-liner for printing. */
export function commandLine(cmd: Command, netns?: string): string {
  return render(cmd, netns)
    .map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", "'\\''")}'`))
    .join(' ');
}

function owned(l: LinkState | undefined): boolean {
  return !!l && isOwnedAlias(l.alias);
}

function describeLink(l: LinkState | undefined): string {
  if (!l) return '-';
  const parts = [l.kind || 'link', `mtu ${l.mtu}`, l.up ? 'up' : 'down'];
  if (l.kind === 'bridge' && l.mac) parts.push(`address ${l.mac}`);
  if (l.master) parts.push(`master ${l.master}`);
  if (l.vxlan) {
    const v = l.vxlan;
    parts.push(
      `id ${v.id}`,
      `local ${v.local ?? '-'}`,
      `dstport ${v.port ?? '-'}`,
      v.learning ? 'learning' : 'nolearning',
    );
    if (v.link) parts.push(`dev ${v.link}`);
    if (v.group) parts.push(`group ${v.group}`);
    if (v.remote) parts.push(`remote ${v.remote}`);
  }
  if (!isOwnedAlias(l.alias)) parts.push('(not made by tierlb)');
  return parts.join(' ');
}

/** Why an existing VXLAN device cannot be kept as it is (its identity differs from the config), or null. */
function vxlanMismatch(l: LinkState, net: OverlayNetwork): string | null {
  const v = l.vxlan;
  if (l.kind !== 'vxlan' || !v) return `is a ${l.kind || 'link'}, not vxlan`;
  if (v.id !== net.vni) return `VNI ${v.id}`;
  if (v.local !== net.local) return `local ${v.local ?? '-'}`;
  if (v.port !== undefined && v.port !== net.dstport) return `dstport ${v.port}`;
  if (v.learning) return 'learning on';
  if (v.group || v.remote) return `group/remote ${v.group ?? v.remote}`;
  if ((net.dev ?? undefined) !== (v.link ?? undefined)) return `dev ${v.link ?? '-'}`;
  return null;
}

function fdbKey(e: { mac: string; dst: string }): string {
  return `${e.mac} ${e.dst}`;
}

class Planner {
  readonly commands: Command[] = [];
  readonly conflicts: string[] = [];
  readonly checks: Check[] = [];

  constructor(private readonly state: HostState) {}

  private cmd(why: string, ...argv: string[]): void {
    this.commands.push({ argv, why });
  }

  private check(net: OverlayNetwork, object: string, want: string, have: string, status: CheckStatus): void {
    this.checks.push({ vni: net.vni, object, want, have, status });
  }

  network(net: OverlayNetwork): void {
    const br = this.state.links.get(net.bridge);
    const vx = this.state.links.get(net.vxlan);
    const brWant = `bridge mtu ${net.mtu} up${net.mac ? ` address ${net.mac}` : ''}`;
    const vxWant = `vxlan id ${net.vni} local ${net.local} dstport ${net.dstport} nolearning mtu ${net.mtu} master ${net.bridge}${net.dev ? ` dev ${net.dev}` : ''}`;

    // Links the overlay does not own are left alone: the whole network waits until the conflict is resolved.
    let blocked = false;
    for (const [l, name, want] of [
      [br, net.bridge, brWant],
      [vx, net.vxlan, vxWant],
    ] as const) {
      if (l && !owned(l)) {
        this.conflicts.push(`VNI ${net.vni}: link ${name} exists and was not made by tierlb (${describeLink(l)})`);
        this.check(net, `link ${name}`, want, describeLink(l), 'foreign');
        blocked = true;
      }
    }
    const missingPorts = net.ports.filter((p) => !this.state.links.has(p));
    for (const p of missingPorts) {
      this.conflicts.push(`VNI ${net.vni}: port ${p} does not exist`);
      this.check(net, `port ${p}`, `master ${net.bridge} up`, '-', 'missing');
    }
    if (blocked) return;

    // The bridge.
    const alias = ownerAlias(net.vni);
    const brNew = br?.kind !== 'bridge';
    const brCreate = () => {
      const address = net.mac ? ['address', net.mac] : [];
      this.cmd(`create bridge ${net.bridge}`, 'ip', 'link', 'add', net.bridge, ...address, 'type', 'bridge');
      this.cmd(`mark ${net.bridge} as tierlb's`, 'ip', 'link', 'set', net.bridge, 'alias', alias);
    };
    if (!br) {
      this.check(net, `bridge ${net.bridge}`, brWant, '-', 'missing');
      brCreate();
    } else {
      const diffs: string[] = [];
      if (br.kind !== 'bridge') {
        // ours but of the wrong kind (config changed names): remake it
        diffs.push(`kind ${br.kind}`);
        this.cmd(`${net.bridge} is a ${br.kind}, not a bridge`, 'ip', 'link', 'del', net.bridge);
        brCreate();
      } else if (net.mac && br.mac !== net.mac) {
        diffs.push(`address ${br.mac}`);
        this.cmd(`bridge address ${br.mac} → ${net.mac}`, 'ip', 'link', 'set', net.bridge, 'address', net.mac);
      }
      if (br.kind === 'bridge' && br.mtu !== net.mtu) diffs.push(`mtu ${br.mtu}`);
      if (!br.up) diffs.push('down');
      this.check(net, `bridge ${net.bridge}`, brWant, describeLink(br), diffs.length ? 'differs' : 'ok');
    }

    // The VXLAN device.
    let vxFresh = !vx;
    const vxCreate = () => {
      this.cmd(
        `create vxlan ${net.vxlan} (VNI ${net.vni})`,
        'ip',
        'link',
        'add',
        net.vxlan,
        'mtu',
        String(net.mtu),
        'type',
        'vxlan',
        'id',
        String(net.vni),
        'local',
        net.local,
        'dstport',
        String(net.dstport),
        'nolearning',
        ...(net.dev ? ['dev', net.dev] : []),
      );
      this.cmd(`mark ${net.vxlan} as tierlb's`, 'ip', 'link', 'set', net.vxlan, 'alias', alias);
      this.cmd(`enslave ${net.vxlan} to ${net.bridge}`, 'ip', 'link', 'set', net.vxlan, 'master', net.bridge);
    };
    if (!vx) {
      this.check(net, `vxlan ${net.vxlan}`, vxWant, '-', 'missing');
      vxCreate();
    } else {
      const mismatch = vxlanMismatch(vx, net);
      const diffs: string[] = [];
      if (mismatch) {
        diffs.push(mismatch);
        this.cmd(`${net.vxlan} has ${mismatch}: recreate`, 'ip', 'link', 'del', net.vxlan);
        vxCreate();
        vxFresh = true;
      } else {
        if (vx.mtu !== net.mtu) {
          diffs.push(`mtu ${vx.mtu}`);
          this.cmd(`${net.vxlan} mtu ${vx.mtu} → ${net.mtu}`, 'ip', 'link', 'set', net.vxlan, 'mtu', String(net.mtu));
        }
        if (vx.master !== net.bridge || brNew) {
          diffs.push(`master ${vx.master ?? '-'}`);
          this.cmd(`enslave ${net.vxlan} to ${net.bridge}`, 'ip', 'link', 'set', net.vxlan, 'master', net.bridge);
        }
        if (!vx.up) diffs.push('down');
      }
      this.check(net, `vxlan ${net.vxlan}`, vxWant, describeLink(vx), diffs.length ? 'differs' : 'ok');
    }

    // Forwarding entries: flooding to every remote VTEP, then the static per-MAC entries.
    const want = [
      ...net.remotes.map((dst) => ({ mac: FLOOD_MAC, dst, flood: true })),
      ...net.fdb.map((e) => ({ ...e, flood: false })),
    ];
    const have: FdbState[] = vxFresh ? [] : this.state.fdb.filter((e) => e.dev === net.vxlan);
    const haveKeys = new Set(have.map(fdbKey));
    const wantKeys = new Set(want.map(fdbKey));
    for (const e of have) {
      if (wantKeys.has(fdbKey(e))) continue;
      this.check(net, `fdb ${e.mac} dst ${e.dst}`, '-', 'present', 'extra');
      this.cmd(`stale fdb entry ${e.mac} → ${e.dst}`, 'bridge', 'fdb', 'del', e.mac, 'dev', net.vxlan, 'dst', e.dst);
    }
    for (const e of want) {
      const object = `fdb ${e.mac} dst ${e.dst}`;
      if (haveKeys.has(fdbKey(e))) {
        this.check(net, object, e.flood ? 'flood' : 'static', 'present', 'ok');
        continue;
      }
      this.check(net, object, e.flood ? 'flood' : 'static', '-', 'missing');
      // `append` adds one more remote to the all-zeros entry; a unicast MAC has a single destination
      this.cmd(
        e.flood ? `flood to VTEP ${e.dst}` : `static entry ${e.mac} → ${e.dst}`,
        'bridge',
        'fdb',
        e.flood ? 'append' : 'add',
        e.mac,
        'dev',
        net.vxlan,
        'dst',
        e.dst,
        'self',
        'permanent',
      );
    }

    // Ports (existing links, e.g. the host ends of backends' veths) enslaved to the bridge.
    for (const p of net.ports) {
      const l = this.state.links.get(p);
      if (!l) continue;
      const diffs: string[] = [];
      if (l.master !== net.bridge || brNew) {
        diffs.push(`master ${l.master ?? '-'}`);
        this.cmd(`enslave ${p} to ${net.bridge}`, 'ip', 'link', 'set', p, 'master', net.bridge);
      }
      if (!l.up) {
        diffs.push('down');
        this.cmd(`bring ${p} up`, 'ip', 'link', 'set', p, 'up');
      }
      this.check(net, `port ${p}`, `master ${net.bridge} up`, describeLink(l), diffs.length ? 'differs' : 'ok');
    }

    // The bridge's MTU is set after its ports are in, so enslaving a 1500-byte port cannot raise or lower it.
    if (brNew || br.mtu !== net.mtu) {
      this.cmd(`${net.bridge} mtu ${net.mtu}`, 'ip', 'link', 'set', net.bridge, 'mtu', String(net.mtu));
    }

    // Addresses on the bridge: the configured ones, and no other global IPv4 address (the bridge is ours).
    const haveAddrs = brNew ? [] : br.addresses;
    for (const a of haveAddrs) {
      if (net.addresses.includes(a)) {
        this.check(net, `address ${a}`, `on ${net.bridge}`, 'present', 'ok');
        continue;
      }
      this.check(net, `address ${a}`, '-', `on ${net.bridge}`, 'extra');
      this.cmd(`address ${a} is not in the config`, 'ip', 'addr', 'del', a, 'dev', net.bridge);
    }
    for (const a of net.addresses) {
      if (haveAddrs.includes(a)) continue;
      this.check(net, `address ${a}`, `on ${net.bridge}`, '-', 'missing');
      this.cmd(`address ${a} on ${net.bridge}`, 'ip', 'addr', 'add', a, 'dev', net.bridge);
    }

    if (!vx || vxFresh || !vx.up) this.cmd(`bring ${net.vxlan} up`, 'ip', 'link', 'set', net.vxlan, 'up');
    if (brNew || !br.up) this.cmd(`bring ${net.bridge} up`, 'ip', 'link', 'set', net.bridge, 'up');
  }
}

/** Commands that make the host match the config; also the comparison rows and the conflicts. */
export function planUp(spec: OverlaySpec, state: HostState): Plan {
  const p = new Planner(state);
  for (const net of spec.networks) p.network(net);
  // Links the overlay owns that the config no longer names are listed (removed by `down --all`).
  const named = new Set(spec.networks.flatMap((n) => [n.bridge, n.vxlan]));
  for (const l of state.links.values()) {
    if (owned(l) && !named.has(l.name)) {
      p.checks.push({
        vni: l.vxlan?.id ?? 0,
        object: `link ${l.name}`,
        want: '-',
        have: describeLink(l),
        status: 'extra',
      });
    }
  }
  return { commands: p.commands, conflicts: p.conflicts, checks: p.checks };
}

/**
 * Commands that remove what the overlay made for the configured networks (with `all`, every link carrying the
 * overlay's alias). Links of those names not made by tierlb are reported and kept; enslaved ports are released, not
 * deleted.
 */
export function planDown(spec: OverlaySpec, state: HostState, opts: { all?: boolean } = {}): Plan {
  const commands: Command[] = [];
  const conflicts: string[] = [];
  const checks: Check[] = [];
  const seen = new Set<string>();
  const del = (l: LinkState, vni: number) => {
    if (seen.has(l.name)) return;
    seen.add(l.name);
    commands.push({ argv: ['ip', 'link', 'del', l.name], why: `remove ${l.kind || 'link'} ${l.name}` });
    checks.push({ vni, object: `link ${l.name}`, want: '-', have: describeLink(l), status: 'extra' });
  };
  for (const net of spec.networks) {
    for (const name of [net.vxlan, net.bridge]) {
      const l = state.links.get(name);
      if (!l) continue;
      if (owned(l)) del(l, net.vni);
      else {
        conflicts.push(`VNI ${net.vni}: link ${name} was not made by tierlb: kept`);
        checks.push({ vni: net.vni, object: `link ${name}`, want: '-', have: describeLink(l), status: 'foreign' });
      }
    }
  }
  if (opts.all) {
    // VXLAN devices first, then bridges (order does not matter to the kernel, it reads better)
    const ours = [...state.links.values()]
      .filter(owned)
      .sort((a, b) => Number(b.kind === 'vxlan') - Number(a.kind === 'vxlan'));
    for (const l of ours) del(l, l.vxlan?.id ?? 0);
  }
  return { commands, conflicts, checks };
}

/** The `overlay show` table. */
export function formatChecks(checks: Check[]): string {
  const rows = [
    ['VNI', 'OBJECT', 'STATUS', 'WANT', 'HAVE'],
    ...checks.map((c) => [String(c.vni), c.object, c.status, c.want, c.have]),
  ];
  const widths = [0, 1, 2, 3].map((i) => Math.max(...rows.map((r) => r[i].length)));
  return rows
    .map((r) =>
      r
        .map((cell, i) => (i < 4 ? cell.padEnd(widths[i]) : cell))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}
