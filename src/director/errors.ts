/** The errors of the director's own wiring: the daemon, its admin socket (both sides) and its metrics endpoint. */
import { TierlbError } from '../common/errors.js';

export type DirectorErrorCode =
  | 'EDIRECTOR_RUNNING' // another director answers on the admin socket
  | 'EDIRECTOR_TIMEOUT' // the director did not answer a request in time
  | 'EDIRECTOR_NO_ANSWER' // the director closed the connection without answering
  | 'EDIRECTOR_METRICS_ADDRESS' // --metrics / director.metrics.bind is not host:port, [v6]:port or a port
  | 'EDIRECTOR_DATAPATH'; // the data-path worker failed to start, or refused a change (the worker's reason follows)

export class DirectorError extends TierlbError {
  constructor(
    override readonly code: DirectorErrorCode,
    message: string,
  ) {
    super(code, message);
    this.name = 'DirectorError';
  }
}
