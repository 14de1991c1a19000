/**
 * A parsed config file that remembers where every node came from (yaml's LineCounter), so any problem can be
 * reported at `file:line:col`.
 */
import { type Document, isAlias, isMap, isPair, isScalar, isSeq, LineCounter, type Node, parseDocument } from 'yaml';
import { type ConfigPath, type ConfigProblem, pathToString } from './problems.js';

export interface ConfigSource {
  /** the name problems are reported under (the path as given, or a display name) */
  file: string;
  text: string;
  doc: Document.Parsed;
  lineCounter: LineCounter;
}

export interface Position {
  line: number;
  column: number;
}

/** yaml error codes that leave the document's structure intact, so schema and semantic checks still run. */
const STRUCTURE_SAFE = new Set(['DUPLICATE_KEY']);

/** Parse YAML text; syntax problems are returned, never thrown. `fatal` is true when the structure is unreliable. */
export function parseSource(
  text: string,
  file: string,
): { source: ConfigSource; problems: ConfigProblem[]; fatal: boolean } {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, keepSourceTokens: false });
  const source: ConfigSource = { file, text, doc, lineCounter };
  const problems: ConfigProblem[] = [];
  let fatal = false;
  const seenLines = new Set<number>();
  for (const e of doc.errors) {
    const { line, col } = lineCounter.linePos(e.pos[0]);
    if (!STRUCTURE_SAFE.has(e.code)) fatal = true;
    // one parser error usually drags follow-ups onto the same line: keep the first per line
    if (seenLines.has(line)) continue;
    seenLines.add(line);
    problems.push({
      file,
      line,
      column: col,
      path: '',
      message: yamlMessage(e.code, e.message, keyAt(text, e.pos[0])),
    });
  }
  return { source, problems, fatal };
}

/** The mapping key written at `offset` (`port` in `port: 81`). */
function keyAt(text: string, offset: number): string {
  const m = /^("[^"\n]*"|'[^'\n]*'|[^:#\n]+?)\s*:/.exec(text.slice(offset, offset + 200));
  return m ? m[1] : '';
}

function yamlMessage(code: string, message: string, token: string): string {
  const m = message.replace(/\s+/g, ' ').trim();
  if (code === 'DUPLICATE_KEY') return token ? `duplicate key '${token}'` : 'duplicate key';
  return `YAML syntax error: ${m}`;
}

/** Find the node at `path` (and the pair's key node when the last step is a mapping key). */
function walk(source: ConfigSource, path: ConfigPath): { node: Node | null; key: Node | null; depth: number } {
  let node: Node | null = source.doc.contents as Node | null;
  let key: Node | null = null;
  let depth = 0;
  for (const seg of path) {
    if (node && isAlias(node)) node = (node.resolve(source.doc) as Node | undefined) ?? null;
    let next: Node | null = null;
    let nextKey: Node | null = null;
    if (node && isMap(node)) {
      for (const pair of node.items) {
        if (!isPair(pair)) continue;
        const k = pair.key as Node | null;
        const kv = k && isScalar(k) ? k.value : k;
        if (String(kv) === String(seg)) {
          nextKey = k;
          next = (pair.value as Node | null) ?? k;
          break;
        }
      }
    } else if (node && isSeq(node)) {
      const i = typeof seg === 'number' ? seg : Number(seg);
      const item = Number.isInteger(i) ? node.items[i] : undefined;
      next = (item as Node | undefined) ?? null;
    }
    if (!next) break;
    node = next;
    key = nextKey;
    depth++;
  }
  return { node, key: depth === path.length ? key : null, depth };
}

/**
 * Where the value at `path` starts (or its key, with `{ key: true }`). A path that goes further than the document
 * (a missing key) resolves to its deepest existing ancestor, which is where the key is missing.
 */
export function positionOf(source: ConfigSource, path: ConfigPath, opts: { key?: boolean } = {}): Position {
  const { node, key } = walk(source, path);
  const target = opts.key && key ? key : node;
  const offset = target?.range?.[0] ?? 0;
  const { line, col } = source.lineCounter.linePos(offset);
  return { line, column: col };
}

/** Whether `path` names something present in the document. */
export function hasPath(source: ConfigSource, path: ConfigPath): boolean {
  return walk(source, path).depth === path.length;
}

/** A problem at `path` of `source`. */
export function problemAt(
  source: ConfigSource,
  path: ConfigPath,
  message: string,
  opts: { key?: boolean } = {},
): ConfigProblem {
  const { line, column } = positionOf(source, path, opts);
  return { file: source.file, line, column, path: pathToString(path), message };
}
