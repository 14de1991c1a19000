import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import {
  ConfigError,
  checkConfigString,
  formatProblem,
  loadConfigFile,
  loadConfigString,
  parseSource,
  positionOf,
  registerSectionValidator,
} from '../src/config/index.js';
import '../src/director/config.js'; // registers the director section with the loader

const lines = (text: string, file = 'c.yaml') => checkConfigString(text, file).problems.map(formatProblem);

test('an empty file is an empty config', (t) => {
  t.deepEqual(loadConfigString('', 'e.yaml').config, {});
  t.deepEqual(loadConfigString('# nothing yet\n', 'e.yaml').config, {});
});

test('YAML syntax errors: every one, at its line, and no phantom schema problems', (t) => {
  const text = `director:
  services:
    - vip: 10.0.0.1
      port: 80: 81
      scheduler: rr
    - fwmark: 5
      scheduler: rr
      real_servers:
        - {address: 10.0.0.1, weight: 1
        - {address: 10.0.0.2}
`;
  const err = t.throws(() => loadConfigString(text, 's.yaml'), { instanceOf: ConfigError });
  t.is(err.code, 'ECONFIG');
  t.deepEqual(err.problems.map(formatProblem), [
    's.yaml:4:13: YAML syntax error: Nested mappings are not allowed in compact mappings',
    's.yaml:10:9: YAML syntax error: Flow map in block collection must be sufficiently indented and end with a }',
  ]);
  t.is(err.problems[0].path, '');
});

test('an unclosed quote is a syntax error', (t) => {
  const p = lines('director:\n  services:\n    - vip: "10.0.0.1\n      port: 80\n');
  t.is(p.length, 1);
  t.regex(p[0], /^c\.yaml:\d+:\d+: YAML syntax error: Missing closing "quote/);
});

test('a duplicate key is reported with the schema problems', (t) => {
  t.deepEqual(
    lines(`director:
  services:
    - vip: 10.0.0.1
      port: 80
      port: 81
      scheduler: rr
      wat: 1
`),
    [
      "c.yaml:5:7: duplicate key 'port'",
      "c.yaml:7:7: director.services[0].wat: unknown key 'wat' (known keys: name, vip, port, protocol, fwmark, family, scheduler, sched_flags, persistent, netmask, ops, match, real_servers, delay_loop, quorum, hysteresis, quorum_up, quorum_down, alpha, omega, ha_suspend, virtualhost, sorry_server)",
    ],
  );
});

test('unknown sections and wrong types at the top', (t) => {
  t.deepEqual(lines('directr:\n  services: []\n'), [
    "c.yaml:1:1: directr: unknown key 'directr' (did you mean 'director'?)",
  ]);
  t.deepEqual(lines('director: []\n'), ['c.yaml:1:11: director: must be a mapping, got a list']);
  t.deepEqual(lines('- a\n- b\n'), [
    'c.yaml:1:1: the config must be a mapping of sections (director, vrrp, listeners, overlay, lab, bgp, cluster)',
  ]);
  t.deepEqual(lines('director:\n  timeouts: { tcp: 0, udp: x }\n  sysctl: { sloppy_tcp: 1 }\n'), [
    'c.yaml:2:20: director.timeouts.tcp: must be >= 1, got 0',
    "c.yaml:2:28: director.timeouts.udp: must be an integer, got string 'x'",
    'c.yaml:3:25: director.sysctl.sloppy_tcp: must be true or false, got number 1',
  ]);
});

test('positionOf: values, keys, and the deepest existing ancestor of a missing path', (t) => {
  const { source } = parseSource('director:\n  services:\n    - vip: 10.0.0.1\n      port: 80\n', 'p.yaml');
  t.deepEqual(positionOf(source, ['director', 'services', 0, 'port']), { line: 4, column: 13 });
  t.deepEqual(positionOf(source, ['director', 'services', 0, 'port'], { key: true }), { line: 4, column: 7 });
  t.deepEqual(positionOf(source, ['director', 'services', 0]), { line: 3, column: 7 });
  t.deepEqual(positionOf(source, ['director', 'services', 0, 'scheduler']), { line: 3, column: 7 });
  t.deepEqual(positionOf(source, ['director', 'services', 3]), { line: 3, column: 5 });
});

test('a registered section validator reports at YAML paths relative to its section', (t) => {
  registerSectionValidator('director', (section, ctx) => {
    const s = section as { services?: { name?: string }[] };
    s.services?.forEach((svc, i) => {
      if (svc.name === 'forbidden')
        ctx.report(
          ['services', i, 'name'],
          `name not allowed (service starts on line ${ctx.positionOf(['services', i]).line})`,
        );
    });
  });
  t.deepEqual(
    lines('director:\n  services:\n    - name: forbidden\n      vip: 10.0.0.1\n      port: 80\n      scheduler: rr\n'),
    ['c.yaml:3:13: director.services[0].name: name not allowed (service starts on line 3)'],
  );
});

test('loadConfigFile: a missing file is a problem without a place; a good file loads', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tierlb-config-'));
  try {
    const missing = join(dir, 'nope.yaml');
    const err = await t.throwsAsync(loadConfigFile(missing), { instanceOf: ConfigError });
    t.deepEqual(err.problems.map(formatProblem), [`${missing}: cannot read: no such file`]);
    const good = join(dir, 'good.yaml');
    writeFileSync(good, 'director:\n  services:\n    - { vip: 10.0.0.1, port: 80, scheduler: rr }\n');
    const loaded = await loadConfigFile(good);
    t.is(loaded.file, good);
    t.is(loaded.config.director?.services?.[0].vip, '10.0.0.1');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
