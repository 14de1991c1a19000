/**
 * keepalived.conf → tierlb's in-memory configuration: the VRRP part as a VrrpConfig (src/ha/vrrp/types.ts) and the
 * director part as `{ spec: ServiceSpec; dests: DestSpec[] }` per virtual service (src/l4/services.ts) with the
 * health-check configuration beside it (src/ha/checks-types.ts). Every keyword tierlb does not support is warned
 * about with its file and line; bad values and missing mandatory keywords are errors with file and line.
 *
 * This file reads the top level and dispatches each block to its section's reader, as HAProxy's cfgparse hands
 * sections to cfgparse-global/-listen/-ssl:
 *   global-defs.ts     global_defs
 *   vrrp.ts            vrrp_script, vrrp_instance, vrrp_sync_group
 *   virtual-server.ts  virtual_server_group, virtual_server, real_server
 *   checkers.ts        TCP_CHECK, HTTP_GET, SSL_GET, MISC_CHECK
 *   sync.ts            lvs_sync_daemon (global_defs) and lvs_sync_daemon_interface (vrrp_instance)
 *   ctx.ts             the diagnostics context and the handlers the sections share
 */
import { checkVrrpConfig } from '../vrrp/config.js';
import type { VrrpConfig, VrrpInstanceConfig, VrrpScriptConfig, VrrpSyncGroup } from '../vrrp/types.js';
import { Ctx } from './ctx.js';
import { type GlobalOut, globalDefs } from './global-defs.js';
import {
  type ConfFs,
  type Diagnostic,
  KeepalivedSyntaxError,
  parseConfFile,
  realFs,
  type Statement,
  type Where,
} from './parse.js';
import { type LvsSyncDaemon, syncInterface, syncOfInstance } from './sync.js';
import { type GroupMember, type KeepalivedService, virtualServer, vsGroup } from './virtual-server.js';
import { syncGroup, vrrpInstance, vrrpScript } from './vrrp.js';

export type { LvsSyncDaemon } from './sync.js';
export type { KeepalivedService } from './virtual-server.js';

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
