/**
 * A recording fake of the process runner, for tests: every argv is recorded (with its input), nothing runs, and an
 * optional responder says what each command "printed". The same fake serves async and sync callers.
 */
import type { Runner, RunOptions, RunResult, SyncRunner } from './exec.js';

export interface RecordedCall {
  argv: string[];
  input?: string;
  timeoutMs?: number;
  sync: boolean;
}

/** What a command answers: its stdout (exit 0), a partial result, or undefined for an empty success. */
export type Responder = (argv: readonly string[], call: RecordedCall) => string | Partial<RunResult> | undefined;

export interface RecordingRunner extends Runner {
  readonly calls: RecordedCall[];
  /** the synchronous face of the same fake */
  readonly sync: SyncRunner;
  /** the calls as command lines (`ip -4 rule show`) */
  lines(): string[];
  clear(): void;
}

export function recordingRunner(respond: Responder = () => undefined): RecordingRunner {
  const calls: RecordedCall[] = [];
  const answer = (argv: readonly string[], o: RunOptions, sync: boolean): RunResult => {
    const call: RecordedCall = { argv: [...argv], input: o.input, timeoutMs: o.timeoutMs, sync };
    calls.push(call);
    const r = respond(argv, call);
    const base: RunResult = { code: 0, signal: null, stdout: '', stderr: '' };
    return typeof r === 'string' ? { ...base, stdout: r } : { ...base, ...r };
  };
  const runner = (async (argv: readonly string[], o: RunOptions = {}) => answer(argv, o, false)) as RecordingRunner;
  Object.assign(runner, {
    calls,
    sync: ((argv, o = {}) => answer(argv, o, true)) as SyncRunner,
    lines: () => calls.map((c) => c.argv.join(' ')),
    clear: () => {
      calls.length = 0;
    },
  });
  return runner;
}
