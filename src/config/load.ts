/**
 * The config loader: YAML (with positions) → composed JSON schema (ajv, all errors) → each section's semantic
 * checks. Every problem found is collected; the loaders throw one ConfigError carrying them all.
 *
 * When the YAML itself is broken (anything but a duplicate key), only the syntax problems are reported: the
 * recovered structure is not what was meant, and checking it would only report phantom problems.
 */
import { readFile } from 'node:fs/promises';
import { ConfigError, type ConfigProblem, sortProblems } from './problems.js';
import { SECTIONS, type SectionName, type SectionRegistry, sections, type TierlbConfig } from './registry.js';
import { validateSchema } from './schema.js';
import { type ConfigSource, parseSource, problemAt } from './source.js';
import { runSectionValidators } from './validators.js';

export type { TierlbConfig } from './registry.js';

export interface LoadOptions {
  /**
   * The sections the caller reads. Each must be registered (its owner's module imported), or the loader throws a
   * SectionRegistryError before reading anything: a missing import is a bug, never a silently unchecked section.
   */
  sections?: readonly SectionName[];
  /** the sections known to this load (default: the process's, filled by the section modules it imported) */
  registry?: SectionRegistry;
  /**
   * A file that has none of the top-level keywords is read as this one section alone (the standalone VRRP runner
   * takes a file that is just the `vrrp` section); its problems are placed in the file as it is written.
   */
  bareSection?: SectionName;
}

export interface LoadedConfig {
  file: string;
  config: TierlbConfig;
  source: ConfigSource;
  /** sections in the file that no module of this program registered: not checked here */
  unchecked: SectionName[];
  /** the file was read as this section alone (LoadOptions.bareSection); paths in it have no section prefix */
  bare?: SectionName;
}

export interface CheckResult {
  file: string;
  /** present when there are no problems */
  config?: TierlbConfig;
  /** the parsed source (absent only when the file could not be read) */
  source?: ConfigSource;
  problems: ConfigProblem[];
  /** sections in the file that no module of this program registered: not checked here */
  unchecked: SectionName[];
  /** the file was read as this section alone (LoadOptions.bareSection) */
  bare?: SectionName;
}

/** Check YAML text without throwing: every problem, sorted by place. */
export function checkConfigString(text: string, file = '<string>', opts: LoadOptions = {}): CheckResult {
  const registry = opts.registry ?? sections;
  registry.require([...(opts.sections ?? []), ...(opts.bareSection ? [opts.bareSection] : [])]);
  const { source, problems, fatal } = parseSource(text, file);
  if (fatal) return { file, source, problems: sortProblems(problems), unchecked: [] };
  let data: unknown = source.doc.toJS({ maxAliasCount: 1000 });
  if (data === null || data === undefined) data = {};
  if (typeof data !== 'object' || Array.isArray(data)) {
    problems.push(problemAt(source, [], `the config must be a mapping of sections (${SECTIONS.join(', ')})`));
    return { file, source, problems: sortProblems(problems), unchecked: [] };
  }
  const top = Object.keys(data as object);
  const bare =
    opts.bareSection && top.length > 0 && !top.some((k) => (SECTIONS as readonly string[]).includes(k))
      ? opts.bareSection
      : undefined;
  const root = (bare ? { [bare]: data } : data) as Record<string, unknown>;
  const schema = bare
    ? validateSchema(data, source, registry.sectionValidator(bare), bare)
    : validateSchema(data, source, registry.fileValidator());
  problems.push(...schema.problems);
  problems.push(...runSectionValidators(root, source, schema.sections, registry, bare));
  const unchecked = SECTIONS.filter((s) => Object.hasOwn(root, s) && !registry.has(s));
  const sorted = sortProblems(problems);
  const where = { file, source, unchecked, ...(bare ? { bare } : {}) };
  return sorted.length ? { ...where, problems: sorted } : { ...where, problems: [], config: root as TierlbConfig };
}

/** Check a file without throwing; an unreadable file is one problem without a place. */
export async function checkConfigFile(file: string, opts: LoadOptions = {}): Promise<CheckResult> {
  (opts.registry ?? sections).require([...(opts.sections ?? []), ...(opts.bareSection ? [opts.bareSection] : [])]);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why = err.code === 'ENOENT' ? 'no such file' : err.code === 'EISDIR' ? 'is a directory' : err.message;
    return {
      file,
      problems: [{ file, line: 0, column: 0, path: '', message: `cannot read: ${why}` }],
      unchecked: [],
    };
  }
  return checkConfigString(text, file, opts);
}

/** Load YAML text (tests, stdin); `file` is the name problems are reported under. Throws ConfigError. */
export function loadConfigString(text: string, file = '<string>', opts: LoadOptions = {}): LoadedConfig {
  return loaded(checkConfigString(text, file, opts));
}

/** Load a config file. Throws ConfigError with every problem found. */
export async function loadConfigFile(file: string, opts: LoadOptions = {}): Promise<LoadedConfig> {
  return loaded(await checkConfigFile(file, opts));
}

function loaded(r: CheckResult): LoadedConfig {
  if (!r.config || !r.source) throw new ConfigError(r.problems);
  return {
    file: r.file,
    config: r.config,
    source: r.source,
    unchecked: r.unchecked,
    ...(r.bare ? { bare: r.bare } : {}),
  };
}
