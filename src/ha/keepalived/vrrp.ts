/** keepalived.conf's VRRP sections: `vrrp_script`, `vrrp_instance` (with its virtual addresses) and `vrrp_sync_group`. */
import { familyOf } from '../../common/addr.js';
import { familyMismatch } from '../vrrp/config.js';
import {
  instanceDefaults,
  isLinkLocal6,
  scriptDefaults,
  type VirtualAddress,
  type VrrpInstanceConfig,
  type VrrpNotify,
  type VrrpScriptConfig,
  type VrrpSyncGroup,
} from '../vrrp/types.js';
import { type Ctx, EMAIL_NOTE, notifyHandlers } from './ctx.js';
import type { Statement } from './parse.js';

export function vrrpScript(c: Ctx, s: Statement): VrrpScriptConfig | undefined {
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

export function vrrpInstance(
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

export function syncGroup(c: Ctx, s: Statement): VrrpSyncGroup | undefined {
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
