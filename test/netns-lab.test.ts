/**
 * The lab on real namespaces: the demo (the README's main command) end to end, and `lab down` after a `lab up` that
 * was killed half-way. Each run uses its own prefix and state dir.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { CHAIN } from '../src/fwmark/plan.js';
import { LAB_DEFAULTS } from '../src/lab/config-schema.js';
import { demo } from '../src/lab/demo.js';
import { labDown, listNamespaces } from '../src/lab/lab.js';
import { runPrefix, sh } from '../src/lab/netns.js';
import { alive, REPO_ROOT, tierlbArgv } from '../src/lab/proc.js';
import { readState, writeState } from '../src/lab/state.js';

const stateDir = mkdtempSync(join(tmpdir(), 'tierlb-lab-test-'));
const prefixes: string[] = [];
const quiet = () => {};

test.after.always(async () => {
  for (const p of prefixes) await labDown({ prefix: p, stateDir, out: quiet });
  rmSync(stateDir, { recursive: true, force: true });
});

const ours = (p: string) => listNamespaces().filter((n) => n.startsWith(`${p}-`));

test.serial(
  "demo: every request answered, every LB node and backend served, the trace shows DR + VXLAN + bypass; an established connection and a download survive the master director's link cut",
  async (t) => {
    const prefix = runPrefix('y');
    prefixes.push(prefix);
    const lines: string[] = [];
    const r = await demo({ prefix, stateDir, requests: 30, out: (l) => lines.push(l), err: quiet, tty: false });
    const log = lines.join('\n');
    t.true(r.ok, `${r.problems.join('\n')}\n${log}`);
    const answers = r.traffic?.answers ?? [];
    t.is(answers.length, 30);
    t.true(
      answers.every((a) => a.answer.ok),
      log,
    );
    const lbs = new Set(answers.map((a) => a.answer.from));
    t.deepEqual([...lbs].sort(), ['172.16.100.1', '172.16.100.2', '172.16.100.3'], 'every LB node served some');
    const bes = new Set(answers.map((a) => a.answer.backend));
    t.deepEqual([...bes].sort(), ['be1', 'be2', 'be3'], 'every backend served some');
    const tr = r.trace?.traces[0];
    t.truthy(tr, log);
    const v = Object.fromEntries((tr?.verdicts ?? []).map((x) => [x.name, x]));
    t.true(v['mac-rewrite']?.ok, v['mac-rewrite']?.detail);
    t.regex(
      v['mac-rewrite']?.detail ?? '',
      /dst MAC 02:01:0a:4d:01:02 \(dir1\) → 02:01:0a:4d:01:1[567] \(lb[123]\); IP 10\.77\.1\.10 → 10\.77\.1\.100 unchanged/,
    );
    t.true(v.vxlan?.ok, v.vxlan?.detail);
    t.regex(v.vxlan?.detail ?? '', /UDP 4789 VNI 100 /);
    t.true(v['reply-bypass']?.ok, v['reply-bypass']?.detail);
    t.regex(v['reply-bypass']?.detail ?? '', /; 0 at the directors$/);
    // the failover: the keep-alive connection and the download continued through the backup director (sync)
    const f = r.failover;
    t.truthy(f, log);
    t.is(f?.master, 'dir1');
    t.true((f?.syncedBefore ?? 0) > 0, `the backup had the master's connections before the cut\n${log}`);
    t.is(f?.client.ka.sockets, 1, `the keep-alive requests stayed on one connection\n${log}`);
    t.deepEqual(f?.client.ka.errors, [], log);
    t.true((f?.client.ka.ok ?? 0) > 20, log);
    t.true(f?.byteExact, `the download completed byte for byte\n${log}`);
    t.log(log.split('\n').find((l) => l.startsWith('failover gap:')) ?? 'no failover gap printed');
    t.regex(log, /== 6\. lab down/);
    t.deepEqual(ours(prefix), [], 'the demo removed its namespaces');
  },
);

function rootSnapshot() {
  return {
    rules: sh('ip', ['rule', 'show']),
    links: sh('ip', ['-o', 'link', 'show'])
      .split('\n')
      .map((l) => l.split(':')[1]?.trim())
      .filter(Boolean)
      .sort(),
  };
}

test.serial('lab down after a lab up killed half-way leaves no namespace, link, rule or process', async (t) => {
  const prefix = runPrefix('k');
  prefixes.push(prefix);
  const before = rootSnapshot();
  const argv = tierlbArgv(['lab', 'up', '--prefix', prefix, '--state-dir', stateDir]);
  const up = spawn(argv[0], argv.slice(1), { cwd: REPO_ROOT, stdio: 'ignore' });
  const dir = join(stateDir, prefix);
  // kill it once some daemons run (and before everything is green)
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline && (readState(dir)?.processes.length ?? 0) < 5 && up.exitCode === null)
    await new Promise((r) => setTimeout(r, 100));
  t.is(up.exitCode, null, 'lab up was still running');
  up.kill('SIGKILL');
  await new Promise((r) => up.once('exit', r));
  const st = readState(dir);
  t.truthy(st);
  t.true((st?.processes.length ?? 0) >= 5);
  t.true(ours(prefix).length > 5, 'namespaces were there');
  const pids = st!.processes.map((p) => p.pid);
  t.true(pids.some(alive), 'daemons outlived the killed lab up');

  await labDown({ prefix, stateDir, out: quiet });
  t.deepEqual(ours(prefix), []);
  t.deepEqual(pids.filter(alive), [], 'no process left');
  t.is(readState(dir), null, 'state dir removed');
  const after = rootSnapshot();
  t.is(after.rules, before.rules, 'no ip rule added or left in the root namespace');
  t.deepEqual(
    after.links.filter((l) => l.startsWith(prefix)),
    [],
  );
  // no director chain (its mark and queue rules) and no mark rule in the root namespace
  const mangle = sh('iptables-nft-save', ['-t', 'mangle'], { allowFail: true });
  t.false(mangle.includes(CHAIN), 'no director chain in the root namespace');
  t.false(mangle.includes(`-d ${LAB_DEFAULTS.vip}/32`), 'no mark rule for the VIP in the root namespace');
  // a second down is harmless
  await labDown({ prefix, stateDir, out: quiet });
  t.deepEqual(ours(prefix), []);
});

test.serial('lab down does not signal a recorded pid that is no longer ours (recycled)', async (t) => {
  const prefix = runPrefix('r');
  prefixes.push(prefix);
  const ns = `${prefix}-h1`;
  sh('ip', ['netns', 'add', ns]);
  // someone else's process now holds the pid the state file recorded for a daemon
  const foreign = spawn('sleep', ['60'], { stdio: 'ignore' });
  try {
    const dir = join(stateDir, prefix);
    writeState({
      version: 1,
      prefix,
      dir,
      configFile: null,
      startedAt: new Date().toISOString(),
      phase: 'ready',
      vipMode: null,
      config: LAB_DEFAULTS,
      namespaces: [ns],
      rootLinks: [],
      processes: [
        { id: 'director-h1', host: 'h1', ns, pid: foreign.pid as number, argv: ['tierlb', 'director'], log: '' },
      ],
    });
    await labDown({ prefix, stateDir, out: quiet });
    t.deepEqual(ours(prefix), [], 'the namespace was removed');
    t.true(alive(foreign.pid as number), 'the foreign process was not signalled');
  } finally {
    foreign.kill('SIGKILL');
  }
});
