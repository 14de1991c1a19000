/**
 * Semantic checks per config section, beyond what the JSON schema can say (duplicates, cross-field rules).
 * A section's owner registers its validator as a side effect of a module the loader imports — the natural place is
 * the section's own `src/<area>/config-schema.ts`, which src/config/schema.ts already imports:
 *
 *   registerSectionValidator('listeners', (section, ctx) => {
 *     if (...) ctx.report([0, 'port'], 'port 80 is used twice');
 *   });
 *
 * Validators run even when the schema found problems in their section (so a file's problems all come out at once):
 * they must not trust types — check before use. An exception thrown by a validator is swallowed when the schema
 * already reported problems in that section, and reported as an internal error otherwise.
 */
import type { ConfigPath, ConfigProblem } from './problems.js';
import type { ConfigSource, Position } from './source.js';
import { positionOf, problemAt } from './source.js';

export type SectionName = 'director' | 'vrrp' | 'listeners' | 'overlay' | 'lab' | 'bgp' | 'cluster';

export interface SectionContext {
  /** the section's name, also the first element of every absolute path */
  readonly section: SectionName;
  readonly source: ConfigSource;
  /** the whole (schema-checked, possibly invalid) config, for cross-section checks */
  readonly root: Record<string, unknown>;
  /** Report a problem at a path relative to the section (`['services', 0, 'vip']`). `key` points at the key. */
  report(path: ConfigPath, message: string, opts?: { key?: boolean }): void;
  /** Where a path relative to the section starts, e.g. to say "first defined at line N". */
  positionOf(path: ConfigPath, opts?: { key?: boolean }): Position;
}

export type SectionValidator = (section: unknown, ctx: SectionContext) => void;

const validators = new Map<SectionName, SectionValidator[]>();

/** Add a semantic check for a section; several per section are allowed and run in registration order. */
export function registerSectionValidator(section: SectionName, fn: SectionValidator): void {
  const list = validators.get(section) ?? [];
  if (!list.includes(fn)) list.push(fn);
  validators.set(section, list);
}

/** Run every registered validator over the sections present in `root`. */
export function runSectionValidators(
  root: Record<string, unknown>,
  source: ConfigSource,
  schemaProblemSections: ReadonlySet<string>,
): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  for (const [section, fns] of validators) {
    if (!Object.hasOwn(root, section)) continue;
    const ctx: SectionContext = {
      section,
      source,
      root,
      report: (path, message, opts) => problems.push(problemAt(source, [section, ...path], message, opts)),
      positionOf: (path, opts) => positionOf(source, [section, ...path], opts),
    };
    for (const fn of fns) {
      try {
        fn(root[section], ctx);
      } catch (e) {
        if (!schemaProblemSections.has(section))
          problems.push(problemAt(source, [section], `internal error in the ${section} checks: ${String(e)}`));
      }
    }
  }
  return problems;
}
