/** What the haproxy.cfg readers share: the diagnostics (errors refuse the file, warnings are listed) and value readers. */
import { at, type Diagnostic, type Line, type Where } from './tokenize.js';

export class Ctx {
  readonly errors: Diagnostic[] = [];
  readonly warnings: Diagnostic[] = [];

  constructor(
    /** reads files named by the configuration (`-f` ACL files); injectable for tests */
    readonly readFile: (path: string) => string,
    /** whether a path is a directory (`crt DIR`) */
    readonly isDir: (path: string) => boolean,
  ) {}

  error(w: Where, message: string): void {
    this.errors.push({ ...w, message });
  }

  warn(w: Where, message: string): void {
    this.warnings.push({ ...w, message });
  }

  /** A keyword tierlb does not run and whose absence changes nothing a client sees. */
  ignored(l: Line, why: string, i = 0): void {
    this.warn(at(l, i), `'${l.words.slice(0, i + 1).join(' ')}': ${why}, ignored`);
  }

  /** A keyword tierlb does not run and whose absence would change behaviour: the file is refused. */
  refused(l: Line, why: string, i = 0): void {
    this.error(at(l, i), `'${l.words.slice(0, i + 1).join(' ')}' is not supported by tierlb (${why})`);
  }

  /** l.words[i] as an integer in [min, max], else an error. */
  int(l: Line, i: number, min: number, max: number): number | undefined {
    const v = l.words[i];
    if (v === undefined) {
      this.error(at(l, Math.max(0, i - 1)), `'${l.words.slice(0, i).join(' ')}' needs a value`);
      return undefined;
    }
    const n = Number(v);
    if (!/^\d+$/.test(v) || n < min || n > max) {
      this.error(at(l, i), `'${l.words[0]}': '${v}' is not an integer in ${min}..${max}`);
      return undefined;
    }
    return n;
  }

  /** A HAProxy time (ms by default; us, ms, s, m, h, d) → the same string for tierlb, or an error. */
  time(l: Line, i: number): string | undefined {
    const v = l.words[i];
    if (v === undefined) {
      this.error(at(l, Math.max(0, i - 1)), `'${l.words.slice(0, i).join(' ')}' needs a time`);
      return undefined;
    }
    if (!/^\d+(us|ms|s|m|h|d)?$/.test(v)) {
      this.error(at(l, i), `'${v}' is not a time (a number with an optional unit: us, ms, s, m, h, d)`);
      return undefined;
    }
    return /^\d+$/.test(v) ? `${v}ms` : v;
  }

  /** Extra words after what a keyword takes. */
  extra(l: Line, from: number): void {
    if (l.words.length > from)
      this.error(at(l, from), `'${l.words[0]}': unexpected '${l.words.slice(from).join(' ')}'`);
  }
}

/**
 * A header value or redirect target: HAProxy reads it as a log-format string. Plain text (with `%%` for `%`) is
 * what tierlb runs; a sample expression or log variable (`%[src]`, `%ci`) is refused.
 */
export function literalFormat(c: Ctx, l: Line, i: number): string | undefined {
  const v = l.words[i];
  if (v === undefined) {
    c.error(at(l, Math.max(0, i - 1)), `'${l.words.slice(0, i).join(' ')}' needs a value`);
    return undefined;
  }
  if (/%(?!%)/.test(v.replace(/%%/g, ''))) {
    c.error(
      at(l, i),
      `'${v}': log-format expressions (%[...], %ci, ...) are not supported by tierlb: use a literal value (%% for %)`,
    );
    return undefined;
  }
  return v.replace(/%%/g, '%');
}

/**
 * A header value: HAProxy's log-format string, of which tierlb runs text, `%%` and the sample fetches
 * `%[src]`, `%[hdr(NAME)]`, `%[method]`, `%[path]`, `%[query]`, `%[host]`, `%[ssl_fc]`, `%[status]` (passed on as
 * written: the listener's rule compiler checks the fetch names at this line). Log variables (`%ci`, `%{+Q}[...]`)
 * are refused.
 */
export function headerFormat(c: Ctx, l: Line, i: number): string | undefined {
  const v = l.words[i];
  if (v === undefined) {
    c.error(at(l, Math.max(0, i - 1)), `'${l.words.slice(0, i).join(' ')}' needs a value`);
    return undefined;
  }
  if (/%(?!%|\[)/.test(v.replace(/%%/g, ''))) {
    c.error(
      at(l, i),
      `'${v}': log-format variables (%ci, %{+Q}[...], ...) are not supported by tierlb: text, %% and %[fetch] are`,
    );
    return undefined;
  }
  return v;
}
