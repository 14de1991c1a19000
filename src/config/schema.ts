/**
 * Turning ajv's errors into positioned problems. The schemas themselves are the sections' own (registered with
 * src/config/registry.ts, which composes and compiles them); this file imports none of them.
 */
import type { ErrorObject, ValidateFunction } from 'ajv';
import type { ConfigPath, ConfigProblem } from './problems.js';
import { type ConfigSource, problemAt } from './source.js';

/** JSON pointer (ajv's instancePath) → path segments; array indexes become numbers. */
export function pointerToPath(pointer: string): (string | number)[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^(0|[1-9]\d*)$/.test(s) ? Number(s) : s));
}

/**
 * Validate `data` with a compiled schema. Returns the problems and the sections they are in (the first path step;
 * `bare`: the document is that section alone).
 */
export function validateSchema(
  data: unknown,
  source: ConfigSource,
  validate: ValidateFunction,
  bare?: string,
): { problems: ConfigProblem[]; sections: Set<string> } {
  const problems: ConfigProblem[] = [];
  const sections = new Set<string>();
  if (validate(data)) return { problems, sections };
  const errors = validate.errors ?? [];
  // a failed anyOf/oneOf also reports each branch's errors; keep those (they say what is wrong) and drop the summary
  // unless it is alone at its place
  const branchy = new Set(['anyOf', 'oneOf']);
  for (const e of errors) {
    if (branchy.has(e.keyword) && errors.some((o) => o !== e && o.schemaPath.startsWith(`${e.schemaPath}/`))) continue;
    const path = pointerToPath(e.instancePath);
    if (bare) sections.add(bare);
    else if (typeof path[0] === 'string') sections.add(path[0]);
    problems.push(ajvProblem(e, path, source));
  }
  return { problems, sections };
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return `string '${v}'`;
  return `${typeof v} ${String(v)}`;
}

const TYPE_NAMES: Record<string, string> = {
  object: 'a mapping',
  array: 'a list',
  string: 'a string',
  integer: 'an integer',
  number: 'a number',
  boolean: 'true or false',
  null: 'null',
};

function ajvProblem(e: ErrorObject, path: ConfigPath, source: ConfigSource): ConfigProblem {
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'additionalProperties': {
      const key = String(p.additionalProperty);
      const known = Object.keys((e.parentSchema?.properties as object | undefined) ?? {});
      const near = closest(key, known);
      const hint = near ? ` (did you mean '${near}'?)` : known.length ? ` (known keys: ${known.join(', ')})` : '';
      return problemAt(source, [...path, key], `unknown key '${key}'${hint}`, { key: true });
    }
    case 'required':
      return problemAt(source, path, `missing required key '${String(p.missingProperty)}'`);
    case 'type': {
      const want = ([] as string[]).concat(p.type as string | string[]).map((t) => TYPE_NAMES[t] ?? t);
      return problemAt(source, path, `must be ${want.join(' or ')}, got ${describe(e.data)}`);
    }
    case 'enum':
      return problemAt(
        source,
        path,
        `must be one of ${(p.allowedValues as unknown[]).map(String).join(', ')}, got ${describe(e.data)}`,
      );
    case 'const':
      return problemAt(source, path, `must be ${String(p.allowedValue)}, got ${describe(e.data)}`);
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      return problemAt(source, path, `${e.message}, got ${String(e.data)}`);
    default:
      return problemAt(source, path, e.message ?? e.keyword);
  }
}

/** The known key nearest to a misspelt one (edit distance ≤ 2, or a prefix). */
function closest(key: string, known: string[]): string | undefined {
  let best: string | undefined;
  let bestD = 3;
  for (const k of known) {
    const d = distance(key.toLowerCase(), k.toLowerCase());
    if (d < bestD) {
      best = k;
      bestD = d;
    }
  }
  return best;
}

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length];
}
