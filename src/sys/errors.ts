/**
 * The kernel layer's errors, each a TierlbError with a stable code: a failed libc call (the errno's name as the code),
 * a program that is missing, could not start, timed out or failed (its stderr kept), a command line that does not
 * split, and a kernel answer that makes no sense.
 */
import { getSystemErrorMap } from 'node:util';
import { TierlbError } from '../common/errors.js';

const errnoMap = getSystemErrorMap();

/** EAGAIN for 11 (libuv's table, negative keys); `ERRNO_<n>` for a number it does not know. */
export function errnoName(errno: number): string {
  return errnoMap.get(-Math.abs(errno))?.[0] ?? `ERRNO_${errno}`;
}

function errnoText(errno: number): string {
  return errnoMap.get(-Math.abs(errno))?.[1] ?? `errno ${errno}`;
}

/** A libc call failed; `code` is the errno's name (EPERM, EAGAIN, ...), `errno` its number. */
export class SysError extends TierlbError {
  constructor(
    readonly call: string,
    readonly errno: number,
    /** what the caller was doing, and how to fix it when that is known */
    detail?: string,
  ) {
    super(errnoName(errno), `${call}: ${errnoName(errno)} (${errnoText(errno)})${detail ? `: ${detail}` : ''}`);
    this.name = 'SysError';
  }
}

export type ExecErrorCode =
  | 'EEXEC_NOT_FOUND' // the program is not installed (ENOENT)
  | 'EEXEC_SPAWN' // it could not be started (EACCES, ...)
  | 'EEXEC_TIMEOUT' // it ran past its timeout and was killed with its process group
  | 'EEXEC_FAILED'; // it exited non-zero or was killed by a signal

/** The command line as a person would type it (arguments with blanks or quotes quoted). */
export function commandText(argv: readonly string[]): string {
  return argv.map((a) => (a === '' || /[\s"'\\$`]/.test(a) ? JSON.stringify(a) : a)).join(' ');
}

/** The first lines of a program's stderr, for a one-line message. */
export function firstLines(text: string, n = 3): string {
  const lines = text
    .trim()
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  return lines.length > n ? `${lines.slice(0, n).join(' | ')} | …` : lines.join(' | ');
}

export class ExecError extends TierlbError {
  constructor(
    override readonly code: ExecErrorCode,
    readonly argv: readonly string[],
    message: string,
    /** the program's whole stderr ('' when it did not run) */
    readonly stderr = '',
    /** its exit status; -1 when it did not exit by itself */
    readonly exitCode = -1,
  ) {
    super(code, message);
    this.name = 'ExecError';
  }
}

/** Debian packages of the programs tierlb runs (scripts/install-deps.sh installs them all). */
const PACKAGE_OF: Record<string, string> = {
  ip: 'iproute2',
  bridge: 'iproute2',
  tc: 'iproute2',
  ss: 'iproute2',
  sysctl: 'procps',
  ping: 'iputils-ping',
  nc: 'netcat-openbsd',
  tcpdump: 'tcpdump',
  curl: 'curl',
  keepalived: 'keepalived',
  haproxy: 'haproxy',
  conntrack: 'conntrack',
  ethtool: 'ethtool',
  nft: 'nftables',
  python3: 'python3',
};

/** How to get a missing program: the package to install, or to check the path of a script. */
export function installHint(program: string): string {
  const base = program.split('/').pop() ?? program;
  const pkg = /^(ip6?tables)(-nft|-legacy)?(-restore|-save)?$/.test(base) ? 'iptables' : PACKAGE_OF[base];
  if (pkg) return `apt-get install ${pkg} (or run scripts/install-deps.sh)`;
  return program.includes('/')
    ? `check that ${program} exists and is executable`
    : `install ${program} or give its full path (scripts/install-deps.sh installs what tierlb needs)`;
}

export function notFoundError(argv: readonly string[]): ExecError {
  return new ExecError(
    'EEXEC_NOT_FOUND',
    argv,
    `${commandText(argv)}: ${argv[0]} not found (ENOENT): ${installHint(argv[0] ?? '')}`,
  );
}

export function spawnError(argv: readonly string[], e: NodeJS.ErrnoException): ExecError {
  if (!argv[0]) return new ExecError('EEXEC_SPAWN', argv, 'cannot run an empty command');
  if (e.code === 'ENOENT') return notFoundError(argv);
  return new ExecError('EEXEC_SPAWN', argv, `${commandText(argv)}: cannot run ${argv[0]}: ${e.code ?? e.message}`);
}

export function timeoutError(argv: readonly string[], ms: number, stderr: string): ExecError {
  const err = firstLines(stderr);
  return new ExecError(
    'EEXEC_TIMEOUT',
    argv,
    `${commandText(argv)}: timed out after ${ms} ms, killed with its process group${err ? `: ${err}` : ''}`,
    stderr,
  );
}

/** `iptables-nft-restore --noflush: exit 1: <stderr first lines>` */
export function failedError(argv: readonly string[], code: number, signal: string | null, stderr: string): ExecError {
  const how = signal ? `killed by ${signal}` : `exit ${code}`;
  const err = firstLines(stderr);
  return new ExecError('EEXEC_FAILED', argv, `${commandText(argv)}: ${how}${err ? `: ${err}` : ''}`, stderr, code);
}

/** A command line (notify, misc_path, a vrrp_script) that keepalived would refuse too. */
export class CommandSyntaxError extends TierlbError {
  constructor(
    override readonly code: 'ECMD_QUOTE' | 'ECMD_ESCAPE' | 'ECMD_EMPTY',
    readonly command: string,
    message: string,
  ) {
    super(code, message);
    this.name = 'CommandSyntaxError';
  }
}

/** The kernel (or one of its tools) answered something the caller cannot use. */
export class KernelStateError extends TierlbError {
  constructor(
    override readonly code:
      | 'EKERNEL_NO_ROUTE' // no route to an address
      | 'EKERNEL_NO_IFACE' // no such interface
      | 'EKERNEL_NO_FD' // a socket without a file descriptor yet
      | 'EKERNEL_OUTPUT' // a tool printed what cannot be parsed
      | 'EKERNEL_USAGE', // a call out of order (apply before install)
    message: string,
  ) {
    super(code, message);
    this.name = 'KernelStateError';
  }
}
