/**
 * The section registry: each config section's owner registers its JSON schema and semantic checks here, as
 * HAProxy's keyword tables are filled by the modules that own the keywords; src/config itself imports no section.
 *
 *   // src/listeners/config-schema.ts
 *   registerSection({ name: 'listeners', schema: listenersSchema, validate: validateListeners });
 *
 * The top-level keywords (SECTIONS) are data the loader always knows, so a misspelt section is reported with
 * "did you mean" whichever sections are registered. A section is checked (schema and semantic checks) when its owner
 * registered it in this process; a section the file has but this process did not register is left unchecked and
 * named in the loader's `unchecked` (a daemon reads only its own sections of a shared file; `tierlb config check`
 * registers them all). A caller names the sections it reads (`sections:` of the loaders): one of them not registered
 * is a bug in the program (a missing import), thrown as a SectionRegistryError before any file is read.
 */
import { Ajv, type ValidateFunction } from 'ajv';
import { TierlbError } from '../common/errors.js';
import type { ConfigPath } from './problems.js';
import type { ConfigSource, Position } from './source.js';

/** The top-level keywords of a tierlb config file, in the order the docs list them. */
export const SECTIONS = ['director', 'vrrp', 'listeners', 'overlay', 'lab', 'bgp', 'cluster'] as const;

export type SectionName = (typeof SECTIONS)[number];

/**
 * The typed shape of a section, filled in by its owner through declaration merging:
 *
 *   declare module '../config/registry.js' { interface SectionTypes { director: DirectorConfig } }
 *
 * A section nobody typed is `unknown`.
 */
// biome-ignore lint/suspicious/noEmptyInterface: filled in by the sections (declaration merging)
export interface SectionTypes {}

/** A loaded config: each section typed by its owner (SectionTypes), `unknown` otherwise. */
export type TierlbConfig = { [K in SectionName]?: K extends keyof SectionTypes ? SectionTypes[K] : unknown };

export interface SectionContext {
  /** the section's name */
  readonly section: SectionName;
  readonly source: ConfigSource;
  /** the whole (schema-checked, possibly invalid) config, for cross-section checks */
  readonly root: Record<string, unknown>;
  /** Report a problem at a path relative to the section (`['services', 0, 'vip']`). `key` points at the key. */
  report(path: ConfigPath, message: string, opts?: { key?: boolean }): void;
  /** Where a path relative to the section starts, e.g. to say "first defined at line N". */
  positionOf(path: ConfigPath, opts?: { key?: boolean }): Position;
}

/**
 * A semantic check of one section. Validators run even when the schema found problems in their section (so a file's
 * problems all come out at once): they must not trust types — check before use.
 */
export type SectionValidator = (section: unknown, ctx: SectionContext) => void;

export interface SectionDef {
  name: SectionName;
  /** the section's JSON schema (ajv, draft-07) */
  schema: object;
  /** its semantic checks, beyond what the schema can say */
  validate?: SectionValidator;
}

export type SectionRegistryErrorCode =
  | 'ECONFIG_SECTION_UNKNOWN' // a name that is not one of SECTIONS
  | 'ECONFIG_SECTION_TWICE' // two different schemas for one section
  | 'ECONFIG_SECTION_UNREGISTERED'; // a caller reads a section nobody registered

/** A program bug in the use of the registry (never a problem of the config file). */
export class SectionRegistryError extends TierlbError {
  constructor(
    override readonly code: SectionRegistryErrorCode,
    message: string,
  ) {
    super(code, message);
    this.name = 'SectionRegistryError';
  }
}

interface Entry {
  schema: object;
  validators: SectionValidator[];
}

function assertSection(name: string): asserts name is SectionName {
  if (!(SECTIONS as readonly string[]).includes(name))
    throw new SectionRegistryError(
      'ECONFIG_SECTION_UNKNOWN',
      `'${name}' is not a config section (${SECTIONS.join(', ')}): add it to SECTIONS in src/config/registry.ts`,
    );
}

/** The sections one loader knows. The process has one (`sections`); tests make their own. */
export class SectionRegistry {
  private readonly entries = new Map<SectionName, Entry>();
  private composed: ValidateFunction | undefined;
  private readonly alone = new Map<SectionName, ValidateFunction>();

  /** Register a section's schema (and its semantic check). Registering the same schema again adds nothing. */
  register(def: SectionDef): this {
    assertSection(def.name);
    const had = this.entries.get(def.name);
    if (had && had.schema !== def.schema)
      throw new SectionRegistryError(
        'ECONFIG_SECTION_TWICE',
        `the '${def.name}' section is registered twice with different schemas: one module owns a section`,
      );
    const entry = had ?? { schema: def.schema, validators: [] };
    if (def.validate && !entry.validators.includes(def.validate)) entry.validators.push(def.validate);
    this.entries.set(def.name, entry);
    this.composed = undefined;
    this.alone.delete(def.name);
    return this;
  }

  /** Add one more semantic check to a registered section; runs after the others, in registration order. */
  addValidator(name: SectionName, fn: SectionValidator): this {
    assertSection(name);
    const entry = this.entries.get(name);
    if (!entry)
      throw new SectionRegistryError(
        'ECONFIG_SECTION_UNREGISTERED',
        `a check is added to the '${name}' config section before the section is registered: import its owner's section module first`,
      );
    if (!entry.validators.includes(fn)) entry.validators.push(fn);
    return this;
  }

  has(name: string): boolean {
    return this.entries.has(name as SectionName);
  }

  /** The registered sections, in SECTIONS order. */
  names(): SectionName[] {
    return SECTIONS.filter((s) => this.entries.has(s));
  }

  validators(name: SectionName): readonly SectionValidator[] {
    return this.entries.get(name)?.validators ?? [];
  }

  /** Throws unless every one of `names` is registered (a missing import in the program that reads them). */
  require(names: readonly string[]): Map<SectionName, Entry> {
    for (const n of names) {
      assertSection(n);
      if (!this.entries.has(n))
        throw new SectionRegistryError(
          'ECONFIG_SECTION_UNREGISTERED',
          `the '${n}' config section is read but not registered in this program: import its owner's section module (see DEVELOPERS.md, "Config sections")`,
        );
    }
    return this.entries;
  }

  /**
   * The schema of a whole file: every top-level keyword is known (a typo is reported with "did you mean"); a section
   * not registered accepts anything (it is left unchecked).
   */
  fileSchema(): object {
    return {
      type: 'object',
      additionalProperties: false,
      properties: Object.fromEntries(SECTIONS.map((s) => [s, this.entries.get(s)?.schema ?? {}])),
    };
  }

  /** The compiled schema of a whole file. */
  fileValidator(): ValidateFunction {
    this.composed ??= newAjv().compile(this.fileSchema());
    return this.composed;
  }

  /** The compiled schema of one registered section, for a file that is that section alone. */
  sectionValidator(name: SectionName): ValidateFunction {
    const entry = this.require([name]).get(name) as Entry;
    let v = this.alone.get(name);
    if (!v) {
      v = newAjv().compile(entry.schema);
      this.alone.set(name, v);
    }
    return v;
  }
}

// allErrors: every problem at once; verbose: the parent schema, to suggest the key that was meant
const newAjv = () => new Ajv({ allErrors: true, verbose: true, allowUnionTypes: true });

/** This process's sections: the ones whose owners' modules it imported. */
export const sections = new SectionRegistry();

/** Register a section with this process's loader (call it at the top level of the section's own module). */
export function registerSection(def: SectionDef): void {
  sections.register(def);
}

/** Add one more semantic check to a section registered in this process. */
export function registerSectionValidator(name: SectionName, fn: SectionValidator): void {
  sections.addValidator(name, fn);
}
