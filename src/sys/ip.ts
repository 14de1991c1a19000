/**
 * iproute2's `ip`, as argv: the family flag, JSON output and the namespace in one place. Runs through the injected
 * Runner like every other program.
 */
import { commandText, KernelStateError } from './errors.js';
import { type Runner, run, runChecked } from './exec.js';

export type IpFamily = 4 | 6;

export interface IpOptions {
  family?: IpFamily;
  /** `-j`: JSON output */
  json?: boolean;
  /** `-n NS`: in that network namespace */
  netns?: string;
}

/** `ip [-n NS] [-j] [-4|-6] ARGS...` */
export function ipArgv(args: readonly string[], o: IpOptions = {}): string[] {
  return [
    'ip',
    ...(o.netns ? ['-n', o.netns] : []),
    ...(o.json ? ['-j'] : []),
    ...(o.family ? [o.family === 4 ? '-4' : '-6'] : []),
    ...args,
  ];
}

/** The JSON `ip -j` printed (an empty output is []); KernelStateError when it is not JSON. */
export function parseIpJson<T>(argv: readonly string[], out: string): T[] {
  if (!out.trim()) return [];
  try {
    return JSON.parse(out) as T[];
  } catch {
    throw new KernelStateError('EKERNEL_OUTPUT', `${commandText(argv)}: output is not JSON (is iproute2 too old?)`);
  }
}

/** Run `ip -j ...` and parse its JSON. Throws ExecError or KernelStateError. */
export async function ipJson<T>(args: readonly string[], o: IpOptions & { run?: Runner } = {}): Promise<T[]> {
  const argv = ipArgv(args, { ...o, json: true });
  return parseIpJson<T>(argv, await runChecked(argv, {}, o.run ?? run));
}
