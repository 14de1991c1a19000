/** Errors of the cluster file's derivation; each names its cause and the fix. */
import { TierlbError } from '../common/errors.js';

export type ClusterErrorCode =
  | 'ECLUSTER_NO_SECTION' // the file has no cluster section
  | 'ECLUSTER_NO_NODE' // no director or LB node of that name
  | 'ECLUSTER_ROLE'; // the node is of the other role than the command asked for

export class ClusterError extends TierlbError {
  constructor(
    override readonly code: ClusterErrorCode,
    message: string,
  ) {
    super(code, message);
    this.name = 'ClusterError';
  }
}
