/** Errors of the BGP room; each names its cause and the fix. */
import { TierlbError } from '../common/errors.js';

export type BgpErrorCode =
  | 'BGP_DAEMON_MISSING' // bird / birdc not installed
  | 'BGP_DAEMON_START' // bird exited or did not answer on its control socket at start
  | 'BGP_CONTROL' // birdc failed or BIRD refused the generated config
  | 'BGP_STOPPED' // a call after stop()
  | 'BGP_CONFIG'; // the bgp section has problems (each as bgp.path: message)

export class BgpError extends TierlbError {
  constructor(
    override readonly code: BgpErrorCode,
    message: string,
  ) {
    super(code, message);
    this.name = 'BgpError';
  }
}
