/** The namespace lab's errors. */
import { TierlbError } from '../common/errors.js';

export type LabErrorCode =
  | 'ELAB_EXISTS' // a lab with this prefix (state file or namespaces) exists already
  | 'ELAB_NOT_READY' // `lab up`: a process died, or the checks were not green in time
  | 'ELAB_NO_HOST' // no lab host of that name, or not one of the role asked for
  | 'ELAB_NO_LISTENER' // no listener on the port asked for
  | 'ELAB_COMMAND' // a command (ip, tcpdump, a daemon) failed or did not start
  | 'ELAB_OVERLAY_CONFLICT' // the overlay of a host conflicts with what is there
  | 'ELAB_DIRECTOR' // the director refused an adm request
  | 'ELAB_NOT_ECMP' // an ecmp step on a lab without lab.ecmp
  | 'ELAB_ECMP_ROUTE' // the router's ECMP route did not reach the expected next hops in time
  | 'ELAB_FAILOVER'; // the failover step's client did not start or gave no result

export class LabError extends TierlbError {
  constructor(
    override readonly code: LabErrorCode,
    message: string,
  ) {
    super(code, message);
    this.name = 'LabError';
  }
}
