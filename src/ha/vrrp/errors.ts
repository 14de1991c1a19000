/** The errors of a VRRP instance that cannot run where it is configured. */
import { TierlbError } from '../../common/errors.js';

export type VrrpErrorCode = 'EVRRP_NO_SOURCE'; // the interface has no address to send adverts from

export class VrrpError extends TierlbError {
  constructor(
    override readonly code: VrrpErrorCode,
    message: string,
  ) {
    super(code, message);
    this.name = 'VrrpError';
  }
}
