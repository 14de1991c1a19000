/** src/sys's process runner against real programs: stderr kept, ENOENT typed with the fix, a timeout kills the group. */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { TierlbError } from '../src/common/errors.js';
import { ExecError } from '../src/sys/errors.js';
import { run, runChecked, runCheckedSync, runSync, type Timers } from '../src/sys/exec.js';
import { recordingRunner } from '../src/sys/recording.js';
import { runScript } from '../src/sys/script.js';

/** Timers fired by the test, so no test sleeps for a timeout. */
function manualTimers() {
  const pending = new Map<number, { fn: () => void; ms: number }>();
  let next = 1;
  const timers: Timers = {
    setTimeout: (fn, ms) => {
      pending.set(next, { fn, ms });
      return next++;
    },
    clearTimeout: (h) => {
      pending.delete(h as number);
    },
  };
  const fire = () => {
    const due = [...pending.entries()];
    pending.clear();
    for (const [, t] of due) t.fn();
    return due.map(([, t]) => t.ms);
  };
  return { timers, pending, fire };
}

/** Whether a pid is gone (or a zombie nobody reaped yet: it runs no more). */
function dead(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] === 'Z';
  } catch {
    return true;
  }
}

async function until(what: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!what()) {
    if (Date.now() > end) throw new Error('condition not met');
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('run: exit status, stdout, stderr and stdin', async (t) => {
  const r = await run(['/bin/sh', '-c', 'read x; echo "out $x"; echo "err $x" >&2; exit 3'], { input: 'hi\n' });
  t.like(r, { code: 3, signal: null, stdout: 'out hi\n', stderr: 'err hi\n' });
  t.is(r.error, undefined);
});

test('run: env is added to the environment', async (t) => {
  const r = await run(['/bin/sh', '-c', 'printenv TIERLB_X; test -n "$PATH" && echo path'], { env: { TIERLB_X: 'y' } });
  t.is(r.stdout, 'y\npath\n');
});

test('runChecked: a failure keeps the first lines of stderr in the message and all of it on the error', async (t) => {
  const argv = ['/bin/sh', '-c', 'echo "iptables v1.8: no such table" >&2; echo second >&2; exit 1', 'x y'];
  const e = await t.throwsAsync(runChecked(argv), { instanceOf: ExecError });
  t.true(e instanceof TierlbError);
  t.is(e.code, 'EEXEC_FAILED');
  t.is(e.exitCode, 1);
  t.is(e.stderr, 'iptables v1.8: no such table\nsecond\n');
  t.regex(e.message, /^\/bin\/sh -c ".*" "x y": exit 1: iptables v1\.8: no such table \| second$/);
  t.is(await runChecked(['/bin/echo', 'ok']), 'ok\n');
});

test('a missing program is EEXEC_NOT_FOUND and names the package to install', async (t) => {
  const r = await run(['iptables-nft-restore-missing-for-test', '--noflush']);
  t.is(r.code, -1);
  t.is(r.error?.code, 'EEXEC_NOT_FOUND');
  const e = await t.throwsAsync(runChecked(['/nonexistent/ip6tables-nft-restore', '--noflush']), {
    instanceOf: ExecError,
  });
  t.is(e.code, 'EEXEC_NOT_FOUND');
  t.regex(e.message, /ip6tables-nft-restore --noflush: .* not found \(ENOENT\): apt-get install iptables/);
  t.regex(e.message, /scripts\/install-deps\.sh/);
  const s = t.throws(() => runCheckedSync(['sysctl-missing-for-test']), { instanceOf: ExecError });
  t.is(s.code, 'EEXEC_NOT_FOUND');
  t.regex(s.message, /install sysctl-missing-for-test or give its full path/);
  t.regex(runSync(['/nonexistent/sysctl']).error?.message ?? '', /apt-get install procps/);
});

test('a timeout kills the program and what it started (its process group), and is EEXEC_TIMEOUT', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tierlb-exec-'));
  try {
    const pids = join(dir, 'pids');
    const m = manualTimers();
    // the shell starts a grandchild and waits; both must die at the timeout
    const p = run(['/bin/sh', '-c', `sleep 60 & echo "$$ $!" > ${pids}.tmp; mv ${pids}.tmp ${pids}; wait`], {
      timeoutMs: 1500,
      timers: m.timers,
    });
    await until(() => existsSync(pids));
    const [sh, sleep] = readFileSync(pids, 'utf8').trim().split(' ').map(Number);
    t.false(dead(sh));
    t.false(dead(sleep));
    t.deepEqual(m.fire(), [1500]);
    const r = await p;
    t.is(r.code, -1);
    t.is(r.error?.code, 'EEXEC_TIMEOUT');
    t.regex(r.error?.message ?? '', /timed out after 1500 ms, killed with its process group/);
    await until(() => dead(sleep));
    t.true(dead(sh));
    t.is(m.pending.size, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('with killGraceMs the timeout sends SIGTERM first, SIGKILL after the grace', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tierlb-exec-'));
  try {
    const ready = join(dir, 'ready');
    const m = manualTimers();
    // ignores SIGTERM: only the SIGKILL after the grace ends it
    const p = run(['/bin/sh', '-c', `trap '' TERM; touch ${ready}; while :; do sleep 1; done`], {
      timeoutMs: 100,
      killGraceMs: 2000,
      timers: m.timers,
    });
    await until(() => existsSync(ready));
    t.deepEqual(m.fire(), [100]);
    t.deepEqual(m.fire(), [2000]);
    const r = await p;
    t.is(r.error?.code, 'EEXEC_TIMEOUT');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('runScript: keepalived splitting, extra arguments appended, a bad line is a typed error', async (t) => {
  const rec = recordingRunner();
  await runScript(`/bin/notify "a b" 'c\\x64'`, ['INSTANCE', 'VI_1', 'MASTER', '100'], { timeoutMs: 5 }, rec);
  t.deepEqual(rec.calls[0].argv, ['/bin/notify', 'a b', 'cd', 'INSTANCE', 'VI_1', 'MASTER', '100']);
  t.is(rec.calls[0].timeoutMs, 5);
  const bad = await runScript('/bin/notify "open', [], {}, rec);
  t.is(bad.code, -1);
  t.is(bad.error?.code, 'ECMD_QUOTE');
  t.is(rec.calls.length, 1);
  t.is((await runScript(`/bin/sh -c 'exit 4'`)).code, 4);
});

test('recordingRunner: records async and sync calls, answers from the responder', async (t) => {
  const rec = recordingRunner((argv) => (argv[0] === 'ip' ? '[]' : { code: 2, stderr: 'nope' }));
  t.is(await runChecked(['ip', '-j', 'rule', 'show'], {}, rec), '[]');
  const e = t.throws(() => runCheckedSync(['iptables-nft', '-S'], { input: 'x' }, rec.sync), { instanceOf: ExecError });
  t.is(e.message, 'iptables-nft -S: exit 2: nope');
  t.deepEqual(rec.lines(), ['ip -j rule show', 'iptables-nft -S']);
  t.deepEqual(
    rec.calls.map((c) => [c.sync, c.input]),
    [
      [false, undefined],
      [true, 'x'],
    ],
  );
});
