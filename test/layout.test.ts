/**
 * The layout's rules, checked on the source tree: imports run only downward between the rooms of src/, and no source
 * file grows past ~600 lines unless it is listed here with the reason. DEVELOPERS.md draws the same picture.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import test from 'ava';

const SRC = new URL('../src/', import.meta.url).pathname;

/** Each room and the rooms below it that it may import. A room not listed here is a test failure (add it). */
const MAY_IMPORT: Record<string, readonly string[]> = {
  common: [],
  sys: ['common'],
  config: ['common'],
  fwmark: ['common', 'sys', 'config'],
  overlay: ['common', 'sys', 'config'],
  l4: ['common', 'sys', 'config', 'fwmark'],
  ha: ['common', 'sys', 'config', 'fwmark', 'l4'],
  bgp: ['common', 'sys', 'config'],
  cluster: ['common', 'sys', 'config', 'bgp'],
  director: ['common', 'sys', 'config', 'fwmark', 'overlay', 'l4', 'ha', 'bgp', 'cluster'],
  listeners: ['common', 'sys', 'config'],
  lab: ['common', 'sys', 'config', 'fwmark', 'overlay', 'l4', 'ha', 'bgp', 'cluster', 'director', 'listeners'],
  cli: ['common', 'sys', 'config', 'fwmark', 'overlay', 'l4', 'ha', 'bgp', 'cluster', 'director', 'listeners', 'lab'],
};

/** Files allowed past the size bound, and why. */
const LONG_FILES: Record<string, string> = {
  'l4/adm/parse.ts': "ipvsadm's option table and its per-option checks, kept in the order of ipvsadm.c",
  'l4/engine.ts':
    'the per-packet decision (ip_vs_in/out, ICMP, defense) and the fast-path hand-off; to be split (issue 10 note)',
  'ha/vrrp/instance.ts': "one VRRP instance's run loop as keepalived's vrrp_scheduler (17 lines over the bound)",
};
const MAX_LINES = 600;

interface ImportEdge {
  file: string; // relative to src/
  target: string; // relative to src/
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(p);
    return e.name.endsWith('.ts') ? [p] : [];
  });
}

const IMPORT_RE = /(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)['"](\.{1,2}\/[^'"]+)['"]/gm;

/** Every relative import (static, type-only, side-effect and dynamic) of every file under src/. */
function importEdges(root = SRC): ImportEdge[] {
  const edges: ImportEdge[] = [];
  for (const abs of sourceFiles(root)) {
    const file = relative(root, abs);
    for (const m of readFileSync(abs, 'utf8').matchAll(IMPORT_RE)) {
      edges.push({ file, target: normalize(join(dirname(file), m[1])) });
    }
  }
  return edges;
}

const roomOf = (path: string): string => (path.includes('/') ? path.slice(0, path.indexOf('/')) : '.');

/** The edges that run uphill or sideways, as `file → target (room may import: …)`. */
function uphill(edges: ImportEdge[]): string[] {
  const bad: string[] = [];
  for (const { file, target } of edges) {
    const from = roomOf(file);
    const to = roomOf(target);
    if (from === to) continue;
    const allowed = MAY_IMPORT[from];
    if (!allowed) bad.push(`${file}: room '${from}' is not in MAY_IMPORT (every file lives in a room)`);
    else if (!allowed.includes(to))
      bad.push(`${file} → ${target} (${from} may import: ${allowed.join(', ') || 'nothing'})`);
  }
  return bad;
}

test('the checker itself: uphill and sideways imports are caught, downward ones pass', (t) => {
  const edges: ImportEdge[] = [
    { file: 'l4/engine.ts', target: 'common/clock.js' },
    { file: 'l4/datapath/worker.ts', target: 'ha/worker-ha.js' },
    { file: 'lab/lab.ts', target: 'cli/adm.js' },
    { file: 'listeners/pool.ts', target: 'l4/addr.js' },
    { file: 'common/errors.ts', target: 'config/problems.js' },
    { file: 'log.ts', target: 'common/clock.js' },
    { file: 'director/ha.ts', target: 'ha/checks/manager.js' },
  ];
  t.deepEqual(uphill(edges), [
    'l4/datapath/worker.ts → ha/worker-ha.js (l4 may import: common, sys, config, fwmark)',
    'lab/lab.ts → cli/adm.js (lab may import: common, sys, config, fwmark, overlay, l4, ha, bgp, cluster, director, listeners)',
    'listeners/pool.ts → l4/addr.js (listeners may import: common, sys, config)',
    'common/errors.ts → config/problems.js (common may import: nothing)',
    "log.ts: room '.' is not in MAY_IMPORT (every file lives in a room)",
  ]);
});

test('the import scanner sees static, type-only, side-effect and dynamic imports', (t) => {
  const text = [
    "import { a } from '../l4/a.js';",
    "import type { B } from './b.js';",
    "import '../ha/c.js';",
    "const { d } = await import('../lab/d.js');",
    "export { e } from '../cli/e.js';",
  ].join('\n');
  const found = [...text.matchAll(IMPORT_RE)].map((m) => m[1]);
  t.deepEqual(found, ['../l4/a.js', './b.js', '../ha/c.js', '../lab/d.js', '../cli/e.js']);
});

test('imports under src/ run only downward (common ← sys ← config ← fwmark/overlay ← l4 ← ha ← director; listeners; lab; cli)', (t) => {
  const edges = importEdges();
  t.true(edges.length > 300, `scanned ${edges.length} imports`);
  t.deepEqual(uphill(edges), []);
});

test(`no source file is longer than ${MAX_LINES} lines unless listed with its reason`, (t) => {
  const long = sourceFiles(SRC)
    .map((abs) => ({ file: relative(SRC, abs), lines: readFileSync(abs, 'utf8').split('\n').length }))
    .filter((f) => f.lines > MAX_LINES && !LONG_FILES[f.file])
    .map((f) => `${f.file}: ${f.lines} lines`);
  t.deepEqual(long, []);
});

test('every error src/ throws is typed: no plain `new Error(` (a TierlbError subclass with a stable code instead)', (t) => {
  const plain = sourceFiles(SRC).flatMap((abs) =>
    readFileSync(abs, 'utf8')
      .split('\n')
      .flatMap((line, i) => (/\bnew Error\(/.test(line) ? [`${relative(SRC, abs)}:${i + 1}`] : [])),
  );
  t.deepEqual(plain, []);
});
