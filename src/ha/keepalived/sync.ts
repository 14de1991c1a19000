/**
 * keepalived.conf's IPVS sync daemon: global_defs `lvs_sync_daemon` and a vrrp_instance's deprecated
 * `lvs_sync_daemon_interface`, read as keepalived reads them (global_parser.c lvs_syncd_handler, vrrp_parser.c
 * vrrp_lvs_syncd_handler), and the daemon once the instances are known (vrrp.c vrrp_complete_init).
 */
import { canonicalAddr, familyOf, ipv4ToInt, ipv6ToBytes } from '../../common/addr.js';
import type { VrrpInstanceConfig } from '../vrrp/types.js';
import type { Ctx } from './ctx.js';
import type { Statement, Where } from './parse.js';

/**
 * global_defs `lvs_sync_daemon` (or a vrrp_instance's deprecated `lvs_sync_daemon_interface`): the IPVS sync daemon
 * on `interface`, master while `instance` is MASTER and backup otherwise. maxLen, group, port and ttl are the
 * director YAML's sync.{maxlen, group, port, ttl} (--sync-maxlen, --mcast-group, --mcast-port, --mcast-ttl), present
 * only where the file gives them: the daemon's defaults apply to the others.
 */
export interface LvsSyncDaemon {
  interface: string;
  instance: string;
  /** `id`; default: the instance's virtual_router_id (0 with lvs_sync_daemon_interface), as keepalived */
  syncid: number;
  /** `maxlen` 1..65507 */
  maxLen?: number;
  /** `group`: an IPv4 multicast address (keepalived also takes IPv6; tierlb's daemon speaks IPv4 only) */
  group?: string;
  /** `port` 1..65535 */
  port?: number;
  /** `ttl` 1..255 */
  ttl?: number;
}

/** A sync daemon as the file declares it, before its instance is looked up. */
export interface SyncDecl {
  daemon: Omit<LvsSyncDaemon, 'instance' | 'syncid'> & { instance?: string; syncid?: number };
  where: Where;
  /** the keyword that declared it */
  keyword: 'lvs_sync_daemon' | 'lvs_sync_daemon_interface';
  /** index of the top-level block it is in: keepalived keeps the first declaration in the file */
  order: number;
}

/** IP_VS_IFNAME_MAXLEN: an interface name and its NUL */
const IFNAME_MAXLEN = 16;

/** lvs_sync_daemon's numeric options: their ranges as keepalived's global_parser.c checks them. */
const SYNC_NUMS = {
  id: { key: 'syncid', min: 0, max: 255 },
  maxlen: { key: 'maxLen', min: 1, max: 65535 - 20 - 8 },
  port: { key: 'port', min: 1, max: 65535 },
  ttl: { key: 'ttl', min: 1, max: 255 },
} as const;

/**
 * keepalived's read_unsigned: decimal digits (leading blanks and a '+' allowed, as strtoul takes them), nothing after
 * them, within min..max. An error names the option otherwise.
 */
function syncNum(c: Ctx, s: Statement, what: string, v: string, min: number, max: number): number | undefined {
  const m = /^[ \t\n\v\f\r]*\+?(\d+)$/.exec(v);
  const n = m ? Number(m[1]) : Number.NaN;
  if (n >= min && n <= max) return n;
  c.error(s, `'lvs_sync_daemon ${what}' wants an integer in ${min}..${max}, got '${v}'`);
  return undefined;
}

/**
 * keepalived's inet_stosockaddr and multicast check: IPv6 when the value holds a ':', anything from a '-' (else a
 * '/') on dropped, then inet_pton; the address must be multicast. An IPv6 group is warned about and ignored.
 */
function syncGroupAddr(c: Ctx, s: Statement, v: string): string | undefined {
  const cut = v.includes('-') ? v.indexOf('-') : v.indexOf('/');
  const a = cut < 0 ? v : v.slice(0, cut);
  if (v.includes(':')) {
    if (familyOf(a) !== 6 || a.includes('%')) c.error(s, `lvs_sync_daemon group '${v}' is not an IP address`);
    else if (ipv6ToBytes(a)[0] !== 0xff) c.error(s, `lvs_sync_daemon group '${v}' is not a multicast address`);
    else
      c.warn(
        s,
        `lvs_sync_daemon group ${v}: an IPv6 sync group is not supported by tierlb (IPv4 only), ignored: the daemon uses the default group 224.0.0.81`,
      );
    return undefined;
  }
  if (familyOf(a) !== 4) c.error(s, `lvs_sync_daemon group '${v}' is not an IP address`);
  else if (ipv4ToInt(a) >>> 28 !== 0xe) c.error(s, `lvs_sync_daemon group '${v}' is not a multicast address`);
  else return canonicalAddr(a);
  return undefined;
}

/**
 * `lvs_sync_daemon <INTERFACE> [[inst] <VRRP_INSTANCE>] [id <SYNC_ID>] [maxlen <LEN>] [port <PORT>] [ttl <TTL>]
 * [group <IP ADDR>]`, read as keepalived's lvs_syncd_handler reads it: the options in any order (a later one wins),
 * the instance also without `inst` right after the interface, and the sync id also without `id` right after that
 * (warned). A bad value is an error naming the option; an unknown word is warned about and skipped.
 */
export function lvsSyncDaemon(c: Ctx, x: Statement): SyncDecl['daemon'] | undefined {
  const a = x.args;
  const ifc = a[0];
  if (ifc === undefined) {
    c.error(x, "'lvs_sync_daemon' needs an interface");
    return undefined;
  }
  if (Buffer.byteLength(ifc) >= IFNAME_MAXLEN) {
    c.error(x, `lvs_sync_daemon interface name '${ifc}' is too long (at most ${IFNAME_MAXLEN - 1} bytes)`);
    return undefined;
  }
  const d: SyncDecl['daemon'] = { interface: ifc };
  for (let i = 1; i < a.length; i++) {
    const k = a[i];
    const num = Object.hasOwn(SYNC_NUMS, k) ? SYNC_NUMS[k as keyof typeof SYNC_NUMS] : undefined;
    if (num || k === 'group' || k === 'inst') {
      const v = a[i + 1];
      if (v === undefined) {
        c.error(x, `'lvs_sync_daemon ${k}' needs a value`);
        continue;
      }
      i++;
      if (num) {
        const n = syncNum(c, x, k, v, num.min, num.max);
        if (n !== undefined) d[num.key] = n;
      } else if (k === 'group') {
        const g = syncGroupAddr(c, x, v);
        if (g !== undefined) d.group = g;
      } else if (d.instance !== undefined)
        c.warn(x, `lvs_sync_daemon 'inst ${v}': the instance is already ${d.instance}, ignored`);
      else d.instance = v;
    } else if (i === 1) d.instance = k;
    else if (i === 2) {
      // keepalived before 1.2.20: lvs_sync_daemon IF INSTANCE SYNC_ID
      const n = syncNum(c, x, 'id', k, 0, 255);
      if (n !== undefined) {
        d.syncid = n;
        c.warn(x, `lvs_sync_daemon: write 'id ${k}' for the sync id (a bare sync id is the old syntax)`);
      }
    } else c.warn(x, `lvs_sync_daemon option '${k}' is unknown to tierlb, ignored`);
  }
  if (d.instance === undefined) {
    c.error(
      x,
      'lvs_sync_daemon without a VRRP instance (keepalived then runs the master and the backup daemon at once) is not supported by tierlb: name the instance the daemon follows',
    );
    return undefined;
  }
  return d;
}

/** Where the file declares its sync daemon (the first declaration wins, see syncInterface). */
export interface SyncSlot {
  lvsSync?: SyncDecl;
}

/**
 * A vrrp_instance's `lvs_sync_daemon_interface IF` (deprecated since keepalived 1.2.20, still read by keepalived 2):
 * the sync daemon on IF follows this instance, sync id 0 and the daemon's defaults. Whichever of it and global_defs
 * lvs_sync_daemon comes first in the file wins, as in keepalived; the other is warned about.
 */
export function syncInterface(c: Ctx, g: SyncSlot, x: Statement, instance: string, order: number): void {
  const ifc = c.arg(x);
  if (ifc === undefined) return;
  const prev = g.lvsSync;
  if (prev && (prev.keyword === 'lvs_sync_daemon_interface' || prev.order < order)) {
    c.warn(x, `the sync daemon is already given at ${prev.where.file}:${prev.where.line}: ignored`);
    return;
  }
  if (prev) c.warn(prev.where, `the sync daemon is already given at ${x.file}:${x.line}: ignored`);
  c.warn(
    x,
    `'lvs_sync_daemon_interface' in vrrp_instance ${instance} is deprecated: write 'lvs_sync_daemon ${ifc} ${instance}' in global_defs`,
  );
  g.lvsSync = {
    daemon: { interface: ifc, instance, syncid: 0 },
    where: x,
    keyword: 'lvs_sync_daemon_interface',
    order,
  };
}

/**
 * The sync daemon once the instances are known (keepalived's vrrp_complete_init): its instance must exist; without
 * `id` its sync id is the instance's virtual_router_id.
 */
export function syncOfInstance(
  c: Ctx,
  decl: SyncDecl,
  instances: VrrpInstanceConfig[],
  names: ReadonlySet<string>,
): LvsSyncDaemon | undefined {
  const { instance, syncid, ...rest } = decl.daemon;
  if (instance === undefined) return undefined;
  const inst = instances.find((i) => i.name === instance);
  if (!inst) {
    // an instance that failed to load has its own errors
    if (!names.has(instance)) c.error(decl.where, `${decl.keyword}: vrrp_instance ${instance} is not defined`);
    return undefined;
  }
  return { ...rest, instance, syncid: syncid ?? inst.virtualRouterId };
}
