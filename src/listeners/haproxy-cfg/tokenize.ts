/**
 * haproxy.cfg read the way HAProxy 2.6 reads it (parse_line() in src/tools.c, section dispatch in cfgparse.c): a line
 * is words separated by blanks; `#` outside quotes ends the line; a backslash outside single quotes escapes a blank,
 * `#`, `\`, a quote or `$` and spells `\r`, `\n`, `\t`, `\xHH` (any other backslash stays, for regexes); "double"
 * quotes keep blanks and `#` and expand `$NAME`, `${NAME}` and `${NAME-default}` from the environment; 'single'
 * quotes keep everything as written; quoted and bare pieces glue into one word (`"a b"c` is `a bc`). A line whose
 * first word is a section keyword starts a section. `.if` / `.elif` / `.else` / `.endif` blocks (2.4+) are evaluated
 * with one term each (defined(), streq(), strneq(), version_atleast(), version_before(), a number, `!`), as HAProxy
 * 2.6. Every word keeps its file, line and column.
 */
import { readFileSync } from 'node:fs';

export interface Where {
  file: string;
  line: number;
  /** 1-based column of the word */
  col: number;
}

export interface Diagnostic extends Where {
  message: string;
}

export function formatDiagnostic(d: Diagnostic): string {
  return `${d.file}:${d.line}:${d.col}: ${d.message}`;
}

/** One configuration line: its words, each with its column. */
export interface Line {
  file: string;
  line: number;
  words: string[];
  cols: number[];
}

export const SECTION_KEYWORDS = [
  'global',
  'defaults',
  'frontend',
  'backend',
  'listen',
  'userlist',
  'peers',
  'resolvers',
  'mailers',
  'program',
  'http-errors',
  'ring',
  'cache',
  'log-forward',
  'fcgi-app',
] as const;
export type SectionKind = (typeof SECTION_KEYWORDS)[number];

export interface Section {
  kind: SectionKind;
  /** the section line itself (`frontend web` …) */
  head: Line;
  lines: Line[];
}

export interface Tokenized {
  sections: Section[];
  errors: Diagnostic[];
  warnings: Diagnostic[];
}

export type Env = Record<string, string | undefined>;

export function at(l: Line, i = 0): Where {
  return { file: l.file, line: l.line, col: l.cols[i] ?? l.cols[0] ?? 1 };
}

const NAME_START = /[A-Za-z_]/;
const NAME_CHAR = /[A-Za-z0-9_]/;

/**
 * Split one line into words (parse_line). Errors (an unmatched quote, a bad `\x`) go to `errors`; the words found
 * so far are still returned.
 */
export function splitLine(text: string, file: string, line: number, env: Env, errors: Diagnostic[]): Line {
  const words: string[] = [];
  const cols: number[] = [];
  let i = 0;
  const n = text.length;
  let word: string | null = null;
  let start = 0;
  let squote = false;
  let dquote = false;
  let quoteCol = 0;
  const end = () => {
    if (word !== null) {
      words.push(word);
      cols.push(start + 1);
    }
    word = null;
  };
  const add = (s: string) => {
    if (word === null) {
      word = '';
      start = i;
    }
    word += s;
  };
  while (i < n) {
    const c = text[i];
    if (!squote && !dquote && (c === ' ' || c === '\t')) {
      end();
      i++;
      continue;
    }
    if (!squote && !dquote && c === '#') break;
    if (c === '\r' && i === n - 1) break;
    if (c === "'" && !dquote) {
      if (word === null) add('');
      if (!squote) quoteCol = i + 1;
      squote = !squote;
      i++;
      continue;
    }
    if (c === '"' && !squote) {
      if (word === null) add('');
      if (!dquote) quoteCol = i + 1;
      dquote = !dquote;
      i++;
      continue;
    }
    if (c === '\\' && !squote && i + 1 < n) {
      const d = text[i + 1];
      if (' \t#\\\'"$'.includes(d)) {
        add(d);
        i += 2;
        continue;
      }
      if (d === 'r' || d === 'n' || d === 't') {
        add(d === 'r' ? '\r' : d === 'n' ? '\n' : '\t');
        i += 2;
        continue;
      }
      if (d === 'x') {
        const hex = text.slice(i + 2, i + 4);
        if (!/^[0-9a-fA-F]{2}$/.test(hex)) {
          errors.push({ file, line, col: i + 1, message: `bad escape '\\x${hex}': \\x needs two hex digits` });
          add('\\x');
          i += 2;
          continue;
        }
        add(String.fromCharCode(Number.parseInt(hex, 16)));
        i += 4;
        continue;
      }
      add(c);
      i++;
      continue;
    }
    if (c === '$' && dquote && i + 1 < n) {
      const r = expandVar(text, i, env);
      if (r) {
        add(r.value);
        i = r.next;
        continue;
      }
    }
    add(c);
    i++;
  }
  if (squote || dquote)
    errors.push({ file, line, col: quoteCol, message: `unmatched ${squote ? 'single' : 'double'} quote` });
  end();
  return { file, line, words, cols };
}

/** `$NAME`, `${NAME}` or `${NAME-default}` at text[i] (inside double quotes); null when it is a plain `$`. */
function expandVar(text: string, i: number, env: Env): { value: string; next: number } | null {
  if (text[i + 1] === '{') {
    const close = text.indexOf('}', i + 2);
    if (close < 0) return null;
    const body = text.slice(i + 2, close);
    const m = /^([A-Za-z_][A-Za-z0-9_]*)(?:-(.*))?$/.exec(body);
    if (!m) return null;
    const v = env[m[1]];
    return { value: v ?? m[2] ?? '', next: close + 1 };
  }
  if (!NAME_START.test(text[i + 1] ?? '')) return null;
  let j = i + 1;
  while (j < text.length && NAME_CHAR.test(text[j])) j++;
  return { value: env[text.slice(i + 1, j)] ?? '', next: j };
}

/** Tokenize a whole file into sections. Lines before the first section are errors, as in HAProxy. */
export function tokenize(text: string, file: string, env: Env = process.env): Tokenized {
  const errors: Diagnostic[] = [];
  const warnings: Diagnostic[] = [];
  const sections: Section[] = [];
  const lines = text.split('\n');
  let cur: Section | null = null;
  const blocks: Block[] = [];
  for (let ln = 0; ln < lines.length; ln++) {
    const l = splitLine(lines[ln], file, ln + 1, env, errors);
    if (l.words.length === 0) continue;
    const kw = l.words[0];
    if (kw === '.if' || kw === '.elif' || kw === '.else' || kw === '.endif') {
      conditional(l, blocks, errors, env);
      continue;
    }
    if (blocks.some((b) => !b.active)) continue;
    if (kw.startsWith('.')) {
      if (['.notice', '.warning', '.diag', '.alert'].includes(kw))
        warnings.push({ ...at(l), message: `'${kw}' is not shown by tierlb, ignored` });
      else errors.push({ ...at(l), message: `'${kw}' is not a directive tierlb knows` });
      continue;
    }
    if ((SECTION_KEYWORDS as readonly string[]).includes(kw)) {
      cur = { kind: kw as SectionKind, head: l, lines: [] };
      sections.push(cur);
      continue;
    }
    if (!cur) {
      errors.push({
        ...at(l),
        message: `'${kw}' outside of any section (global, defaults, frontend, backend, listen)`,
      });
      continue;
    }
    cur.lines.push(l);
  }
  for (const b of blocks) errors.push({ ...at(b.line), message: `'.if' without its '.endif'` });
  return { sections, errors, warnings };
}

/** An open `.if` block: whether its lines are read now, and whether a branch was taken already. */
interface Block {
  line: Line;
  active: boolean;
  taken: boolean;
  /** whether the enclosing blocks are all active */
  outer: boolean;
}

/** the HAProxy version tierlb reads configurations as (for version_atleast / version_before) */
const AS_VERSION = [2, 6];

function cmpVersion(v: string): number {
  const p = v.split(/[.-]/).map((x) => Number.parseInt(x, 10) || 0);
  for (let i = 0; i < 2; i++) if ((AS_VERSION[i] ?? 0) !== (p[i] ?? 0)) return (AS_VERSION[i] ?? 0) - (p[i] ?? 0);
  return 0;
}

/** `.if`/`.elif` conditions (HAProxy 2.4+): one term, maybe negated; undefined (+ an error) when not understood. */
function evalCond(l: Line, errors: Diagnostic[], env: Env): boolean | undefined {
  const words = l.words.slice(1);
  let text = words.join(' ').trim();
  let neg = false;
  while (text.startsWith('!')) {
    neg = !neg;
    text = text.slice(1).trim();
  }
  let v: boolean | undefined;
  const m = /^([a-z_]+)\((.*)\)$/.exec(text);
  if (/^-?\d+$/.test(text)) v = Number(text) !== 0;
  else if (text === '') v = false;
  else if (m) {
    const args = m[2].split(',').map((a) => a.trim());
    if (m[1] === 'defined') v = args[0] !== undefined && env[args[0]] !== undefined;
    else if (m[1] === 'streq' && args.length === 2) v = args[0] === args[1];
    else if (m[1] === 'strneq' && args.length === 2) v = args[0] !== args[1];
    else if (m[1] === 'version_atleast') v = cmpVersion(args[0] ?? '') >= 0;
    else if (m[1] === 'version_before') v = cmpVersion(args[0] ?? '') < 0;
  }
  if (v === undefined) {
    errors.push({
      ...at(l, 1),
      message: `'${l.words[0]} ${text}': tierlb evaluates one term (defined, streq, strneq, version_atleast, version_before, a number), maybe negated with '!'`,
    });
    return undefined;
  }
  return neg ? !v : v;
}

function conditional(l: Line, blocks: Block[], errors: Diagnostic[], env: Env): void {
  const kw = l.words[0];
  const top = blocks[blocks.length - 1];
  if (kw === '.if') {
    const outer = blocks.every((b) => b.active);
    const v = outer ? (evalCond(l, errors, env) ?? false) : false;
    blocks.push({ line: l, active: outer && v, taken: v, outer });
    return;
  }
  if (!top) {
    errors.push({ ...at(l), message: `'${kw}' without an '.if'` });
    return;
  }
  if (kw === '.endif') blocks.pop();
  else if (kw === '.else') {
    top.active = top.outer && !top.taken;
    top.taken = true;
  } else {
    const v = top.outer && !top.taken ? (evalCond(l, errors, env) ?? false) : false;
    top.active = top.outer && !top.taken && v;
    top.taken ||= v;
  }
}

/** Read and tokenize a file; an unreadable file is one error at line 0. */
export function tokenizeFile(path: string, env: Env = process.env): Tokenized {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    return { sections: [], errors: [{ file: path, line: 0, col: 0, message: `cannot read: ${code}` }], warnings: [] };
  }
  return tokenize(text, path, env);
}
