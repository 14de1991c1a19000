/**
 * keepalived.conf as keepalived reads it: words separated by blanks, `{` and `}` as words of their own, `!` or `#`
 * starting a comment where a word would start, double- (or single-) quoted strings as one word, a trailing `\`
 * continuing the line, and `include PATTERN` (a glob, relative to the including file) anywhere a line may be. The
 * result is a tree of statements, each with its file and line. Syntax errors name file:line.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { TierlbError } from '../../common/errors.js';

export interface Where {
  file: string;
  line: number;
}

export interface Diagnostic extends Where {
  message: string;
}

export function formatDiagnostic(d: Diagnostic): string {
  return `${d.file}:${d.line}: ${d.message}`;
}

/** A keepalived.conf that cannot be run: every error, one `file:line: reason` per line. */
export class KeepalivedSyntaxError extends TierlbError {
  override readonly code = 'EKEEPALIVED_SYNTAX' as const;

  constructor(readonly diagnostics: Diagnostic[]) {
    super('EKEEPALIVED_SYNTAX', diagnostics.map(formatDiagnostic).join('\n'));
    this.name = 'KeepalivedSyntaxError';
  }
}

interface Token extends Where {
  kind: 'word' | 'open' | 'close' | 'eol';
  text: string;
}

export interface Statement extends Where {
  name: string;
  args: string[];
  /** the `{ … }` block, when there is one */
  block?: Statement[];
}

/** Reads files; injectable so tests can use an in-memory tree. */
export interface ConfFs {
  read(path: string): string;
  /** directory entries (names), for include globs */
  list(dir: string): string[];
  isDir(path: string): boolean;
}

export const realFs: ConfFs = {
  read: (p) => readFileSync(p, 'utf8'),
  list: (d) => {
    try {
      return readdirSync(d);
    } catch {
      return [];
    }
  },
  isDir: (p) => {
    try {
      return statSync(p).isDirectory();
    } catch {
      return false;
    }
  },
};

const GLOB_CHARS = /[*?[]/;

function globToRegExp(seg: string): RegExp {
  let re = '';
  for (let i = 0; i < seg.length; i++) {
    const c = seg[i];
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = seg.indexOf(']', i + 1);
      if (end < 0) re += '\\[';
      else {
        let cls = seg.slice(i + 1, end);
        if (cls.startsWith('!')) cls = `^${cls.slice(1)}`;
        re += `[${cls.replace(/\\/g, '\\\\')}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** Expand a glob pattern (wildcards in any path segment), sorted like glob(3). Hidden files need a leading dot. */
export function expandGlob(pattern: string, fs: ConfFs): string[] {
  const abs = isAbsolute(pattern);
  const segs = pattern.split('/').filter((s) => s !== '');
  let paths = [abs ? '/' : '.'];
  for (const seg of segs) {
    const next: string[] = [];
    for (const base of paths) {
      if (!GLOB_CHARS.test(seg)) {
        next.push(join(base, seg));
        continue;
      }
      const re = globToRegExp(seg);
      for (const name of fs.list(base).sort())
        if (re.test(name) && (!name.startsWith('.') || seg.startsWith('.'))) next.push(join(base, name));
    }
    paths = next;
  }
  return GLOB_CHARS.test(pattern) ? paths : paths.slice(0, 1);
}

/** Split one logical line into tokens; a comment ends it. */
function lexLine(text: string, where: Where, out: Token[], diags: Diagnostic[]): void {
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text[i];
    if (c === ' ' || c === '\t' || c === '\r') {
      i++;
      continue;
    }
    if (c === '!' || c === '#') return;
    if (c === '{' || c === '}') {
      out.push({ kind: c === '{' ? 'open' : 'close', text: c, ...where });
      i++;
      continue;
    }
    if (c === '"' || c === "'") {
      const end = text.indexOf(c, i + 1);
      if (end < 0) {
        diags.push({ ...where, message: 'unterminated quoted string' });
        out.push({ kind: 'word', text: text.slice(i + 1), ...where });
        return;
      }
      out.push({ kind: 'word', text: text.slice(i + 1, end), ...where });
      i = end + 1;
      continue;
    }
    let j = i;
    while (j < n && !' \t\r{}'.includes(text[j])) j++;
    out.push({ kind: 'word', text: text.slice(i, j), ...where });
    i = j;
  }
}

interface LexState {
  fs: ConfFs;
  tokens: Token[];
  errors: Diagnostic[];
  warnings: Diagnostic[];
  stack: string[];
  files: string[];
}

function lexFile(path: string, st: LexState, from?: Where): void {
  const file = resolve(path);
  if (st.stack.includes(file)) {
    st.errors.push({ ...(from ?? { file, line: 0 }), message: `include loop: ${file}` });
    return;
  }
  let text: string;
  try {
    text = st.fs.read(file);
  } catch (e) {
    const msg = `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
    st.errors.push(from ? { ...from, message: msg } : { file, line: 0, message: msg });
    return;
  }
  st.stack.push(file);
  st.files.push(file);
  const lines = text.split('\n');
  for (let ln = 0; ln < lines.length; ln++) {
    const where = { file, line: ln + 1 };
    let line = lines[ln];
    while (/\\\r?$/.test(line) && ln + 1 < lines.length) line = line.replace(/\\\r?$/, ' ') + lines[++ln];
    const toks: Token[] = [];
    lexLine(line, where, toks, st.errors);
    if (toks.length === 0) continue;
    const first = toks[0].text;
    if (toks[0].kind === 'word' && first === 'include') {
      if (toks.length < 2) {
        st.errors.push({ ...where, message: 'include without a file' });
        continue;
      }
      for (const t of toks.slice(1)) {
        const pat = isAbsolute(t.text) ? t.text : join(dirname(file), t.text);
        const files = expandGlob(pat, st.fs).filter((f) => !st.fs.isDir(f));
        if (files.length === 0) {
          if (GLOB_CHARS.test(t.text)) st.warnings.push({ ...where, message: `include ${t.text}: no file matches` });
          else st.errors.push({ ...where, message: `include ${t.text}: no such file` });
        }
        for (const f of files) lexFile(f, st, where);
      }
      continue;
    }
    if (toks[0].kind === 'word' && (first.startsWith('@') || first.startsWith('$'))) {
      st.warnings.push({
        ...where,
        message: `${first.startsWith('@') ? 'conditional (@) lines' : 'parameter ($) definitions and substitution'} are not supported by tierlb: line ignored`,
      });
      continue;
    }
    st.tokens.push(...toks, { kind: 'eol', text: '', ...where });
  }
  st.stack.pop();
}

export interface ParsedConf {
  statements: Statement[];
  /** every file read, the main one first */
  files: string[];
  errors: Diagnostic[];
  warnings: Diagnostic[];
}

/** Tokenize and parse a keepalived.conf (with its includes) into statements; never throws. */
export function parseConfFile(path: string, fs: ConfFs = realFs): ParsedConf {
  const st: LexState = { fs, tokens: [], errors: [], warnings: [], stack: [], files: [] };
  lexFile(path, st);
  const toks = st.tokens;
  let pos = 0;
  const block = (open: Where | undefined): Statement[] => {
    const out: Statement[] = [];
    while (pos < toks.length) {
      const t = toks[pos];
      if (t.kind === 'eol') {
        pos++;
      } else if (t.kind === 'close') {
        pos++;
        if (open) return out;
        st.errors.push({ file: t.file, line: t.line, message: "unexpected '}'" });
      } else if (t.kind === 'open') {
        pos++;
        st.errors.push({ file: t.file, line: t.line, message: "'{' without a keyword before it" });
        block({ file: t.file, line: t.line });
      } else {
        const s: Statement = { name: t.text, args: [], file: t.file, line: t.line };
        pos++;
        while (pos < toks.length && toks[pos].kind === 'word') s.args.push(toks[pos++].text);
        let p = pos;
        while (p < toks.length && toks[p].kind === 'eol') p++;
        if (p < toks.length && toks[p].kind === 'open') {
          pos = p + 1;
          s.block = block(s);
        }
        out.push(s);
      }
    }
    if (open) st.errors.push({ ...open, message: "block opened here is missing its '}'" });
    return out;
  };
  const statements = block(undefined);
  return { statements, files: st.files, errors: st.errors, warnings: st.warnings };
}
