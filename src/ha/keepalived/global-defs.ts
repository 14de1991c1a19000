/** keepalived.conf's `global_defs`: router_id, vrrp_version (every instance's default) and the sync daemon. */
import { type Ctx, EMAIL_NOTE } from './ctx.js';
import type { Statement } from './parse.js';
import { lvsSyncDaemon, type SyncSlot } from './sync.js';

export interface GlobalOut extends SyncSlot {
  routerId?: string;
  vrrpVersion?: 2 | 3;
}

export function globalDefs(c: Ctx, s: Statement, out: GlobalOut, order: number): void {
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
