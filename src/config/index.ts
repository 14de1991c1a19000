/** The config loader's public surface. */
export {
  type CheckResult,
  checkConfigFile,
  checkConfigString,
  type LoadedConfig,
  type LoadOptions,
  loadConfigFile,
  loadConfigString,
} from './load.js';
export {
  ConfigError,
  type ConfigPath,
  type ConfigProblem,
  ConfigValueError,
  formatProblem,
  pathToString,
} from './problems.js';
export {
  registerSection,
  registerSectionValidator,
  SECTIONS,
  type SectionContext,
  type SectionDef,
  type SectionName,
  SectionRegistry,
  SectionRegistryError,
  type SectionTypes,
  type SectionValidator,
  sections,
  type TierlbConfig,
} from './registry.js';
export { type ConfigSource, hasPath, type Position, parseSource, positionOf, problemAt } from './source.js';
