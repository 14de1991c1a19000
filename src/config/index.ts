/** The config loader's public surface. */
export {
  type CheckResult,
  checkConfigFile,
  checkConfigString,
  type LoadedConfig,
  loadConfigFile,
  loadConfigString,
  type TierlbConfig,
} from './load.js';
export { ConfigError, type ConfigPath, type ConfigProblem, formatProblem, pathToString } from './problems.js';
export { configSchema, SECTIONS } from './schema.js';
export { type ConfigSource, hasPath, type Position, parseSource, positionOf, problemAt } from './source.js';
export {
  registerSectionValidator,
  type SectionContext,
  type SectionName,
  type SectionValidator,
} from './validators.js';
