/**
 * A command-line tokenizer that behaves like libpopt as ipvsadm drives it (poptGetNextOpt / poptGetArg /
 * poptBadOption): short-option clusters (`-Ln`, `-w5`, `-w=5`), `--long` and `--long=value`, optional arguments that
 * only take the next word when it does not start with '-', `--` ending the options, and non-option words collected
 * as leftovers wherever they appear. Long names must be spelled out in full (popt has no abbreviations) and need two
 * dashes (none of ipvsadm's options are POPT_ARGFLAG_ONEDASH, so `-stats` is the cluster `-s tats`).
 */

export type ArgKind = 'none' | 'required' | 'optional';

export interface PoptOption {
  long?: string;
  short?: string;
  arg: ArgKind;
  /** what getNextOpt reports for this option */
  val: string;
}

/** popt's error codes that ipvsadm can meet, with poptStrerror's text. */
export const POPT_ERRORS = {
  NOARG: 'missing argument',
  UNWANTEDARG: 'option does not take an argument',
  BADOPT: 'unknown option',
} as const;

export type PoptError = keyof typeof POPT_ERRORS;

export type PoptEvent =
  | { type: 'opt'; val: string; arg: string | undefined }
  | { type: 'end' }
  | { type: 'error'; error: PoptError };

export class PoptContext {
  private next = 0;
  /** the rest of a short-option cluster still to be read */
  private charArg: string | null = null;
  private restLeftover = false;
  private readonly leftovers: string[] = [];
  private nextLeftover = 0;

  constructor(
    private readonly argv: readonly string[],
    private readonly table: readonly PoptOption[],
  ) {}

  getNextOpt(): PoptEvent {
    for (;;) {
      let opt: PoptOption | undefined;
      let longArg: string | undefined;
      if (this.charArg === null) {
        if (this.next >= this.argv.length) return { type: 'end' };
        const s = this.argv[this.next++];
        if (this.restLeftover || s[0] !== '-' || s === '-') {
          this.leftovers.push(s);
          continue;
        }
        if (s === '--') {
          this.restLeftover = true;
          continue;
        }
        if (s[1] === '-') {
          const body = s.slice(2);
          const eq = body.indexOf('=');
          const name = eq >= 0 ? body.slice(0, eq) : body;
          if (eq >= 0) longArg = body.slice(eq + 1);
          opt = this.table.find((o) => o.long === name);
          if (!opt) return { type: 'error', error: 'BADOPT' };
        } else {
          this.charArg = s.slice(1);
        }
      }
      if (this.charArg !== null) {
        const c = this.charArg[0];
        opt = this.table.find((o) => o.short === c);
        if (!opt) return { type: 'error', error: 'BADOPT' };
        const rest = this.charArg.slice(1);
        this.charArg = rest === '' ? null : rest;
      }
      if (!opt) return { type: 'error', error: 'BADOPT' };
      if (opt.arg === 'none') {
        if (longArg !== undefined || this.charArg?.[0] === '=') return { type: 'error', error: 'UNWANTEDARG' };
        return { type: 'opt', val: opt.val, arg: undefined };
      }
      let arg: string | undefined;
      if (longArg !== undefined) arg = longArg;
      else if (this.charArg !== null) {
        arg = this.charArg[0] === '=' ? this.charArg.slice(1) : this.charArg;
        this.charArg = null;
      } else if (this.next >= this.argv.length) {
        if (opt.arg !== 'optional') return { type: 'error', error: 'NOARG' };
      } else if (!(opt.arg === 'optional' && this.argv[this.next][0] === '-')) {
        arg = this.argv[this.next++];
      }
      return { type: 'opt', val: opt.val, arg };
    }
  }

  /** poptGetArg: the next leftover (non-option) word. */
  getArg(): string | undefined {
    return this.nextLeftover < this.leftovers.length ? this.leftovers[this.nextLeftover++] : undefined;
  }

  /** poptBadOption(POPT_BADOPTION_NOALIAS): the whole argv word last read. */
  badOption(): string {
    return this.next > 0 ? this.argv[this.next - 1] : '';
  }
}
