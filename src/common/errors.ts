/**
 * Typed errors with stable codes (in the manner of undici). The messages of AdmError follow ipvsadm's own
 * (ipvs_strerror) so scripts that match on them keep working.
 */
export class TierlbError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'TierlbError';
  }
}

export type AdmErrorCode =
  | 'ESRCH_SERVICE' // No such service
  | 'EEXIST_SERVICE' // Service already exists
  | 'ENOENT_DEST' // No such destination
  | 'EEXIST_DEST' // Destination already exists
  | 'ENOENT_SCHED' // Scheduler not found
  | 'EAFNOSUPPORT' // Operation not supported with specified address family
  | 'EINVAL' // Invalid argument
  | 'ERANGE' // Numerical result out of range
  | 'ENOTSUP'; // Operation not supported (a tunnel type, the sync daemon without a director)

export class AdmError extends TierlbError {
  constructor(
    override readonly code: AdmErrorCode,
    message: string,
  ) {
    super(code, message);
    this.name = 'AdmError';
  }
}
