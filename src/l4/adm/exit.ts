import { TierlbError } from '../../common/errors.js';

/**
 * How ipvsadm ends: fail() and exit() leave the whole program (inside -R too), while a failed kernel operation only
 * makes process_options return -1. AdmExit is the first kind; runAdm turns it into the exit status and output. Its
 * code is always EADM_EXIT; the exit status is `status`.
 */
export class AdmExit extends TierlbError {
  override readonly code = 'EADM_EXIT';
  constructor(
    /** ipvsadm's exit status (0 for -h and -v, 2 for a bad command line, 255 for "Try ... -h") */
    readonly status: number,
    readonly stdout = '',
    readonly stderr = '',
  ) {
    super('EADM_EXIT', stderr || `exit ${status}`);
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
