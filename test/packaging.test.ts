/**
 * The service units and the dashboard shipped under packaging/: the units pass systemd's own checker, ask only for the
 * options `tierlb` has, and the dashboard queries only metrics the daemons export.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';

const ROOT = new URL('..', import.meta.url).pathname;
const UNITS = ['tierlb-director.service', 'tierlb-listeners.service'];
const BIN = join(ROOT, 'bin/tierlb.js');

/** `systemd-analyze verify` of unit texts (ExecStart pointed at this checkout's bin): its exit code and what it said. */
function verify(units: Record<string, string>): { status: number | null; said: string } {
  const dir = mkdtempSync(join(tmpdir(), 'tierlb-units-'));
  try {
    const paths = Object.entries(units).map(([name, text]) => {
      const p = join(dir, name);
      writeFileSync(p, text.replaceAll('/usr/local/bin/tierlb', BIN));
      return p;
    });
    const r = spawnSync('systemd-analyze', ['verify', ...paths], { encoding: 'utf8' });
    if (r.error) throw r.error;
    return { status: r.status, said: `${r.stdout}${r.stderr}`.trim() };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const unitText = (u: string) => readFileSync(join(ROOT, 'packaging/systemd', u), 'utf8');

test('systemd-analyze verify accepts both units without a warning; a misspelt key is caught', (t) => {
  const units = Object.fromEntries(UNITS.map((u) => [u, unitText(u)]));
  t.deepEqual(verify(units), { status: 0, said: '' });
  const broken = verify({ 'x.service': unitText(UNITS[0]).replace('ProtectHome=yes', 'ProtectHom=yes') });
  t.regex(broken.said, /Unknown key 'ProtectHom'/);
});

test('each unit runs a tierlb command with options that command knows, reloads by SIGHUP, restarts on failure', (t) => {
  for (const u of UNITS) {
    const text = unitText(u);
    const exec = /^ExecStart=\/usr\/local\/bin\/tierlb (\S+)(.*)$/m.exec(text);
    t.truthy(exec, `${u}: ExecStart runs /usr/local/bin/tierlb`);
    if (!exec) continue;
    const usage = spawnSync(process.execPath, [BIN, exec[1], '--help'], { encoding: 'utf8' });
    const help = `${usage.stdout}${usage.stderr}`;
    for (const opt of exec[2].match(/--[a-z-]+/g) ?? [])
      t.true(help.includes(opt), `${u}: tierlb ${exec[1]} knows ${opt}`);
    t.regex(text, /^ExecReload=\/bin\/kill -HUP \$MAINPID$/m);
    t.regex(text, /^Restart=on-failure$/m);
    t.regex(text, /^User=tierlb$/m);
    t.regex(text, /^NoNewPrivileges=yes$/m);
    t.regex(text, /^ProtectSystem=strict$/m);
    // the bounding set is exactly the ambient set: nothing the service is not given can be gained
    const amb = /^AmbientCapabilities=(.*)$/m.exec(text)?.[1];
    t.is(/^CapabilityBoundingSet=(.*)$/m.exec(text)?.[1], amb);
  }
});

/** Metric names a PromQL expression uses (identifiers starting with tierlb_). */
function metricNames(expr: string): string[] {
  return [...expr.matchAll(/\btierlb_[a-z0-9_]+/g)].map((m) => m[0]);
}

test('the Grafana dashboard queries only metrics that the director or the listeners export', (t) => {
  const exported = ['src/director/metrics.ts', 'src/listeners/metrics.ts']
    .map((f) => readFileSync(join(ROOT, f), 'utf8'))
    .join('\n');
  const known = (name: string) => exported.includes(`'${name}'`);
  t.false(known('tierlb_no_such_metric_total'), 'the check itself can fail');
  const dash = JSON.parse(readFileSync(join(ROOT, 'packaging/grafana/tierlb-dashboard.json'), 'utf8'));
  const exprs: string[] = [];
  const walk = (p: { targets?: { expr: string }[]; panels?: unknown[] }) => {
    for (const tg of p.targets ?? []) exprs.push(tg.expr);
    for (const c of p.panels ?? []) walk(c as typeof p);
  };
  walk(dash);
  for (const v of dash.templating.list) if (v.definition) exprs.push(v.definition);
  t.true(exprs.length >= 20, `${exprs.length} queries`);
  const unknown = exprs.flatMap(metricNames).filter((n) => !known(n));
  t.deepEqual([...new Set(unknown)], []);
});
