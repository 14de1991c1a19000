/**
 * haproxy.cfg read the way HAProxy 2.6 reads it (parse_line() in src/tools.c, section dispatch in cfgparse.c): a line
 * is words separated by blanks; `#` outside quotes ends the line; a backslash outside single quotes escapes a blank,
 * `#`, `\`, a quote or `$` and spells `\r`, `\n`, `\t`, `\xHH` (any other backslash stays, for regexes); "double"
 * quotes keep blanks and `#` and expand `$NAME`, `${NAME}` and `${NAME-default}` from the environment; 'single'
 * quotes keep everything as written; quoted and bare pieces glue into one word (`"a b"c` is `a bc`). A line whose
 * first word is a section keyword starts a section. Every word keeps its file, line and column.
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
  for (let ln = 0; ln < lines.length; ln++) {
    const l = splitLine(lines[ln], file, ln + 1, env, errors);
    if (l.words.length === 0) continue;
    const kw = l.words[0];
    if (kw.startsWith('.')) {
      // conditional blocks and diagnostics (2.4+): not evaluated by tierlb
      if (['.notice', '.warning', '.diag'].includes(kw)) {
        warnings.push({ ...at(l), message: `'${kw}' is not shown by tierlb, ignored` });
        continue;
      }
      errors.push({
        ...at(l),
        message: `'${kw}' (conditional blocks) is not supported by tierlb: write the configuration without it`,
      });
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
  return { sections, errors, warnings };
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
