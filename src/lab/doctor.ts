/**
 * `tierlb doctor`: the troubleshooting checklist of source article 002 (and the DR rules of 003), as pure checks over
 * facts probed from the hosts (src/lab/doctor-probe.ts). Each finding says pass or fail, what was seen, and the fix.
 *
 *   - the VIP and the real servers' addresses (RIPs) answer ping;
 *   - DR real servers: arp_ignore=1 / arp_announce=2 (the kernel uses the larger of `all` and the interface's value),
 *     the VIP on lo as a /32 (and not on an ARPing interface), the default gateway not via a director
 *     (NAT real servers: via the director);
 *   - exactly one director holds the VIP; VRRP adverts for the lab's virtual_router_id come only from the lab's
 *     directors (another router with the same id on the segment breaks both clusters) and from one master at a time;
 *   - on each director: the fwmark rules (a mark per listener port), the director's queue rules for those marks, its
 *     policy rules (a fwmark rule + table routing to each real server) and `lookup local` moved below them;
 *   - the listeners listen on VIP:port on every LB node.
 */
import { LOCAL_PREF, MARK_PREF, MAX_DEST_MARKS, TABLE_BASE } from '../fwmark/plan.js';

export interface HostFacts {
  name: string;
  role: 'director' | 'lb' | 'client' | 'other';
  /** every IPv4 address: interface, address, prefix length */
  addrs: { ifname: string; local: string; prefixlen: number }[];
  /** net.ipv4.conf.<if>.arp_ignore / arp_announce for all, the front interface and lo */
  sysctl: Record<string, number>;
  /** the main table's default gateway, null when there is no default route */
  defaultVia: string | null;
  /** `ip rule` */
  rules: { priority: number; fwmark?: number; table?: string }[];
  /** routes of the tables named by the rules (`default via 10.77.1.21 dev eth0 onlink`) */
  tables: Record<string, string[]>;
  /** `iptables -t mangle -S` */
  mangle: string[];
  /** local address:port of the listening TCP sockets */
  listening: string[];
}

export interface DoctorInput {
  vip: string;
  /** the interface real servers face the director on (its arp_* values count, with `all`) */
  frontIf: string;
  directors: { name: string; ip: string }[];
  realServers: { name: string; ip: string; method: 'route' | 'masq' }[];
  marks: { port: number; mark: number }[];
  /** the chain the mark rules are in: the director's own (src/fwmark CHAIN) */
  markChain: string;
  listenerPorts: number[];
  vrrp: { vrid: number; expected: boolean };
  hosts: Record<string, HostFacts>;
  /** ping results: from a client to a target */
  reach: { from: string; target: string; what: string; ok: boolean }[];
  /** VRRP adverts heard on the segment (null: not listened) */
  adverts: { src: string; vrid: number; priority: number }[] | null;
  /** restrict to the checks about these hosts (tierlb doctor --host) */
  only?: string[];
}

export interface Finding {
  check: 'reach' | 'arp' | 'vip-lo' | 'gateway' | 'vip-holder' | 'vrrp' | 'fwmark' | 'policy' | 'listeners';
  host?: string;
  ok: boolean;
  detail: string;
  fix?: string;
}

const hex = (n: number) => `0x${n.toString(16)}`;

export function doctorChecks(d: DoctorInput): Finding[] {
  const out: Finding[] = [];
  const want = (h: string) => !d.only || d.only.includes(h);
  const dirIps = new Set(d.directors.map((x) => x.ip));

  for (const r of d.reach) {
    if (!want(r.from) && !want(r.what)) continue;
    out.push({
      check: 'reach',
      host: r.what,
      ok: r.ok,
      detail: `${r.from} → ${r.target} (${r.what}) ${r.ok ? 'answers ping' : 'does not answer ping'}`,
      fix: r.ok
        ? undefined
        : `check ${r.what} is up and ${r.target} is configured on it (ip addr), and the segment between them`,
    });
  }

  for (const rs of d.realServers) {
    if (!want(rs.name)) continue;
    const h = d.hosts[rs.name];
    if (!h) continue;
    if (rs.method === 'route') {
      const eff = (k: 'arp_ignore' | 'arp_announce') =>
        Math.max(h.sysctl[`all.${k}`] ?? 0, h.sysctl[`${d.frontIf}.${k}`] ?? 0);
      const ig = eff('arp_ignore');
      const an = eff('arp_announce');
      const ok = ig >= 1 && ig <= 2 && an === 2;
      out.push({
        check: 'arp',
        host: rs.name,
        ok,
        detail: `arp_ignore=${ig} arp_announce=${an} (all: ${h.sysctl['all.arp_ignore'] ?? '?'}/${h.sysctl['all.arp_announce'] ?? '?'}, ${d.frontIf}: ${h.sysctl[`${d.frontIf}.arp_ignore`] ?? '?'}/${h.sysctl[`${d.frontIf}.arp_announce`] ?? '?'})`,
        fix: ok
          ? undefined
          : `sysctl -w net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 net.ipv4.conf.${d.frontIf}.arp_ignore=1 net.ipv4.conf.${d.frontIf}.arp_announce=2 (else ${rs.name} answers ARP for the VIP and clients bypass the director)`,
      });
      const onLo = h.addrs.find((a) => a.ifname === 'lo' && a.local === d.vip);
      const elsewhere = h.addrs.filter((a) => a.ifname !== 'lo' && a.local === d.vip);
      const ok2 = !!onLo && onLo.prefixlen === 32 && elsewhere.length === 0;
      out.push({
        check: 'vip-lo',
        host: rs.name,
        ok: ok2,
        detail: onLo
          ? `${d.vip}/${onLo.prefixlen} on lo${elsewhere.length ? `, also on ${elsewhere.map((a) => a.ifname).join(', ')}` : ''}`
          : `${d.vip} is not on lo${elsewhere.length ? ` (it is on ${elsewhere.map((a) => a.ifname).join(', ')})` : ''}`,
        fix: ok2
          ? undefined
          : `${onLo && onLo.prefixlen !== 32 ? `ip addr del ${d.vip}/${onLo.prefixlen} dev lo; ` : ''}${elsewhere.map((a) => `ip addr del ${d.vip}/${a.prefixlen} dev ${a.ifname}; `).join('')}ip addr add ${d.vip}/32 dev lo (a DR real server accepts the VIP on lo, as a /32, without announcing it)`,
      });
      const viaDir = h.defaultVia !== null && dirIps.has(h.defaultVia);
      out.push({
        check: 'gateway',
        host: rs.name,
        ok: !viaDir,
        detail: h.defaultVia
          ? `default via ${h.defaultVia}${viaDir ? ' (a director)' : ''}`
          : 'no default route (clients are on the segment)',
        fix: viaDir
          ? `ip route replace default via <the segment's router> (in DR the reply goes straight to the client; through the director it would be dropped or looped)`
          : undefined,
      });
    } else {
      const viaDir = h.defaultVia !== null && dirIps.has(h.defaultVia);
      out.push({
        check: 'gateway',
        host: rs.name,
        ok: viaDir,
        detail: h.defaultVia ? `default via ${h.defaultVia}` : 'no default route',
        fix: viaDir
          ? undefined
          : `ip route replace default via ${d.directors[0]?.ip ?? '<director>'} (NAT replies must pass the director to be rewritten)`,
      });
    }
  }

  const dirs = d.directors.filter((x) => d.hosts[x.name]);
  if (!d.only || dirs.some((x) => want(x.name))) {
    const holders = dirs.filter((x) => d.hosts[x.name].addrs.some((a) => a.local === d.vip && a.ifname !== 'lo'));
    out.push({
      check: 'vip-holder',
      ok: holders.length === 1,
      detail: holders.length ? `${d.vip} on ${holders.map((x) => x.name).join(', ')}` : `${d.vip} on no director`,
      fix:
        holders.length === 1
          ? undefined
          : holders.length
            ? "two directors hold the VIP (split brain): check that they hear each other's VRRP adverts"
            : 'start VRRP on the directors (or add the VIP to the master director)',
    });
  }
  if (d.adverts && (!d.only || dirs.some((x) => want(x.name)))) {
    const same = d.adverts.filter((a) => a.vrid === d.vrrp.vrid);
    const sources = [...new Set(same.map((a) => a.src))];
    const strangers = sources.filter((s) => !dirIps.has(s));
    const ours = sources.filter((s) => dirIps.has(s) && same.some((a) => a.src === s && a.priority > 0));
    let ok = true;
    let detail = `${same.length} advert(s) for virtual_router_id ${d.vrrp.vrid} from ${sources.join(', ') || 'nobody'}`;
    let fix: string | undefined;
    if (strangers.length) {
      ok = false;
      detail += `; ${strangers.join(', ')} is not one of this cluster's directors`;
      fix = `another VRRP router on this segment uses virtual_router_id ${d.vrrp.vrid}: give one of the two clusters a different virtual_router_id (source article 002: same id on one segment broke the old cluster)`;
    } else if (ours.length > 1) {
      ok = false;
      detail += '; more than one master';
      fix =
        'two masters: the directors do not hear each other (check the segment, authentication and that VRRP (protocol 112) is not filtered)';
    } else if (d.vrrp.expected && same.length === 0) {
      ok = false;
      fix = 'no master: start the VRRP runner on the directors';
    }
    out.push({ check: 'vrrp', ok, detail, fix });
  }

  for (const dir of dirs) {
    if (!want(dir.name)) continue;
    const h = d.hosts[dir.name];
    const missingMarks = d.marks.filter(
      (m) =>
        !h.mangle.some(
          (l) =>
            l.startsWith(`-A ${d.markChain} `) &&
            l.includes(`-d ${d.vip}/32`) &&
            l.includes(`--dport ${m.port} `) &&
            new RegExp(`--set-x?mark ${hex(m.mark)}(/0xffffffff)?(\\s|$)`).test(l),
        ),
    );
    const jump = h.mangle.some((l) => l === `-A PREROUTING -j ${d.markChain}`);
    const queued = d.marks.filter(
      (m) => !h.mangle.some((l) => l.includes(`--mark ${hex(m.mark)} `) && l.includes('NFQUEUE')),
    );
    const okM = missingMarks.length === 0 && jump && queued.length === 0;
    out.push({
      check: 'fwmark',
      host: dir.name,
      ok: okM,
      detail: okM
        ? `${d.marks.map((m) => `:${m.port} → ${hex(m.mark)}`).join(', ')} marked and queued`
        : [
            missingMarks.length
              ? `no mark rule for ${missingMarks.map((m) => `:${m.port} (${hex(m.mark)})`).join(', ')}`
              : '',
            jump ? '' : `PREROUTING does not jump to ${d.markChain}`,
            queued.length ? `the director queues no ${queued.map((m) => hex(m.mark)).join(', ')}` : '',
          ]
            .filter(Boolean)
            .join('; '),
      fix: okM
        ? undefined
        : `a running director whose fwmark service MARK has match: [{ vip: ${d.vip}, port: PORT }] for each listener port (tierlb lab up generates it): the director installs the mark (-j MARK --set-mark MARK) and queue rules in ${d.markChain}`,
    });
    const ours = h.rules.filter(
      (r) => r.priority === MARK_PREF && Number(r.table) >= TABLE_BASE && Number(r.table) < TABLE_BASE + MAX_DEST_MARKS,
    );
    const routed = new Map<string, boolean>();
    for (const rs of d.realServers.filter((x) => x.method === 'route')) routed.set(rs.ip, false);
    for (const r of ours)
      for (const line of h.tables[String(r.table)] ?? []) {
        const m = /^default via (\S+)/.exec(line);
        if (m && routed.has(m[1])) routed.set(m[1], true);
      }
    const missing = [...routed].filter(([, v]) => !v).map(([ip]) => ip);
    const localMoved =
      h.rules.some((r) => r.table === 'local' && r.priority === LOCAL_PREF) &&
      !h.rules.some((r) => r.table === 'local' && r.priority === 0);
    const okP = missing.length === 0 && localMoved;
    out.push({
      check: 'policy',
      host: dir.name,
      ok: okP,
      detail: okP
        ? `${ours.length} fwmark rule(s) (pref ${MARK_PREF}) routing to ${[...routed.keys()].join(', ')}; lookup local at pref ${LOCAL_PREF}`
        : [
            missing.length
              ? `no policy rule + route to ${missing.map((ip) => `${d.realServers.find((x) => x.ip === ip)?.name ?? ''} ${ip}`.trim()).join(', ')}`
              : '',
            localMoved ? '' : `lookup local is not moved below the mark rules (pref ${LOCAL_PREF})`,
          ]
            .filter(Boolean)
            .join('; '),
      fix: okP
        ? undefined
        : `restart the director on ${dir.name} (it installs: ip rule add pref ${MARK_PREF} fwmark MARK lookup TABLE; ip route add default via RIP dev IF onlink table TABLE; lookup local at pref ${LOCAL_PREF})`,
    });
  }

  for (const rs of d.realServers) {
    if (!want(rs.name)) continue;
    const h = d.hosts[rs.name];
    if (h?.role !== 'lb') continue;
    const missing = d.listenerPorts.filter(
      (p) => !h.listening.includes(`${d.vip}:${p}`) && !h.listening.includes(`0.0.0.0:${p}`),
    );
    out.push({
      check: 'listeners',
      host: rs.name,
      ok: missing.length === 0,
      detail: missing.length
        ? `nothing listens on ${missing.map((p) => `${d.vip}:${p}`).join(', ')}`
        : `listening on ${d.listenerPorts.map((p) => `${d.vip}:${p}`).join(', ')}`,
      fix: missing.length
        ? `start the listeners on ${rs.name} (tierlb listeners --config FILE) and read their log`
        : undefined,
    });
  }
  return out;
}

export function formatFindings(fs: Finding[]): string {
  const lines: string[] = [];
  for (const f of fs) {
    lines.push(`${f.ok ? 'PASS' : 'FAIL'}  ${f.check.padEnd(10)} ${(f.host ?? '').padEnd(8)} ${f.detail}`);
    if (!f.ok && f.fix) lines.push(`      fix: ${f.fix}`);
  }
  const bad = fs.filter((f) => !f.ok).length;
  lines.push(bad ? `${bad} of ${fs.length} checks failed` : `all ${fs.length} checks passed`);
  return lines.join('\n');
}

/** Parse `sysctl`-style "key = value" lines (net.ipv4.conf.X.Y = N) into { 'X.Y': N }. */
export function parseSysctl(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const l of text.split('\n')) {
    const m = /^net\.ipv4\.conf\.([^.]+)\.(\S+)\s*=\s*(-?\d+)/.exec(l.trim());
    if (m) out[`${m[1]}.${m[2]}`] = Number(m[3]);
  }
  return out;
}

/** `ss -Hltn` → local address:port of each listening socket. */
export function parseSs(text: string): string[] {
  const out: string[] = [];
  for (const l of text.split('\n')) {
    const cols = l.trim().split(/\s+/);
    if (cols.length >= 4) out.push(cols[3].replace(/^\*:/, '0.0.0.0:'));
  }
  return out;
}
