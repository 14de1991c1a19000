/**
 * How ipvsadm ends: fail() and exit() leave the whole program (inside -R too), while a failed kernel operation only
 * makes process_options return -1. AdmExit is the first kind; runAdm turns it into the exit code and output.
 */
export class AdmExit extends Error {
  constructor(
    readonly code: number,
    readonly stdout = '',
    readonly stderr = '',
  ) {
    super(stderr || `exit ${code}`);
    this.name = 'AdmExit';
  }
}

/** ipvsadm's fail(err, msg): the message and a newline on stderr, then exit(err). */
export function fail(code: number, msg: string): never {
  throw new AdmExit(code, '', `${msg}\n`);
}

/** Where a run's output goes (ipvsadm's stdout and stderr). */
export interface AdmOutput {
  out(s: string): void;
  err(s: string): void;
}
