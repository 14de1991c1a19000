/**
 * The one process runner: every program tierlb starts (ip, iptables, sysctl, bridge, notify and check scripts) goes
 * through here. An argv array, never a shell string. The program runs in its own process group (as keepalived runs
 * its scripts), so a timeout kills it and everything it started.
 *
 * - run(): resolves with {code, signal, stdout, stderr} and never rejects; when the program did not run to an exit
 *   of its own (missing, not executable, timed out) `error` holds the typed ExecError and `code` is -1.
 * - runChecked(): stdout, or throws the ExecError (a failure keeps stderr: `iptables-nft-restore --noflush: exit 1:
 *   <stderr first lines>`; a missing program names the package to install).
 * - runSync() / runCheckedSync(): the same for the few callers whose API is synchronous (the overlay executor, the
 *   namespace helpers); their timeout kills the child only.
 * A Runner is injected wherever commands run, so tests pass recordingRunner() (./recording.ts) instead.
 */
import { type ChildProcess, type SpawnOptions, spawn, spawnSync } from 'node:child_process';
import { type ExecError, failedError, spawnError, timeoutError } from './errors.js';

export interface RunResult {
  /** the exit status; -1 when the program did not exit by itself (see `signal` and `error`) */
  code: number;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** set when the program could not be run or was killed at its timeout */
  error?: ExecError;
}

/** Timer functions; tests hand in ones they fire by hand, so no test sleeps for a timeout. */
export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realTimers: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface RunOptions {
  /** written to stdin (stdin is /dev/null otherwise) */
  input?: string;
  /** kill the process group after this long (0 or absent: no timeout) */
  timeoutMs?: number;
  /** at the timeout send SIGTERM, and SIGKILL this much later; absent: SIGKILL at once */
  killGraceMs?: number;
  /** variables added to this process's environment */
  env?: NodeJS.ProcessEnv;
  /** stdout and stderr: kept (default), thrown away (scripts, as keepalived does), or this process's own */
  output?: 'capture' | 'ignore' | 'inherit';
  /** do not keep the event loop alive for this program (fire-and-forget notify scripts) */
  unref?: boolean;
  timers?: Timers;
}

export type SyncRunOptions = Pick<RunOptions, 'input' | 'timeoutMs' | 'env' | 'output'>;

export type Runner = (argv: readonly string[], o?: RunOptions) => Promise<RunResult>;
export type SyncRunner = (argv: readonly string[], o?: SyncRunOptions) => RunResult;

function stdio(o: SyncRunOptions): SpawnOptions['stdio'] {
  const out = o.output === 'ignore' ? 'ignore' : o.output === 'inherit' ? 'inherit' : 'pipe';
  return [o.input !== undefined ? 'pipe' : o.output === 'inherit' ? 'inherit' : 'ignore', out, out];
}

function envOf(o: SyncRunOptions): NodeJS.ProcessEnv | undefined {
  return o.env ? { ...process.env, ...o.env } : undefined;
}

const emptyCommand = (argv: readonly string[]) =>
  spawnError(argv, { name: 'Error', message: 'empty command', code: 'EINVAL' });

function killGroup(child: ChildProcess, sig: NodeJS.Signals): void {
  if (!child.pid) return;
  try {
    process.kill(-child.pid, sig);
  } catch {
    // the group is gone already
  }
}

/** Run argv; resolves with how it went, never rejects. */
export const run: Runner = (argv, o = {}) =>
  new Promise((resolve) => {
    const notRun = (error: ExecError) => resolve({ code: -1, signal: null, stdout: '', stderr: '', error });
    if (argv.length === 0 || !argv[0]) {
      notRun(emptyCommand(argv));
      return;
    }
    let child: ChildProcess;
    try {
      child = spawn(argv[0], argv.slice(1), { stdio: stdio(o), env: envOf(o), detached: true });
    } catch (e) {
      notRun(spawnError(argv, e as NodeJS.ErrnoException));
      return;
    }
    const timers = o.timers ?? realTimers;
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (b: Buffer) => out.push(b));
    child.stderr?.on('data', (b: Buffer) => err.push(b));
    let timedOut = false;
    let timer: unknown;
    let killTimer: unknown;
    const timeoutMs = o.timeoutMs ?? 0;
    if (timeoutMs > 0)
      timer = timers.setTimeout(() => {
        timedOut = true;
        if (o.killGraceMs !== undefined) {
          killGroup(child, 'SIGTERM');
          killTimer = timers.setTimeout(() => killGroup(child, 'SIGKILL'), o.killGraceMs);
        } else killGroup(child, 'SIGKILL');
      }, timeoutMs);
    let settled = false;
    const finish = (r: RunResult) => {
      if (settled) return;
      settled = true;
      if (timer !== undefined) timers.clearTimeout(timer);
      if (killTimer !== undefined) timers.clearTimeout(killTimer);
      resolve(r);
    };
    // the program could not be started (ENOENT, EACCES, ...)
    child.once('error', (e: NodeJS.ErrnoException) =>
      finish({ code: -1, signal: null, stdout: '', stderr: '', error: spawnError(argv, e) }),
    );
    child.once('close', (code, signal) => {
      // nothing the program started survives its timeout
      if (timedOut) killGroup(child, 'SIGKILL');
      const stdout = Buffer.concat(out).toString('utf8');
      const stderr = Buffer.concat(err).toString('utf8');
      finish({
        code: timedOut || code === null ? -1 : code,
        signal,
        stdout,
        stderr,
        error: timedOut ? timeoutError(argv, timeoutMs, stderr) : undefined,
      });
    });
    if (o.input !== undefined && child.stdin) {
      child.stdin.on('error', () => {}); // the program may exit without reading its input
      child.stdin.end(o.input);
    }
    if (o.unref) child.unref();
  });

/** Run argv synchronously; returns how it went, never throws. */
export const runSync: SyncRunner = (argv, o = {}) => {
  if (argv.length === 0 || !argv[0])
    return {
      code: -1,
      signal: null,
      stdout: '',
      stderr: '',
      error: emptyCommand(argv),
    };
  const r = spawnSync(argv[0], argv.slice(1), {
    input: o.input,
    encoding: 'utf8',
    stdio: stdio(o),
    env: envOf(o),
    timeout: o.timeoutMs || undefined,
    killSignal: 'SIGKILL',
    maxBuffer: 256 * 1024 * 1024,
  });
  const stdout = r.stdout ?? '';
  const stderr = r.stderr ?? '';
  const e = r.error as NodeJS.ErrnoException | undefined;
  if (e?.code === 'ETIMEDOUT')
    return { code: -1, signal: r.signal, stdout, stderr, error: timeoutError(argv, o.timeoutMs ?? 0, stderr) };
  if (e) return { code: -1, signal: null, stdout, stderr, error: spawnError(argv, e) };
  return { code: r.status ?? -1, signal: r.signal, stdout, stderr };
};

/** stdout of a run that went well; otherwise the ExecError (stderr kept). */
export function check(argv: readonly string[], r: RunResult): string {
  if (r.error) throw r.error;
  if (r.code !== 0 || r.signal) throw failedError(argv, r.code, r.signal, r.stderr);
  return r.stdout;
}

/** Run argv; its stdout, or a thrown ExecError. */
export async function runChecked(argv: readonly string[], o: RunOptions = {}, runner: Runner = run): Promise<string> {
  return check(argv, await runner(argv, o));
}

/** runChecked, synchronously. */
export function runCheckedSync(argv: readonly string[], o: SyncRunOptions = {}, runner: SyncRunner = runSync): string {
  return check(argv, runner(argv, o));
}
