/**
 * What every keepalived.conf section reader shares: the context that collects errors and warnings with their
 * file:line (and reads values the way keepalived does), and the handlers shared by several sections.
 */
import { canonicalAddr, familyOf } from '../../common/addr.js';
import type { VrrpNotify } from '../vrrp/types.js';
import type { Diagnostic, Statement, Where } from './parse.js';

export type Handler = (s: Statement) => void;

export class Ctx {
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

export function notifyHandlers(c: Ctx, n: VrrpNotify): Record<string, Handler> {
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

export const EMAIL_NOTE = 'e-mail notification is not supported by tierlb (use notify scripts)';
