/**
 * The section registry: src/config knows the top-level keywords as data and checks the sections whose owners
 * registered; a section not registered in this program is left unchecked (named in `unchecked`), and a caller that
 * reads a section nobody registered is a bug thrown before any file is read. Each daemon entry registers the sections
 * it loads: run alone in a fresh process, its loader rejects a bad section with file:line.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import {
  checkConfigString,
  formatProblem,
  SECTIONS,
  SectionRegistry,
  SectionRegistryError,
} from '../src/config/index.js';

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '..');
const dir = mkdtempSync(join(tmpdir(), 'tierlb-sections-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

const portSchema = { type: 'object', additionalProperties: false, properties: { port: { type: 'integer' } } };

/** A registry with only a toy `director` section (its own schema and one check). */
function onlyDirector(): SectionRegistry {
  return new SectionRegistry().register({
    name: 'director',
    schema: portSchema,
    validate: (s, ctx) => {
      if ((s as { port?: unknown } | null)?.port === 0) ctx.report(['port'], 'port 0 is not a port');
    },
  });
}

const SHARED = `director:
  port: 0
listeners:
  this: is not a listeners section
lab: {}
`;

test('only the registered sections are checked; the others are named in unchecked', (t) => {
  const r = checkConfigString(SHARED, 's.yaml', { registry: onlyDirector() });
  t.deepEqual(r.problems.map(formatProblem), ['s.yaml:2:9: director.port: port 0 is not a port']);
  t.deepEqual(r.unchecked, ['listeners', 'lab']);
  const ok = checkConfigString(SHARED.replace('port: 0', 'port: 80'), 's.yaml', { registry: onlyDirector() });
  t.deepEqual(ok.problems, []);
  t.deepEqual(ok.config, { director: { port: 80 }, listeners: { this: 'is not a listeners section' }, lab: {} });
  // the schema of a registered section still applies
  t.deepEqual(
    checkConfigString('director:\n  prot: 80\n', 's.yaml', { registry: onlyDirector() }).problems.map(formatProblem),
    ["s.yaml:2:3: director.prot: unknown key 'prot' (did you mean 'port'?)"],
  );
});

test('a misspelt top-level keyword is reported with did you mean, whatever is registered', (t) => {
  for (const registry of [new SectionRegistry(), onlyDirector()])
    t.deepEqual(checkConfigString('listners:\n  workers: 2\n', 'x.yaml', { registry }).problems.map(formatProblem), [
      "x.yaml:1:1: listners: unknown key 'listners' (did you mean 'listeners'?)",
    ]);
  t.deepEqual([...SECTIONS], ['director', 'vrrp', 'listeners', 'overlay', 'lab', 'bgp', 'cluster']);
});

test('reading a section nobody registered is a program bug, thrown before the file is read', (t) => {
  const registry = onlyDirector();
  const e = t.throws(() => checkConfigString('listeners: {}\n', 'x.yaml', { registry, sections: ['listeners'] }), {
    instanceOf: SectionRegistryError,
  });
  t.is(e?.code, 'ECONFIG_SECTION_UNREGISTERED');
  t.regex(e?.message ?? '', /'listeners' config section is read but not registered/);
  t.notThrows(() => checkConfigString('director: {}\n', 'x.yaml', { registry, sections: ['director'] }));
});

test('one module owns a section: a second, different schema is refused; an unknown name too', (t) => {
  const registry = onlyDirector();
  t.is(
    t.throws(() => registry.register({ name: 'director', schema: { type: 'object' } }), {
      instanceOf: SectionRegistryError,
    })?.code,
    'ECONFIG_SECTION_TWICE',
  );
  t.notThrows(() => registry.register({ name: 'director', schema: portSchema }));
  t.is(
    t.throws(() => registry.register({ name: 'frontend' as 'lab', schema: {} }), { instanceOf: SectionRegistryError })
      ?.code,
    'ECONFIG_SECTION_UNKNOWN',
  );
});

test('a file that is one section alone (bareSection) is checked with its places in the file', (t) => {
  const registry = onlyDirector();
  const r = checkConfigString('# just the section\nport: 0\nwat: 1\n', 'b.yaml', { registry, bareSection: 'director' });
  t.deepEqual(r.problems.map(formatProblem), [
    'b.yaml:2:7: port: port 0 is not a port',
    "b.yaml:3:1: wat: unknown key 'wat' (known keys: port)",
  ]);
  const ok = checkConfigString('port: 80\n', 'b.yaml', { registry, bareSection: 'director' });
  t.deepEqual(ok.config, { director: { port: 80 } });
  t.is(ok.bare, 'director');
  // a file with top-level keywords is read as usual
  t.is(checkConfigString('director: { port: 80 }\n', 'b.yaml', { registry, bareSection: 'director' }).bare, undefined);
});

test('src/config imports no section (only its own files, src/common and packages)', (t) => {
  const cfgDir = join(ROOT, 'src', 'config');
  for (const f of readdirSync(cfgDir)) {
    const text = readFileSync(join(cfgDir, f), 'utf8');
    for (const m of text.matchAll(/(?:from|import)\s+'(\.[^']+)'/g))
      t.regex(m[1], /^\.\/|^\.\.\/common\//, `${f} imports ${m[1]}`);
  }
});

/** Run `code` (an ES module body) in a fresh process: only what it imports is registered there. */
async function fresh(code: string): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
      cwd: ROOT,
      env: { ...process.env, LOG_LEVEL: 'silent' },
    });
    return { code: 0, ...r };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}

/** The CLI entry `tierlb ARGV` in a fresh process (main.ts loads only that command's module). */
const cli = (argv: string[]) =>
  fresh(`import { main } from './src/cli/main.ts'; process.exitCode = await main(${JSON.stringify(argv)});`);

test('tierlb director: a bad director and a bad vrrp section are refused with file:line, nothing started', async (t) => {
  const p = file(
    'director.yaml',
    [
      'director:',
      '  services:',
      '    - { vip: 10.0.0.1, port: 80, scheduler: rrr }',
      'vrrp:',
      '  instances:',
      '    - { name: VI_1, interface: eth0, virtual_router_id: 300, virtual_ipaddress: [10.0.0.100/24] }',
      '',
    ].join('\n'),
  );
  const r = await cli(['director', '--config', p, '--socket', join(dir, 'd.sock')]);
  t.is(r.code, 1);
  t.regex(r.stderr, new RegExp(`${p}:3:\\d+: director\\.services\\[0\\]\\.scheduler: `));
  t.regex(r.stderr, new RegExp(`${p}:6:\\d+: vrrp\\.instances\\[0\\]\\.virtual_router_id: must be <= 255`));
});

test('tierlb listeners check: a bad listeners section is refused with file:line', async (t) => {
  const p = file('listeners.yaml', 'listeners:\n  workers: 2\n  listen:\n    - { name: web, bind: 0.0.0.0:80 }\n');
  const r = await cli(['listeners', 'check', '--config', p]);
  t.is(r.code, 1);
  t.regex(r.stderr, new RegExp(`${p}:4:\\d+: listeners\\.listen\\[0\\]: missing required key 'servers'`));
});

test('tierlb overlay: a bad overlay section is refused with file:line', async (t) => {
  const p = file('overlay.yaml', 'overlay:\n  networks:\n    - { vni: 0 }\n');
  const r = await cli(['overlay', 'up', '--config', p, '--dry-run']);
  t.is(r.code, 1);
  t.regex(r.stderr, new RegExp(`${p}:3:\\d+: overlay\\.networks\\[0\\]`));
});

test('the standalone VRRP runner and the lab load through the same loader, with file:line', async (t) => {
  const v = file('vrrp.yaml', 'vrrp:\n  instances:\n    - { name: VI_1, interface: eth0, virtual_router_id: 0 }\n');
  const r = await fresh(
    `import { main } from './src/ha/vrrp-main.ts'; process.exitCode = await main(['--config', ${JSON.stringify(v)}]);`,
  );
  t.is(r.code, 1);
  t.regex(r.stderr, new RegExp(`${v}:3:\\d+: vrrp\\.instances\\[0\\]\\.virtual_router_id: must be >= 1`));
  const l = file('lab.yaml', 'lab:\n  prefix: Bad-Prefix\n');
  const lab = await fresh(
    `import { loadLabConfig } from './src/lab/lab.ts'; try { await loadLabConfig(${JSON.stringify(l)}); } catch (e) { process.stderr.write(e.code + '\\n' + e.message); process.exitCode = 1; }`,
  );
  t.is(lab.code, 1);
  t.regex(lab.stderr, /^ECONFIG\n/);
  t.regex(lab.stderr, new RegExp(`${l}:2:\\d+: lab\\.prefix: `));
});
