/**
 * `tierlb listeners --haproxy FILE`: a haproxy.cfg → the same listener plan (ListenersConfig) the equivalent YAML
 * gives. The file is tokenized (./tokenize.ts), its sections read (./global.ts, ./proxy.ts), the listeners section
 * built (./plan.ts), then checked by the very loader and checks the YAML goes through, their problems reported at the
 * haproxy.cfg line that produced the value, and resolved by the YAML's resolver.
 *
 * Every keyword tierlb does not run is reported with file:line:col: a warning where ignoring it changes nothing a
 * client sees (log, option httplog, ...), an error (the file is refused) where it would.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { ConfigError, type ConfigProblem, checkConfigString, pathToString } from '../../config/index.js';
import { type ListenersConfig, resolveListeners } from '../config.js';
import type { ListenersSection } from '../config-schema.js';
import '../config-schema.js'; // the listeners section's schema and checks
import { readListenerFiles } from '../tls-config.js';
import { Ctx } from './ctx.js';
import { type GlobalOut, otherSection, readGlobal } from './global.js';
import { emit, whereOf } from './plan.js';
import { cloneSettings, EMPTY_SETTINGS, type HaProxy, type ProxySettings, readProxy } from './proxy.js';
import { at, type Diagnostic, type Env, formatDiagnostic, tokenize } from './tokenize.js';

export type { Diagnostic } from './tokenize.js';
export { formatDiagnostic } from './tokenize.js';

export interface HaproxyLoadOptions {
  env?: Env;
  readFile?: (path: string) => string;
  isDir?: (path: string) => boolean;
}

export interface HaproxyLoadResult {
  file: string;
  /** the `listeners` section as the equivalent YAML would hold it */
  section: Record<string, unknown>;
  /** the resolved plan; absent when there are errors */
  config?: ListenersConfig;
  errors: Diagnostic[];
  warnings: Diagnostic[];
}

const realIsDir = (p: string) => existsSync(p) && statSync(p).isDirectory();

/** Read haproxy.cfg text; never throws. */
export function loadHaproxyCfgString(text: string, file: string, o: HaproxyLoadOptions = {}): HaproxyLoadResult {
  const t = tokenize(text, file, o.env ?? process.env);
  const c = new Ctx(o.readFile ?? ((p) => readFileSync(p, 'utf8')), o.isDir ?? realIsDir);
  c.errors.push(...t.errors);
  c.warnings.push(...t.warnings);
  const g: GlobalOut = { tls: { bind: {} }, serverVerify: 'required' };
  const defaults = new Map<string, ProxySettings>();
  let last: ProxySettings = EMPTY_SETTINGS;
  const proxies: HaProxy[] = [];
  const globals = t.sections.filter((s) => s.kind === 'global');
  // global first (crt-base and the TLS defaults apply to every bind line, wherever global is)
  for (const s of globals) readGlobal(c, s, g);
  for (const sec of t.sections) {
    if (sec.kind === 'global') continue;
    if (sec.kind !== 'defaults' && sec.kind !== 'frontend' && sec.kind !== 'backend' && sec.kind !== 'listen') {
      otherSection(c, sec);
      continue;
    }
    const w = sec.head.words;
    let name: string | undefined = w[1];
    let fromIdx = 2;
    if (sec.kind === 'defaults' && name === 'from') {
      name = undefined;
      fromIdx = 1;
    }
    let base = last;
    if (w[fromIdx] === 'from') {
      const d = defaults.get(w[fromIdx + 1] ?? '');
      if (!d) c.error(at(sec.head, fromIdx), `no defaults section named '${w[fromIdx + 1] ?? ''}' before this line`);
      else base = d;
      if (w.length > fromIdx + 2) c.extra(sec.head, fromIdx + 2);
    } else if (sec.kind !== 'listen' && w.length > 2) c.extra(sec.head, 2);
    if (sec.kind !== 'defaults' && !name) {
      c.error(at(sec.head), `'${sec.kind}' needs a name`);
      continue;
    }
    if (name !== undefined && !/^[A-Za-z0-9_.:-]+$/.test(name)) {
      c.error(at(sec.head, 1), `proxy name '${name}': letters, digits, '_', '.', ':', '-'`);
      continue;
    }
    const p = readProxy({ c, tls: g.tls }, sec, base);
    if (sec.kind === 'defaults') {
      last = cloneSettings(p);
      if (name) defaults.set(name, last);
    } else {
      if (sec.kind === 'backend') p.defaultBackend = undefined;
      proxies.push(p);
    }
  }
  const out = emit(c, g, proxies);
  const byPlace = (a: Diagnostic, b: Diagnostic) => a.line - b.line || a.col - b.col;
  for (const list of [c.errors, c.warnings]) {
    // one report per place and reason (a defaults line inherited by several proxies is reported once)
    const seen = new Set<string>();
    const kept = list.filter((d) => {
      const k = formatDiagnostic(d);
      return !seen.has(k) && seen.add(k);
    });
    list.splice(0, list.length, ...kept.sort(byPlace));
  }
  const result: HaproxyLoadResult = { file, section: out.section, errors: c.errors, warnings: c.warnings };
  if (c.errors.length > 0) return result;
  // the YAML's own checks, on what was built; problems are placed at the haproxy.cfg line behind the value
  const r = checkConfigString(JSON.stringify({ listeners: out.section }), file, { sections: ['listeners'] });
  if (r.problems.length > 0) {
    for (const p of r.problems) {
      const w = whereOf(out.where, p.path) ?? { file, line: 0, col: 0 };
      const what = p.path.replace(/^listeners\.?/, '');
      c.error(w, `${what ? `${what}: ` : ''}${p.message}`);
    }
    return result;
  }
  try {
    const cfg = resolveListeners(out.section as unknown as ListenersSection, file);
    // the certificate, key and CA files, read as the YAML's loader reads them; a bad one at its haproxy.cfg line
    for (const p of readListenerFiles(cfg)) {
      const path = pathToString(['listeners', ...p.path]);
      c.error(whereOf(out.where, path) ?? { file, line: 0, col: 0 }, `${pathToString(p.path)}: ${p.message}`);
    }
    if (c.errors.length === 0) result.config = cfg;
  } catch (e) {
    c.error({ file, line: 0, col: 0 }, (e as Error).message);
  }
  return result;
}

/** Read a haproxy.cfg file; never throws (an unreadable file is an error at line 0). */
export function loadHaproxyCfg(file: string, o: HaproxyLoadOptions = {}): HaproxyLoadResult {
  let text: string;
  try {
    text = (o.readFile ?? ((p) => readFileSync(p, 'utf8')))(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    return { file, section: {}, errors: [{ file, line: 0, col: 0, message: `cannot read: ${code}` }], warnings: [] };
  }
  return loadHaproxyCfgString(text, file, o);
}

/** The diagnostics as config problems (ConfigError's shape: file:line:col: reason). */
export function toProblems(ds: Diagnostic[]): ConfigProblem[] {
  return ds.map((d) => ({ file: d.file, line: d.line, column: d.col, path: '', message: d.message }));
}

/**
 * The plan of a haproxy.cfg, for the listeners primary (start and reload): warnings go to `warn` one
 * `file:line:col: reason` each; errors throw one ConfigError listing them all.
 */
export async function listenersConfigFromHaproxy(
  file: string,
  warn: (line: string) => void = () => {},
  o: HaproxyLoadOptions = {},
): Promise<ListenersConfig> {
  const r = loadHaproxyCfg(file, o);
  for (const w of r.warnings) warn(formatDiagnostic(w));
  if (r.errors.length > 0 || !r.config) throw new ConfigError(toProblems(r.errors));
  return r.config;
}
