/**
 * Running the sections' semantic checks (registered with the section registry, src/config/registry.ts) over a
 * loaded document, with every report placed at its file:line.
 *
 * An exception thrown by a validator is swallowed when the schema already reported problems in that section, and
 * reported as an internal error otherwise.
 */
import type { ConfigPath, ConfigProblem } from './problems.js';
import type { SectionContext, SectionName, SectionRegistry } from './registry.js';
import type { ConfigSource } from './source.js';
import { positionOf, problemAt } from './source.js';

export {
  registerSectionValidator,
  type SectionContext,
  type SectionName,
  type SectionValidator,
} from './registry.js';

/**
 * Run the registered validators of the sections present in `root`. `bare`: the document is that one section alone
 * (its paths start at the top of the file, not under the section's key).
 */
export function runSectionValidators(
  root: Record<string, unknown>,
  source: ConfigSource,
  schemaProblemSections: ReadonlySet<string>,
  registry: SectionRegistry,
  bare?: SectionName,
): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  for (const section of registry.names()) {
    if (!Object.hasOwn(root, section)) continue;
    const at = (path: ConfigPath): ConfigPath => (bare ? path : [section, ...path]);
    const ctx: SectionContext = {
      section,
      source,
      root,
      report: (path, message, opts) => problems.push(problemAt(source, at(path), message, opts)),
      positionOf: (path, opts) => positionOf(source, at(path), opts),
    };
    for (const fn of registry.validators(section)) {
      try {
        fn(root[section], ctx);
      } catch (e) {
        if (!schemaProblemSections.has(section))
          problems.push(problemAt(source, at([]), `internal error in the ${section} checks: ${String(e)}`));
      }
    }
  }
  return problems;
}
