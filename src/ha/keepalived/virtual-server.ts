/**
 * keepalived.conf's director sections: `virtual_server_group` and `virtual_server` with its `real_server`s, into
 * ServiceSpec / DestSpec (src/l4/services.ts) and the health-check configuration beside them (src/ha/checks-types.ts).
 */
import { type Family, familyOf, ipv4ToInt } from '../../common/addr.js';
import { type FwdMethod, MAX_WEIGHT } from '../../l4/dest.js';
import { DEFAULT_SCHEDULER, hasScheduler, SCHEDULERS } from '../../l4/schedulers/index.js';
import { type ServiceId, SVC_F_ONEPACKET, SVC_F_SCHED1, SVC_F_SCHED2, SVC_F_SCHED3 } from '../../l4/service.js';
import type { DestSpec, ServiceSpec } from '../../l4/services.js';
import type { RealServerCheck, RealServerHealth, VirtualServerHealth } from '../checks-types.js';
import { checkerHandlers, UNSUPPORTED_CHECKERS } from './checkers.js';
import { type Ctx, EMAIL_NOTE } from './ctx.js';
import type { Statement, Where } from './parse.js';

const LB_KINDS: Record<string, FwdMethod> = { DR: 'route', NAT: 'masq', TUN: 'tunnel' };

export interface KeepalivedService {
  spec: ServiceSpec;
  dests: DestSpec[];
  health: VirtualServerHealth;
  /** the virtual_server_group it was expanded from */
  group?: string;
  where: Where;
}

export type GroupMember = { kind: 'ip'; addr: string; port: number } | { kind: 'fwm'; fwmark: number };

export function vsGroup(c: Ctx, s: Statement): GroupMember[] {
  const out: GroupMember[] = [];
  for (const y of s.block ?? []) {
    if (y.name === 'fwmark') {
      const m = c.num(y, { min: 1, max: 0xffffffff, int: true });
      if (m !== undefined) out.push({ kind: 'fwm', fwmark: m });
      continue;
    }
    const port = c.port(y, y.args[0]);
    if (y.args.length === 0) c.error(y, `virtual_server_group entry '${y.name}' needs a port`);
    const range = /^(\d+\.\d+\.\d+\.)(\d+)-(\d+)$/.exec(y.name);
    if (range) {
      const [lo, hi] = [Number(range[2]), Number(range[3])];
      if (lo > hi || hi > 255) c.error(y, `bad address range ${y.name}`);
      else if (port !== undefined)
        for (let i = lo; i <= hi; i++) out.push({ kind: 'ip', addr: `${range[1]}${i}`, port });
      continue;
    }
    const addr = c.addr(y, y.name);
    if (addr && port !== undefined) out.push({ kind: 'ip', addr, port });
  }
  return out;
}

interface RsOut {
  dest: DestSpec;
  health: RealServerHealth;
}

function realServer(c: Ctx, s: Statement, fwd: FwdMethod): RsOut | undefined {
  const addr = c.addr(s, c.arg(s, 0));
  const port = s.args.length >= 2 ? c.port(s, s.args[1]) : 0;
  const dest: Partial<DestSpec> = { fwd, weight: 1, uThreshold: 0, lThreshold: 0 };
  const health: Omit<RealServerHealth, 'addr' | 'port'> = { inhibitOnFailure: false, checks: [] };
  const addCheck = (ch: RealServerCheck | undefined) => {
    if (ch) health.checks.push(ch);
  };
  c.each(
    s.block,
    `real_server ${s.args.join(' ')}`,
    {
      weight: (x) => {
        dest.weight = c.num(x, { min: 0, max: MAX_WEIGHT, int: true }) ?? 1;
      },
      inhibit_on_failure: (x) => {
        c.noArgs(x);
        health.inhibitOnFailure = true;
      },
      uthreshold: (x) => {
        dest.uThreshold = c.num(x, { min: 0, max: 0xffffffff, int: true }) ?? 0;
      },
      lthreshold: (x) => {
        dest.lThreshold = c.num(x, { min: 0, max: 0xffffffff, int: true }) ?? 0;
      },
      lb_kind: (x) => lbKind(c, x, (f) => (dest.fwd = f)),
      lvs_method: (x) => lbKind(c, x, (f) => (dest.fwd = f)),
      notify_up: (x) => {
        health.notifyUp = c.command(x);
      },
      notify_down: (x) => {
        health.notifyDown = c.command(x);
      },
      ...checkerHandlers(c, addCheck),
    },
    { ...UNSUPPORTED_CHECKERS, smtp_alert: EMAIL_NOTE },
  );
  if (!addr || port === undefined) return undefined;
  if (s.args.length < 2) c.warn(s, `real_server ${addr} without a port: port 0 (the service's port)`);
  return {
    dest: { ...(dest as DestSpec), addr, port },
    health: { addr, port, ...health },
  };
}

function lbKind(c: Ctx, x: Statement, set: (f: FwdMethod) => void): void {
  const v = c.arg(x);
  if (v === undefined) return;
  const f = LB_KINDS[v.toUpperCase()];
  if (f) set(f);
  else c.error(x, `${x.name} must be DR, NAT or TUN, got '${v}'`);
}

export function virtualServer(c: Ctx, s: Statement, groups: Map<string, GroupMember[]>): KeepalivedService[] {
  const head = s.args.join(' ');
  const inside = `virtual_server ${head}`;
  let members: GroupMember[] = [];
  let groupName: string | undefined;
  let family: Family | 0 = 0;
  if (s.args[0] === 'fwmark') {
    const m = c.num({ ...s, args: s.args.slice(1) }, { min: 1, max: 0xffffffff, int: true });
    if (m !== undefined) members = [{ kind: 'fwm', fwmark: m }];
    if (s.args.includes('inet6')) family = 6;
  } else if (s.args[0] === 'group') {
    groupName = c.arg(s, 1);
    const g = groupName ? groups.get(groupName) : undefined;
    if (groupName && !g) c.error(s, `virtual_server_group ${groupName} is not defined (it must come before its use)`);
    members = g ?? [];
  } else {
    const addr = c.addr(s, c.arg(s, 0));
    const port = c.port(s, c.arg(s, 1));
    if (addr && port !== undefined) members = [{ kind: 'ip', addr, port }];
  }
  let sched = DEFAULT_SCHEDULER;
  let fwd: FwdMethod = 'masq';
  let timeout = 0;
  let granularity: number | undefined;
  let proto: 'tcp' | 'udp' | 'sctp' = 'tcp';
  let flags = 0;
  const health: VirtualServerHealth = {
    delayLoop: 60,
    quorum: 1,
    hysteresis: 0,
    alpha: false,
    omega: false,
    haSuspend: false,
    realServers: [],
  };
  const rsStatements: Statement[] = [];
  const flag = (bit: number) => (x: Statement) => {
    c.noArgs(x);
    flags |= bit;
  };
  const sorryWhere: Statement[] = [];
  c.each(
    s.block,
    inside,
    {
      delay_loop: (x) => {
        health.delayLoop = c.num(x, { min: 0.001 }) ?? health.delayLoop;
      },
      lb_algo: (x) => schedOf(x),
      lvs_sched: (x) => schedOf(x),
      lb_kind: (x) => lbKind(c, x, (f) => (fwd = f)),
      lvs_method: (x) => lbKind(c, x, (f) => (fwd = f)),
      persistence_timeout: (x) => {
        timeout = x.args.length === 0 ? 360 : (c.num(x, { min: 1, max: 0x7fffffff, int: true }) ?? 0);
      },
      persistence_granularity: (x) => {
        const v = c.arg(x);
        if (v === undefined) return;
        if (familyOf(v) === 4) granularity = ipv4ToInt(v);
        else if (/^\d+$/.test(v) && Number(v) >= 1 && Number(v) <= 128) granularity = Number(v);
        else c.error(x, `persistence_granularity must be an IPv4 netmask or an IPv6 prefix length, got '${v}'`);
      },
      protocol: (x) => {
        const v = c.arg(x)?.toLowerCase();
        if (v === 'tcp' || v === 'udp' || v === 'sctp') proto = v;
        else if (v) c.error(x, `protocol must be TCP, UDP or SCTP, got '${x.args[0]}'`);
      },
      ops: flag(SVC_F_ONEPACKET),
      'sh-fallback': flag(SVC_F_SCHED1),
      'mh-fallback': flag(SVC_F_SCHED1),
      'flag-1': flag(SVC_F_SCHED1),
      'sh-port': flag(SVC_F_SCHED2),
      'mh-port': flag(SVC_F_SCHED2),
      'flag-2': flag(SVC_F_SCHED2),
      'flag-3': flag(SVC_F_SCHED3),
      sorry_server: (x) => {
        const a = c.addr(x, c.arg(x, 0));
        const p = c.port(x, c.arg(x, 1));
        if (a && p !== undefined)
          health.sorryServer = { addr: a, port: p, inhibit: health.sorryServer?.inhibit ?? false };
        sorryWhere.push(x);
      },
      sorry_server_inhibit: (x) => {
        c.noArgs(x);
        if (health.sorryServer) health.sorryServer.inhibit = true;
        else sorryWhere.push(x);
      },
      quorum: (x) => {
        health.quorum = c.num(x, { min: 1, int: true }) ?? 1;
      },
      hysteresis: (x) => {
        health.hysteresis = c.num(x, { min: 0, int: true }) ?? 0;
      },
      quorum_up: (x) => {
        health.quorumUp = c.command(x);
      },
      quorum_down: (x) => {
        health.quorumDown = c.command(x);
      },
      alpha: (x) => {
        c.noArgs(x);
        health.alpha = true;
      },
      omega: (x) => {
        c.noArgs(x);
        health.omega = true;
      },
      ha_suspend: (x) => {
        c.noArgs(x);
        health.haSuspend = true;
      },
      virtualhost: (x) => {
        health.virtualhost = c.arg(x);
      },
      real_server: (x) => {
        rsStatements.push(x);
      },
    },
    {
      smtp_alert: EMAIL_NOTE,
      retry: "'retry' belongs in a checker",
    },
  );
  function schedOf(x: Statement): void {
    const v = c.arg(x);
    if (v === undefined) return;
    if (hasScheduler(v)) sched = v;
    else c.error(x, `${x.name} '${v}' is not a scheduler (${Object.keys(SCHEDULERS).join(', ')})`);
  }
  if (sorryWhere.length && health.sorryServer === undefined)
    c.warn(sorryWhere[0], 'sorry_server_inhibit without sorry_server: ignored');
  // real servers after lb_kind, whatever their order in the block
  const rs = rsStatements.map((x) => realServer(c, x, fwd)).filter((r): r is RsOut => r !== undefined);
  health.realServers = rs.map((r) => r.health);
  if (family === 0) family = rs.length > 0 ? (familyOf(rs[0].dest.addr) as Family) : 4;
  const seen = new Set<string>();
  for (const r of rs) {
    const k = `${r.dest.addr}|${r.dest.port}`;
    if (seen.has(k)) c.error(s, `real_server ${r.dest.addr} ${r.dest.port} appears twice in ${inside}`);
    seen.add(k);
  }
  return members.map((m) => {
    const id: ServiceId =
      m.kind === 'fwm'
        ? { kind: 'fwm', family: family as Family, fwmark: m.fwmark }
        : { kind: proto, family: familyOf(m.addr) as Family, addr: m.addr, port: m.port };
    const netmask = granularity ?? (id.family === 6 ? 128 : 0xffffffff);
    if (id.family === 6 && netmask > 128) c.error(s, 'persistence_granularity of an IPv6 service is a prefix length');
    return {
      spec: { id, sched, flags, timeout, netmask },
      dests: rs.map((r) => ({ ...r.dest })),
      health: { ...health, realServers: health.realServers.map((h) => ({ ...h, checks: [...h.checks] })) },
      ...(groupName ? { group: groupName } : {}),
      where: { file: s.file, line: s.line },
    };
  });
}
