/**
 * Running a keepalived-style script line (notify*, misc_path, vrrp_script): split by keepalived's rules
 * (./split.ts), extra arguments appended (keepalived's `notify` gets TYPE NAME STATE PRIORITY), output thrown away,
 * in its own process group so a timeout kills whatever it started. Never rejects: a line that does not split, a
 * missing program and a timeout come back as `error`, with code -1.
 */
import type { TierlbError } from '../common/errors.js';
import { CommandSyntaxError } from './errors.js';
import { type Runner, type RunOptions, type RunResult, run } from './exec.js';
import { commandArgv } from './split.js';

export interface ScriptResult extends Omit<RunResult, 'error'> {
  error?: TierlbError;
}

export async function runScript(
  command: string,
  extraArgs: readonly string[] = [],
  o: Omit<RunOptions, 'output' | 'input'> = {},
  runner: Runner = run,
): Promise<ScriptResult> {
  let argv: string[];
  try {
    argv = commandArgv(command);
  } catch (e) {
    if (!(e instanceof CommandSyntaxError)) throw e;
    return { code: -1, signal: null, stdout: '', stderr: '', error: e };
  }
  return runner([...argv, ...extraArgs], { ...o, output: 'ignore' });
}
