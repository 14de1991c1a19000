import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { run } from '../src/cli/config.js';
import { loadConfigFile } from '../src/config/index.js';
import { directorFromConfig } from '../src/director/config.js';

async function cli(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await run(argv, {
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
  });
  return { code, out, err };
}

const dir = mkdtempSync(join(tmpdir(), 'tierlb-config-cli-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

test('config check: a good file prints a summary and exits 0', async (t) => {
  const p = file(
    'good.yaml',
    'director:\n  services:\n    - vip: 10.0.0.1\n      port: 80\n      scheduler: rr\n      real_servers: [{ address: 10.0.0.2 }, { address: 10.0.0.3 }]\n',
  );
  const r = await cli(['check', p]);
  t.is(r.code, 0);
  t.is(r.err, '');
  t.is(r.out, `${p}: ok — 1 service, 2 real servers, 0 listeners, 0 vrrp instances, overlay: no, lab: no\n`);
});

test("config check: the summary counts the listen entries and the vrrp instances, not the sections' keys", async (t) => {
  const p = file(
    'l7-vrrp.yaml',
    [
      'listeners:',
      '  workers: 2',
      '  listen:',
      '    - { name: web, bind: 0.0.0.0:80, mode: http, servers: [{ name: w1, address: 10.0.0.11:8080 }] }',
      'vrrp:',
      '  instances:',
      '    - { name: VI_1, interface: eth0, virtual_router_id: 51, priority: 150, virtual_ipaddress: [10.0.0.100/24] }',
      '',
    ].join('\n'),
  );
  const r = await cli(['check', p]);
  t.is(r.err, '');
  t.is(r.code, 0);
  t.is(r.out, `${p}: ok — 0 services, 0 real servers, 1 listener, 1 vrrp instance, overlay: no, lab: no\n`);
});

test('config check: every problem on stderr as file:line:col, exit 1', async (t) => {
  const p = file(
    'bad.yaml',
    'director:\n  services:\n    - vip: 10.0.0.1\n      port: 80\n      scheduler: rr\n      real_servers:\n        - { address: 10.0.0.2, weight: -1 }\n    - { port: 81, scheduler: rr }\n',
  );
  const r = await cli(['check', p]);
  t.is(r.code, 1);
  t.is(r.out, '');
  t.deepEqual(r.err.trimEnd().split('\n'), [
    `${p}:7:40: director.services[0].real_servers[0].weight: must be >= 0, got -1`,
    `${p}:8:7: director.services[1]: a service needs a vip (with port) or a fwmark`,
    `${p}: 2 problems`,
  ]);
});

test('config check: syntax errors and missing files exit 1', async (t) => {
  const p = file('syntax.yaml', 'director:\n  services: [\n');
  const r = await cli(['check', p]);
  t.is(r.code, 1);
  t.regex(r.err, new RegExp(`^${p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+: YAML syntax error`));
  const m = await cli(['check', join(dir, 'missing.yaml')]);
  t.is(m.code, 1);
  t.true(m.err.startsWith(`${join(dir, 'missing.yaml')}: cannot read: no such file\n`));
});

test('config: usage errors exit 2, help exits 0', async (t) => {
  t.is((await cli([])).code, 2);
  t.is((await cli(['check'])).code, 2);
  t.is((await cli(['check', 'a', 'b'])).code, 2);
  t.is((await cli(['lint', 'a'])).code, 2);
  const h = await cli(['--help']);
  t.is(h.code, 0);
  t.regex(h.out, /usage: tierlb config check FILE/);
});

const shipped = join(import.meta.dirname, '..', 'config', 'director.yaml');
test('the shipped config/director.yaml loads clean', async (t) => {
  const r = await cli(['check', shipped]);
  t.is(r.err, '');
  t.is(r.code, 0);
  t.regex(r.out, /: ok — 3 services, 8 real servers, /);
  const plan = directorFromConfig((await loadConfigFile(shipped)).config);
  t.deepEqual(
    plan.services.map((s) => s.spec.id),
    [
      { kind: 'fwm', family: 4, fwmark: 10000 },
      { kind: 'fwm', family: 4, fwmark: 10001 },
      { kind: 'tcp', family: 4, addr: '10.77.1.100', port: 8080 },
    ],
  );
  for (const s of plan.services.slice(0, 2)) {
    t.is(s.spec.sched, 'wrr');
    t.deepEqual(
      s.dests.map((d) => `${d.addr} ${d.fwd}`),
      ['10.77.1.21 route', '10.77.1.22 route', '10.77.1.23 route'],
    );
  }
  t.deepEqual(plan.sysctl.expireNodestConn, true);
  // the marks the comments promise: 10.77.1.100:80 → 10000, :443 → 10001
  t.deepEqual(
    plan.marks?.map((m) => `${m.protocol} ${m.addr}:${m.port} → ${m.mark}`),
    ['tcp 10.77.1.100:80 → 10000', 'tcp 10.77.1.100:443 → 10001'],
  );
});
