/**
 * keepalived.conf → tierlb's in-memory configuration: the VRRP part as a VrrpConfig (src/ha/vrrp/types.ts) and the
 * director part as `{ spec: ServiceSpec; dests: DestSpec[] }` per virtual service (src/l4/services.ts) with the
 * health-check configuration beside it (src/ha/checks-types.ts). Every keyword tierlb does not support is warned
 * about with its file and line; bad values and missing mandatory keywords are errors with file and line.
 */
import { canonicalAddr, type Family, familyOf, ipv4ToInt, ipv6ToBytes } from '../../common/addr.js';
import { type FwdMethod, MAX_WEIGHT } from '../../l4/dest.js';
import { DEFAULT_SCHEDULER } from '../../l4/schedulers/index.js';
import { type ServiceId, SVC_F_ONEPACKET, SVC_F_SCHED1, SVC_F_SCHED2, SVC_F_SCHED3 } from '../../l4/service.js';
import type { DestSpec, ServiceSpec } from '../../l4/services.js';
import type {
  CheckCommon,
  HttpGetCheck,
  HttpUrlCheck,
  MiscCheck,
  RealServerCheck,
  RealServerHealth,
  TcpCheck,
  VirtualServerHealth,
} from '../checks-types.js';
import { checkVrrpConfig, familyMismatch } from '../vrrp/config.js';
import {
  instanceDefaults,
  isLinkLocal6,
  scriptDefaults,
  type VirtualAddress,
  type VrrpConfig,
  type VrrpInstanceConfig,
  type VrrpNotify,
  type VrrpScriptConfig,
  type VrrpSyncGroup,
} from '../vrrp/types.js';
import {
  type ConfFs,
  type Diagnostic,
  KeepalivedSyntaxError,
  parseConfFile,
  realFs,
  type Statement,
  type Where,
} from './parse.js';

/** The kernel's schedulers, as lb_algo / lvs_sched name them. */
export const LB_ALGOS = [
  'rr',
  'wrr',
  'lc',
  'wlc',
  'lblc',
  'lblcr',
  'dh',
  'sh',
  'sed',
  'nq',
  'fo',
  'ovf',
  'mh',
  'twos',
] as const;

const LB_KINDS: Record<string, FwdMethod> = { DR: 'route', NAT: 'masq', TUN: 'tunnel' };

export interface KeepalivedService {
  spec: ServiceSpec;
  dests: DestSpec[];
  health: VirtualServerHealth;
  /** the virtual_server_group it was expanded from */
  group?: string;
  where: Where;
}

export interface KeepalivedConfig {
  routerId?: string;
  /** global_defs lvs_sync_daemon */
  lvsSync?: LvsSyncDaemon;
  vrrp: VrrpConfig;
  services: KeepalivedService[];
}

export interface KeepalivedLoadResult {
  config: KeepalivedConfig;
  files: string[];
  errors: Diagnostic[];
  warnings: Diagnostic[];
}

type Handler = (s: Statement) => void;

class Ctx {
  readonly errors: Diagnostic[] = [];
  readonly warnings: Diagnostic[] = [];

  error(w: Where, message: string): void {
    this.errors.push({ file: w.file, line: w.line, message });
  }

  warn(w: Where, message: string): void {
    this.warnings.push({ file: w.file, line: w.line, message });
  }

  unsupported(s: Statement, inside: string, why = 'not supported by tierlb'): void {
    this.warn(s, `'${s.name}' in ${inside}: ${why}, ignored`);
  }

  /** Run the handler of each statement; anything without one is warned about, never dropped silently. */
  each(
    block: Statement[] | undefined,
    inside: string,
    handlers: Record<string, Handler>,
    notes: Record<string, string> = {},
  ) {
    for (const s of block ?? []) {
      const h = Object.hasOwn(handlers, s.name) ? handlers[s.name] : undefined;
      if (h) h(s);
      else this.unsupported(s, inside, notes[s.name]);
    }
  }

  arg(s: Statement, i = 0): string | undefined {
    const v = s.args[i];
    if (v === undefined) this.error(s, `'${s.name}' needs a value`);
    return v;
  }

  num(s: Statement, o: { min?: number; max?: number; int?: boolean; i?: number } = {}): number | undefined {
    const v = this.arg(s, o.i ?? 0);
    if (v === undefined) return undefined;
    const n = Number(v);
    const ok =
      v.trim() !== '' &&
      Number.isFinite(n) &&
      (!o.int || Number.isInteger(n)) &&
      (o.min === undefined || n >= o.min) &&
      (o.max === undefined || n <= o.max);
    if (!ok) {
      const range = o.min !== undefined || o.max !== undefined ? ` in ${o.min ?? '-∞'}..${o.max ?? '∞'}` : '';
      this.error(s, `'${s.name}' wants ${o.int ? 'an integer' : 'a number'}${range}, got '${v}'`);
      return undefined;
    }
    return n;
  }

  /** The rest of the line as one command line (a single quoted word stays as it is). */
  command(s: Statement): string | undefined {
    if (s.args.length === 0) {
      this.error(s, `'${s.name}' needs a command`);
      return undefined;
    }
    if (s.args.length === 1) return s.args[0];
    return s.args.map((a) => (/\s/.test(a) ? `"${a}"` : a)).join(' ');
  }

  noArgs(s: Statement): void {
    if (s.args.length > 0) this.warn(s, `'${s.name}' takes no value: '${s.args.join(' ')}' ignored`);
  }

  addr(s: Statement, v: string | undefined): string | undefined {
    if (v === undefined) return undefined;
    if (familyOf(v) === 0) {
      this.error(s, `'${v}' is not an IP address`);
      return undefined;
    }
    return canonicalAddr(v);
  }

  port(s: Statement, v: string | undefined): number | undefined {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0 || n > 65535) {
      this.error(s, `'${v}' is not a port`);
      return undefined;
    }
    return n;
  }
}

const NOTIFY_KEYS = ['notify_master', 'notify_backup', 'notify_fault', 'notify_stop', 'notify'] as const;

function notifyHandlers(c: Ctx, n: VrrpNotify): Record<string, Handler> {
  const key = {
    notify_master: 'master',
    notify_backup: 'backup',
    notify_fault: 'fault',
    notify_stop: 'stop',
    notify: 'notify',
  } as const;
  return Object.fromEntries(
    NOTIFY_KEYS.map((k) => [
      k,
      (s: Statement) => {
        const cmd = c.command(s);
        if (cmd) n[key[k]] = cmd;
      },
    ]),
  );
}

const EMAIL_NOTE = 'e-mail notification is not supported by tierlb (use notify scripts)';

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
interface SyncDecl {
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
function lvsSyncDaemon(c: Ctx, x: Statement): SyncDecl['daemon'] | undefined {
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

interface GlobalOut {
  routerId?: string;
  vrrpVersion?: 2 | 3;
  lvsSync?: SyncDecl;
}

function globalDefs(c: Ctx, s: Statement, out: GlobalOut, order: number): void {
  const notes: Record<string, string> = {
    notification_email: EMAIL_NOTE,
    notification_email_from: EMAIL_NOTE,
    smtp_server: EMAIL_NOTE,
    smtp_connect_timeout: EMAIL_NOTE,
    smtp_helo_name: EMAIL_NOTE,
    enable_script_security: 'scripts run as the tierlb user; script security is not supported',
    script_user: 'scripts run as the tierlb user; script_user is not supported',
    lvs_sync_daemon_interface: 'it belongs in a vrrp_instance (deprecated there: use lvs_sync_daemon)',
  };
  c.each(
    s.block,
    'global_defs',
    {
      router_id: (x) => {
        out.routerId = c.arg(x);
      },
      vrrp_version: (x) => {
        const v = c.num(x, { min: 2, max: 3, int: true });
        if (v !== undefined) out.vrrpVersion = v as 2 | 3;
      },
      // the sync daemon follows the instance (master while it is MASTER)
      lvs_sync_daemon: (x) => {
        const prev = out.lvsSync;
        if (prev) {
          c.warn(x, `the sync daemon is already given at ${prev.where.file}:${prev.where.line}: ignored`);
          return;
        }
        const daemon = lvsSyncDaemon(c, x);
        if (daemon) out.lvsSync = { daemon, where: x, keyword: 'lvs_sync_daemon', order };
      },
    },
    notes,
  );
}

function vrrpScript(c: Ctx, s: Statement): VrrpScriptConfig | undefined {
  const name = c.arg(s);
  const o: Partial<VrrpScriptConfig> = {};
  c.each(
    s.block,
    `vrrp_script ${name}`,
    {
      script: (x) => {
        o.script = c.command(x);
      },
      interval: (x) => {
        o.interval = c.num(x, { min: 0.001 });
      },
      timeout: (x) => {
        o.timeout = c.num(x, { min: 0.001 });
      },
      weight: (x) => {
        o.weight = c.num(x, { min: -253, max: 253, int: true });
        if (x.args[1] === 'reverse') c.warn(x, "'weight … reverse' is not supported by tierlb: reverse ignored");
      },
      rise: (x) => {
        o.rise = c.num(x, { min: 1, int: true });
      },
      fall: (x) => {
        o.fall = c.num(x, { min: 1, int: true });
      },
    },
    { user: 'scripts run as the tierlb user' },
  );
  if (!name) return undefined;
  if (!o.script) {
    c.error(s, `vrrp_script ${name} has no 'script'`);
    return undefined;
  }
  const clean = Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<VrrpScriptConfig>;
  return scriptDefaults({ ...clean, name, script: o.script });
}

/** `instanceFamily`: the family of the instance's first address so far (keepalived: it decides the instance's). */
function virtualAddress(c: Ctx, s: Statement, inst?: { name: string; family?: 4 | 6 }): VirtualAddress | undefined {
  const [a, len] = s.name.split('/');
  const fam = familyOf(a);
  if ((fam !== 4 && fam !== 6) || a.includes('%')) {
    c.error(s, `'${s.name}' is not an address`);
    return undefined;
  }
  if (inst) {
    // keepalived (vrrp_data.c alloc_vrrp_vip): the first address decides the family, one of the other family is a
    // configuration error ("- ignoring" there; tierlb refuses the file)
    inst.family ??= fam;
    if (fam !== inst.family) {
      c.error(s, familyMismatch(inst.name, s.name));
      return undefined;
    }
  }
  const max = fam === 6 ? 128 : 32;
  const prefixLen = len === undefined ? max : Number(len);
  if (!Number.isInteger(prefixLen) || prefixLen < 0 || prefixLen > max) {
    c.error(s, `bad prefix length in ${s.name}`);
    return undefined;
  }
  const v: VirtualAddress = { addr: a, prefixLen };
  for (let i = 0; i < s.args.length; i++) {
    const k = s.args[i];
    if (k === 'dev' || k === 'label') {
      const val = s.args[++i];
      if (val === undefined) c.error(s, `'${k}' needs a value`);
      else v[k] = val;
    } else if (['brd', 'broadcast', 'scope', 'preferred_lft', 'track_group'].includes(k)) {
      c.warn(s, `virtual address option '${k} ${s.args[i + 1] ?? ''}' is not supported by tierlb: ignored`);
      i++;
    } else c.warn(s, `virtual address option '${k}' is not supported by tierlb: ignored`);
  }
  return v;
}

function vrrpInstance(
  c: Ctx,
  s: Statement,
  defVersion: 2 | 3,
  onSyncInterface: (x: Statement, instance: string) => void,
): VrrpInstanceConfig | undefined {
  const name = c.arg(s);
  const inside = `vrrp_instance ${name}`;
  const o: Partial<VrrpInstanceConfig> = {};
  const vips: VirtualAddress[] = [];
  const peers: string[] = [];
  const tif: VrrpInstanceConfig['trackInterface'] = [];
  const tsc: VrrpInstanceConfig['trackScript'] = [];
  const notify: VrrpNotify = {};
  let authType: string | undefined;
  let authPass: string | undefined;
  let versionAt: Statement | undefined;
  const fam: { name: string; family?: 4 | 6 } = { name: name ?? '' };
  const weightOf = (x: Statement): number | undefined => {
    if (x.args.length === 0) return undefined;
    if (x.args[0] !== 'weight' || x.args.length !== 2) {
      c.warn(x, `'${x.args.join(' ')}' after ${x.name} is not supported by tierlb: ignored`);
      return undefined;
    }
    return c.num({ ...x, name: 'weight', args: [x.args[1]] }, { min: -253, max: 253, int: true });
  };
  c.each(
    s.block,
    inside,
    {
      state: (x) => {
        const v = c.arg(x);
        if (v === 'MASTER' || v === 'BACKUP') o.state = v;
        else if (v) c.error(x, `state must be MASTER or BACKUP, got '${v}'`);
      },
      interface: (x) => {
        o.interface = c.arg(x);
      },
      virtual_router_id: (x) => {
        o.virtualRouterId = c.num(x, { min: 1, max: 255, int: true });
      },
      priority: (x) => {
        o.priority = c.num(x, { min: 1, max: 255, int: true });
      },
      advert_int: (x) => {
        o.advertInt = c.num(x, { min: 0.01, max: 255 });
      },
      version: (x) => {
        o.version = c.num(x, { min: 2, max: 3, int: true }) as 2 | 3 | undefined;
        versionAt = x;
      },
      nopreempt: (x) => {
        c.noArgs(x);
        o.nopreempt = true;
      },
      preempt: (x) => {
        c.noArgs(x);
        o.nopreempt = false;
      },
      preempt_delay: (x) => {
        o.preemptDelay = c.num(x, { min: 0, max: 1000 });
      },
      garp_master_delay: (x) => {
        o.garpMasterDelay = c.num(x, { min: 0 });
      },
      garp_master_repeat: (x) => {
        o.garpMasterRepeat = c.num(x, { min: 1, max: 100, int: true });
      },
      unicast_src_ip: (x) => {
        o.unicastSrcIp = c.addr(x, c.arg(x));
      },
      mcast_src_ip: (x) => {
        o.unicastSrcIp = c.addr(x, c.arg(x));
      },
      authentication: (x) =>
        c.each(x.block, `${inside} authentication`, {
          auth_type: (y) => {
            authType = c.arg(y);
            if (authType === 'AH') c.warn(y, 'auth_type AH is not supported by tierlb: no authentication used');
            else if (authType && authType !== 'PASS') c.error(y, `auth_type must be PASS or AH, got '${authType}'`);
          },
          auth_pass: (y) => {
            authPass = c.arg(y);
            if (authPass && Buffer.byteLength(authPass) > 8) {
              c.warn(y, 'auth_pass is longer than 8 characters: truncated to 8 as keepalived does');
              authPass = Buffer.from(authPass).subarray(0, 8).toString();
            }
          },
        }),
      virtual_ipaddress: (x) => {
        for (const y of x.block ?? []) {
          const v = virtualAddress(c, y, fam);
          if (v) vips.push(v);
        }
      },
      unicast_peer: (x) => {
        for (const y of x.block ?? []) {
          const a = c.addr(y, y.name);
          if (a) peers.push(a);
          if (y.args.length)
            c.warn(y, `unicast_peer options '${y.args.join(' ')}' are not supported by tierlb: ignored`);
        }
      },
      track_interface: (x) => {
        for (const y of x.block ?? []) tif.push({ name: y.name, weight: weightOf(y) ?? 0 });
      },
      track_script: (x) => {
        for (const y of x.block ?? []) {
          const w = weightOf(y);
          tsc.push(w === undefined ? { name: y.name } : { name: y.name, weight: w });
        }
      },
      lvs_sync_daemon_interface: (x) => {
        if (name) onSyncInterface(x, name);
      },
      ...notifyHandlers(c, notify),
    },
    {
      smtp_alert: EMAIL_NOTE,
      virtual_ipaddress_excluded: 'addresses outside the advertisement are not supported by tierlb',
      use_vmac: 'VMAC interfaces are not supported by tierlb',
    },
  );
  if (!name) return undefined;
  if (!o.interface) c.error(s, `${inside} has no 'interface'`);
  if (o.virtualRouterId === undefined) c.error(s, `${inside} has no 'virtual_router_id'`);
  if (!o.interface || o.virtualRouterId === undefined) return undefined;
  const six = fam.family === 6;
  if (six && o.version === 2 && versionAt) {
    // keepalived: "vrrp_version 2 conflicts with configured or deduced version" (ignored there, VRRPv3 used)
    c.error(versionAt, `(${name}) VRRPv2 is IPv4 only: an IPv6 instance needs version 3`);
    o.version = 3;
  }
  if (six && o.unicastSrcIp === undefined && peers.length === 0 && !isLinkLocal6(vips[0].addr))
    c.warn(s, `(${name}) the first IPv6 VIP address should be link local`);
  const clean = Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<VrrpInstanceConfig>;
  const cfg = instanceDefaults({
    // keepalived: an IPv6 instance is VRRPv3 whatever global_defs' vrrp_version says
    version: six ? 3 : defVersion,
    ...clean,
    name,
    interface: o.interface,
    virtualRouterId: o.virtualRouterId,
    virtualIpaddress: vips,
    unicastPeer: peers,
    trackInterface: tif,
    trackScript: tsc,
    notify,
  });
  if (authType === 'PASS') {
    if (cfg.version === 3) c.warn(s, `${inside}: authentication is not part of VRRPv3: ignored`);
    else if (!authPass) c.error(s, `${inside}: auth_type PASS without auth_pass`);
    else cfg.authPass = authPass;
  }
  return cfg;
}

function syncGroup(c: Ctx, s: Statement): VrrpSyncGroup | undefined {
  const name = c.arg(s);
  const g: VrrpSyncGroup = { name: name ?? '', group: [], notify: {} };
  c.each(
    s.block,
    `vrrp_sync_group ${name}`,
    {
      group: (x) => {
        for (const y of x.block ?? []) g.group.push(y.name, ...y.args);
      },
      ...notifyHandlers(c, g.notify),
    },
    { smtp_alert: EMAIL_NOTE },
  );
  return name ? g : undefined;
}

// ---- virtual servers -------------------------------------------------------------------------------------------

type GroupMember = { kind: 'ip'; addr: string; port: number } | { kind: 'fwm'; fwmark: number };

function vsGroup(c: Ctx, s: Statement): GroupMember[] {
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

function checkCommonHandlers(c: Ctx, o: Partial<CheckCommon>): Record<string, Handler> {
  const t = (k: keyof CheckCommon, opts: Parameters<Ctx['num']>[1]) => (x: Statement) => {
    const v = c.num(x, opts);
    if (v !== undefined) (o as Record<string, unknown>)[k] = v;
  };
  return {
    connect_ip: (x) => {
      o.connectIp = c.addr(x, c.arg(x));
    },
    connect_port: (x) => {
      o.connectPort = c.port(x, c.arg(x));
    },
    bindto: (x) => {
      o.bindTo = c.addr(x, c.arg(x));
    },
    bind_port: (x) => {
      o.bindPort = c.port(x, c.arg(x));
    },
    connect_timeout: t('connectTimeout', { min: 0.001 }),
    retry: t('retry', { min: 0, int: true }),
    nb_get_retry: t('retry', { min: 0, int: true }),
    delay_before_retry: t('delayBeforeRetry', { min: 0 }),
    delay_loop: t('delayLoop', { min: 0.001 }),
    warmup: t('warmup', { min: 0 }),
  };
}

function commonDefaults(o: Partial<CheckCommon>): CheckCommon {
  const clean = Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<CheckCommon>;
  return { connectTimeout: 5, retry: 1, delayBeforeRetry: 1, ...clean };
}

/** status_code 200 | 200-299 | several of them */
function statusCodes(c: Ctx, x: Statement): number[] {
  const out: number[] = [];
  for (const a of x.args) {
    const m = /^(\d{3})(?:-(\d{3}))?$/.exec(a);
    if (!m) {
      c.error(x, `bad status_code '${a}'`);
      continue;
    }
    const lo = Number(m[1]);
    const hi = m[2] ? Number(m[2]) : lo;
    for (let i = lo; i <= hi; i++) out.push(i);
  }
  if (x.args.length === 0) c.error(x, "'status_code' needs a value");
  return out;
}

function httpCheck(c: Ctx, s: Statement, tls: boolean): HttpGetCheck {
  const o: Partial<CheckCommon> = {};
  const urls: HttpUrlCheck[] = [];
  let virtualhost: string | undefined;
  c.each(s.block, s.name, {
    ...checkCommonHandlers(c, o),
    virtualhost: (x) => {
      virtualhost = c.arg(x);
    },
    url: (x) => {
      const u: Partial<HttpUrlCheck> = {};
      c.each(
        x.block,
        `${s.name} url`,
        {
          path: (y) => {
            u.path = c.arg(y);
          },
          status_code: (y) => {
            u.statusCodes = [...(u.statusCodes ?? []), ...statusCodes(c, y)];
          },
          digest: (y) => {
            const d = c.arg(y);
            if (d && !/^[0-9a-fA-F]{32}$/.test(d)) c.error(y, `digest must be 32 hex digits (genhash), got '${d}'`);
            else if (d) u.digest = d.toLowerCase();
          },
        },
        { regex: 'regex matching is not supported by tierlb' },
      );
      if (!u.path) c.error(x, 'url without path');
      else {
        const statuses = u.statusCodes ?? Array.from({ length: 100 }, (_, i) => 200 + i);
        urls.push({ path: u.path, statusCodes: statuses, ...(u.digest ? { digest: u.digest } : {}) });
      }
    },
  });
  if (urls.length === 0) c.error(s, `${s.name} without any url`);
  return { type: 'http', tls, urls, ...commonDefaults(o), ...(virtualhost ? { virtualhost } : {}) };
}

function miscCheck(c: Ctx, s: Statement): MiscCheck | undefined {
  const m: Partial<MiscCheck> = {};
  c.each(s.block, 'MISC_CHECK', {
    misc_path: (x) => {
      m.path = c.command(x);
    },
    misc_timeout: (x) => {
      m.timeout = c.num(x, { min: 0.001 });
    },
    misc_dynamic: (x) => {
      c.noArgs(x);
      m.dynamic = true;
    },
    user: (x) => {
      m.user = c.arg(x);
      c.warn(x, "MISC_CHECK 'user': checks run as the tierlb user");
    },
    delay_loop: (x) => {
      m.delayLoop = c.num(x, { min: 0.001 });
    },
    warmup: (x) => {
      m.warmup = c.num(x, { min: 0 });
    },
  });
  if (!m.path) {
    c.error(s, 'MISC_CHECK without misc_path');
    return undefined;
  }
  const clean = Object.fromEntries(Object.entries(m).filter(([, v]) => v !== undefined)) as Partial<MiscCheck>;
  return { dynamic: false, ...clean, type: 'misc', path: m.path };
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
  const unsupportedCheck = 'this checker is not supported by tierlb';
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
      TCP_CHECK: (x) => {
        const o: Partial<CheckCommon> = {};
        c.each(x.block, 'TCP_CHECK', checkCommonHandlers(c, o));
        addCheck({ type: 'tcp', ...commonDefaults(o) } satisfies TcpCheck);
      },
      HTTP_GET: (x) => addCheck(httpCheck(c, x, false)),
      SSL_GET: (x) => addCheck(httpCheck(c, x, true)),
      MISC_CHECK: (x) => addCheck(miscCheck(c, x)),
    },
    {
      SMTP_CHECK: unsupportedCheck,
      DNS_CHECK: unsupportedCheck,
      BFD_CHECK: unsupportedCheck,
      UDP_CHECK: unsupportedCheck,
      PING_CHECK: unsupportedCheck,
      FILE_CHECK: unsupportedCheck,
      smtp_alert: EMAIL_NOTE,
    },
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

function virtualServer(c: Ctx, s: Statement, groups: Map<string, GroupMember[]>): KeepalivedService[] {
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
    if ((LB_ALGOS as readonly string[]).includes(v)) sched = v;
    else c.error(x, `${x.name} '${v}' is not a scheduler (${LB_ALGOS.join(', ')})`);
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

// ---- the whole file ----------------------------------------------------------------------------------------------

/**
 * A vrrp_instance's `lvs_sync_daemon_interface IF` (deprecated since keepalived 1.2.20, still read by keepalived 2):
 * the sync daemon on IF follows this instance, sync id 0 and the daemon's defaults. Whichever of it and global_defs
 * lvs_sync_daemon comes first in the file wins, as in keepalived; the other is warned about.
 */
function syncInterface(c: Ctx, g: GlobalOut, x: Statement, instance: string, order: number): void {
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
function syncOfInstance(
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

/** Interpret parsed statements. */
export function interpret(statements: Statement[]): {
  config: KeepalivedConfig;
  errors: Diagnostic[];
  warnings: Diagnostic[];
} {
  const c = new Ctx();
  const g: GlobalOut = {};
  // global_defs first: vrrp_version sets the default for every instance
  statements.forEach((s, i) => {
    if (s.name === 'global_defs') globalDefs(c, s, g, i);
  });
  const vrrpInstanceNames = new Set<string>();
  const scripts: VrrpScriptConfig[] = [];
  const instances: VrrpInstanceConfig[] = [];
  const instWhere = new Map<string, Where>();
  const syncGroups: VrrpSyncGroup[] = [];
  const groups = new Map<string, GroupMember[]>();
  const services: KeepalivedService[] = [];
  const vrrpScriptNames = new Set<string>();
  c.each(
    statements,
    'the top level',
    {
      global_defs: () => {},
      vrrp_script: (s) => {
        const v = vrrpScript(c, s);
        if (!v) return;
        if (vrrpScriptNames.has(v.name)) c.error(s, `vrrp_script ${v.name} defined twice`);
        vrrpScriptNames.add(v.name);
        scripts.push(v);
      },
      vrrp_instance: (s) => {
        if (s.args[0] !== undefined) vrrpInstanceNames.add(s.args[0]);
        const v = vrrpInstance(c, s, g.vrrpVersion ?? 2, (x, instance) =>
          syncInterface(c, g, x, instance, statements.indexOf(s)),
        );
        if (v) {
          instances.push(v);
          if (!instWhere.has(v.name)) instWhere.set(v.name, s);
        }
      },
      vrrp_sync_group: (s) => {
        const v = syncGroup(c, s);
        if (v) syncGroups.push(v);
      },
      virtual_server_group: (s) => {
        const name = c.arg(s);
        if (name) groups.set(name, vsGroup(c, s));
      },
      virtual_server: (s) => {
        services.push(...virtualServer(c, s, groups));
      },
    },
    {
      static_ipaddress: 'static addresses are not managed by tierlb',
      static_routes: 'static routes are not managed by tierlb',
      static_rules: 'static rules are not managed by tierlb',
      linkbeat_use_polling: 'interfaces are polled anyway',
    },
  );
  const vrrp: VrrpConfig = { instances, scripts, syncGroups };
  for (const p of checkVrrpConfig(vrrp)) {
    const m = /^vrrp instance (\S+):/.exec(p);
    const w = (m && instWhere.get(m[1])) || statements[0] || { file: '?', line: 0 };
    c.error(w, p);
  }
  const lvsSync = g.lvsSync && syncOfInstance(c, g.lvsSync, instances, vrrpInstanceNames);
  const keys = new Set<string>();
  for (const svc of services) {
    const id = svc.spec.id;
    const k = id.kind === 'fwm' ? `fwm ${id.fwmark}/${id.family}` : `${id.kind} ${id.addr} ${id.port}`;
    if (keys.has(k)) c.error(svc.where, `virtual service ${k} is defined twice`);
    keys.add(k);
  }
  return {
    config: {
      ...(g.routerId ? { routerId: g.routerId } : {}),
      ...(lvsSync ? { lvsSync } : {}),
      vrrp,
      services,
    },
    errors: c.errors,
    warnings: c.warnings,
  };
}

/** Read a keepalived.conf with its includes; returns the configuration and every error and warning. */
export function loadKeepalivedConf(path: string, fs: ConfFs = realFs): KeepalivedLoadResult {
  const p = parseConfFile(path, fs);
  const r = interpret(p.statements);
  return {
    config: r.config,
    files: p.files,
    errors: [...p.errors, ...r.errors],
    warnings: [...p.warnings, ...r.warnings],
  };
}

/** Like loadKeepalivedConf, but throws a KeepalivedSyntaxError listing every error. */
export function readKeepalivedConf(path: string, fs: ConfFs = realFs): KeepalivedLoadResult {
  const r = loadKeepalivedConf(path, fs);
  if (r.errors.length > 0) throw new KeepalivedSyntaxError(r.errors);
  return r;
}
