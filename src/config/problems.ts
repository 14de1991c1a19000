/**
 * Config problems and the error that carries them all. Every problem has a place in the file (1-based line and
 * column; 0 when the problem is about the file as a whole) and prints as `file:line:col: reason`.
 */
import { TierlbError } from '../common/errors.js';

/** A path into the config document: mapping keys and sequence indexes, e.g. ['director', 'services', 0, 'vip']. */
export type ConfigPath = readonly (string | number)[];

export interface ConfigProblem {
  file: string;
  /** 1-based; 0 when the problem has no place in the file (it could not be read) */
  line: number;
  /** 1-based; 0 when line is 0 */
  column: number;
  /** dotted path of the offending value (`director.services[0].real_servers[1].weight`), '' for the document */
  path: string;
  message: string;
}

/** `director.services[0].vip` */
export function pathToString(path: ConfigPath): string {
  let s = '';
  for (const seg of path) {
    if (typeof seg === 'number') s += `[${seg}]`;
    else s += s === '' ? seg : `.${seg}`;
  }
  return s;
}

/** `file:line:col: path: message` (`file: message` for problems without a place). */
export function formatProblem(p: ConfigProblem): string {
  const where = p.line > 0 ? `${p.file}:${p.line}:${p.column}` : p.file;
  return p.path ? `${where}: ${p.path}: ${p.message}` : `${where}: ${p.message}`;
}

/** Sort by place and drop exact duplicates. */
export function sortProblems(problems: ConfigProblem[]): ConfigProblem[] {
  const seen = new Set<string>();
  const out: ConfigProblem[] = [];
  for (const p of problems) {
    const k = formatProblem(p);
    if (seen.has(k)) continue;
    seen.add(k);
    out.push(p);
  }
  return out.sort((a, b) => a.line - b.line || a.column - b.column);
}

/** Thrown by the loaders: carries every problem found, never just the first. */
export class ConfigError extends TierlbError {
  override readonly code = 'ECONFIG' as const;
  readonly problems: readonly ConfigProblem[];

  constructor(problems: ConfigProblem[]) {
    const sorted = sortProblems(problems);
    super('ECONFIG', sorted.map(formatProblem).join('\n'));
    this.name = 'ConfigError';
    this.problems = sorted;
  }

  /** One `file:line:col: reason` per line. */
  format(): string {
    return this.problems.map(formatProblem).join('\n');
  }
}

/**
 * A value that cannot be turned into what it names (a duration, a host:port, a status code) — thrown by the
 * sections' converters; the loader's schema and checks report such values with their place before they get there.
 */
export class ConfigValueError extends TierlbError {
  override readonly code = 'ECONFIG_VALUE' as const;

  constructor(message: string) {
    super('ECONFIG_VALUE', message);
    this.name = 'ConfigValueError';
  }
}
