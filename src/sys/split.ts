/**
 * The one command splitter: a `notify*` script, a `misc_path`, a `vrrp_script` `script` (and the YAML fields that
 * mirror them) become an argv by keepalived 2.2's rules (set_script_params_array, which splits the command text with
 * escapes on), so the same text gives the same argv wherever it is written. No shell is involved.
 *
 * - blanks (space, \t, \n, \r, \f, \v) separate words; a word may be empty (`x ""` is two words);
 * - `"..."` and `'...'` group, and may sit inside a word (`a"b c"d` is one word `ab cd`); the two quotes are alike,
 *   and backslash escapes work inside both (unlike a shell's single quotes);
 * - a backslash escapes the next character: \a \b \E \f \n \r \t \v, \xHH (one or two hex digits), \NNN (one to
 *   three octal digits), \cX (control-X), anything else stands for itself (`\ `, `\"`, `\'`, `\\`);
 * - escapes give bytes: `\xc3\xa9` is "é" (the word is read as UTF-8), and a word ends at a NUL byte as a C string
 *   does;
 * - an unterminated quote or a backslash at the very end is an error (keepalived then ignores the script).
 */
import { CommandSyntaxError } from './errors.js';

const BLANK = ' \t\n\r\f\v';
const SIMPLE: Record<string, number> = { a: 7, b: 8, E: 0x1b, f: 12, n: 10, r: 13, t: 9, v: 11 };
const isHex = (c: string | undefined) => c !== undefined && /^[0-9a-fA-F]$/.test(c);
const isOct = (c: string | undefined) => c !== undefined && c >= '0' && c <= '7';

/** Split a command line into argv; throws CommandSyntaxError where keepalived would refuse the line. */
export function splitCommand(text: string): string[] {
  const words: string[] = [];
  let i = 0;
  const n = text.length;
  while (i < n) {
    while (i < n && BLANK.includes(text[i])) i++;
    if (i >= n) break;
    const bytes: number[] = [];
    const lit = (s: string) => {
      for (const b of Buffer.from(s, 'utf8')) bytes.push(b);
    };
    let quote = '';
    const at = (k: number) => String.fromCodePoint(text.codePointAt(k) as number);
    for (; i < n; ) {
      const c = at(i);
      if (c === '\\') {
        i++;
        if (i >= n)
          throw new CommandSyntaxError(
            'ECMD_ESCAPE',
            text,
            `command '${text}': a backslash at the end escapes nothing`,
          );
        const e = text[i];
        if (e === 'x' && isHex(text[i + 1])) {
          let v = 0;
          i++;
          for (let k = 0; k < 2 && isHex(text[i]); k++) v = (v << 4) | Number.parseInt(text[i++], 16);
          bytes.push(v);
        } else if (e === 'c' && i + 1 < n) {
          const x = at(i + 1);
          bytes.push(Buffer.from(x, 'utf8')[0] & 0x1f);
          i += 1 + x.length;
        } else if (isOct(e)) {
          let v = 0;
          for (let k = 0; k < 3 && isOct(text[i]); k++) v = (v << 3) + Number(text[i++]);
          bytes.push(v & 0xff);
        } else {
          const ch = at(i);
          if (SIMPLE[ch] !== undefined) bytes.push(SIMPLE[ch]);
          else lit(ch);
          i += ch.length;
        }
      } else if (quote) {
        if (c === quote) quote = '';
        else lit(c);
        i += c.length;
      } else if (c === '"' || c === "'") {
        quote = c;
        i++;
      } else if (BLANK.includes(c)) {
        break;
      } else {
        lit(c);
        i += c.length;
      }
    }
    if (quote) throw new CommandSyntaxError('ECMD_QUOTE', text, `command '${text}': missing terminating ${quote}`);
    const nul = bytes.indexOf(0);
    words.push(Buffer.from(nul < 0 ? bytes : bytes.slice(0, nul)).toString('utf8'));
  }
  return words;
}

/** splitCommand, with an empty result refused too (a script must name a program). */
export function commandArgv(text: string): string[] {
  const argv = splitCommand(text);
  if (argv.length === 0 || argv[0] === '')
    throw new CommandSyntaxError('ECMD_EMPTY', text, `command '${text}' names no program`);
  return argv;
}
