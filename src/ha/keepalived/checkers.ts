/**
 * keepalived.conf's checkers inside a real_server: TCP_CHECK, HTTP_GET / SSL_GET (with their url blocks) and
 * MISC_CHECK, with the options they share (connect_ip, connect_timeout, retry, delay_loop, ...).
 */
import type { CheckCommon, HttpGetCheck, HttpUrlCheck, MiscCheck, RealServerCheck, TcpCheck } from '../checks-types.js';
import type { Ctx, Handler } from './ctx.js';
import type { Statement } from './parse.js';

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

/** The checkers tierlb runs, as real_server handlers: each adds its check through `add`. */
export function checkerHandlers(c: Ctx, add: (ch: RealServerCheck | undefined) => void): Record<string, Handler> {
  return {
    TCP_CHECK: (x) => {
      const o: Partial<CheckCommon> = {};
      c.each(x.block, 'TCP_CHECK', checkCommonHandlers(c, o));
      add({ type: 'tcp', ...commonDefaults(o) } satisfies TcpCheck);
    },
    HTTP_GET: (x) => add(httpCheck(c, x, false)),
    SSL_GET: (x) => add(httpCheck(c, x, true)),
    MISC_CHECK: (x) => add(miscCheck(c, x)),
  };
}

const unsupportedCheck = 'this checker is not supported by tierlb';

/** keepalived's other checkers: warned about with their place, never dropped silently. */
export const UNSUPPORTED_CHECKERS: Record<string, string> = {
  SMTP_CHECK: unsupportedCheck,
  DNS_CHECK: unsupportedCheck,
  BFD_CHECK: unsupportedCheck,
  UDP_CHECK: unsupportedCheck,
  PING_CHECK: unsupportedCheck,
  FILE_CHECK: unsupportedCheck,
};
