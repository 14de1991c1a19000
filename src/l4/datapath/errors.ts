/** The data path's own errors (a failed system call is a SysError of ./sys.ts). */
import { TierlbError } from '../../common/errors.js';

export type DatapathErrorCode =
  | 'ENFQUEUE_NO_ACK' // the kernel did not acknowledge an nfnetlink_queue config message
  | 'EDEST_MARKS_FULL'; // every real-server mark (MAX_DEST_MARKS) is taken

export class DatapathError extends TierlbError {
  constructor(
    override readonly code: DatapathErrorCode,
    message: string,
  ) {
    super(code, message);
    this.name = 'DatapathError';
  }
}
