/**
 * The config loader: YAML (with positions) → composed JSON schema (ajv, all errors) → each section's semantic
 * checks. Every problem found is collected; the loaders throw one ConfigError carrying them all.
 *
 * When the YAML itself is broken (anything but a duplicate key), only the syntax problems are reported: the
 * recovered structure is not what was meant, and checking it would only report phantom problems.
 */
import { readFile } from 'node:fs/promises';
import '../director/config.js'; // registers the director's semantic checks
import type { DirectorConfig } from '../director/config-schema.js';
import { ConfigError, type ConfigProblem, sortProblems } from './problems.js';
import { validateSchema } from './schema.js';
import { type ConfigSource, parseSource, problemAt } from './source.js';
import { runSectionValidators } from './validators.js';

/** A loaded config. Sections other than the director are typed by their owners' schemas (unknown here). */
export interface TierlbConfig {
  director?: DirectorConfig;
  vrrp?: unknown;
  listeners?: unknown;
  overlay?: unknown;
  lab?: unknown;
  bgp?: unknown;
  cluster?: unknown;
}

export interface LoadedConfig {
  file: string;
  config: TierlbConfig;
  source: ConfigSource;
}

export interface CheckResult {
  file: string;
  /** present when there are no problems */
  config?: TierlbConfig;
  /** the parsed source (absent only when the file could not be read) */
  source?: ConfigSource;
  problems: ConfigProblem[];
}

/** Check YAML text without throwing: every problem, sorted by place. */
export function checkConfigString(text: string, file = '<string>'): CheckResult {
  const { source, problems, fatal } = parseSource(text, file);
  if (fatal) return { file, source, problems: sortProblems(problems) };
  let data: unknown = source.doc.toJS({ maxAliasCount: 1000 });
  if (data === null || data === undefined) data = {};
  if (typeof data !== 'object' || Array.isArray(data)) {
    problems.push(
      problemAt(source, [], 'the config must be a mapping of sections (director, vrrp, listeners, overlay, lab)'),
    );
    return { file, source, problems: sortProblems(problems) };
  }
  const schema = validateSchema(data, source);
  problems.push(...schema.problems);
  problems.push(...runSectionValidators(data as Record<string, unknown>, source, schema.sections));
  const sorted = sortProblems(problems);
  return sorted.length
    ? { file, source, problems: sorted }
    : { file, source, problems: [], config: data as TierlbConfig };
}

/** Check a file without throwing; an unreadable file is one problem without a place. */
export async function checkConfigFile(file: string): Promise<CheckResult> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why = err.code === 'ENOENT' ? 'no such file' : err.code === 'EISDIR' ? 'is a directory' : err.message;
    return { file, problems: [{ file, line: 0, column: 0, path: '', message: `cannot read: ${why}` }] };
  }
  return checkConfigString(text, file);
}

/** Load YAML text (tests, stdin); `file` is the name problems are reported under. Throws ConfigError. */
export function loadConfigString(text: string, file = '<string>'): LoadedConfig {
  const r = checkConfigString(text, file);
  if (!r.config || !r.source) throw new ConfigError(r.problems);
  return { file, config: r.config, source: r.source };
}

/** Load a config file. Throws ConfigError with every problem found. */
export async function loadConfigFile(file: string): Promise<LoadedConfig> {
  const r = await checkConfigFile(file);
  if (!r.config || !r.source) throw new ConfigError(r.problems);
  return { file, config: r.config, source: r.source };
}
