/** The errors the listeners throw: TierlbError with a stable code, a message naming the cause and the fix. */
import { TierlbError } from '../common/errors.js';

export type ListenersErrorCode =
  /** the control socket belongs to a running primary */
  | 'ECONTROL_IN_USE'
  /** a control command got no answer in time */
  | 'ECONTROL_NO_ANSWER'
  /** a balance expression no algorithm implements (the config schema refuses it first) */
  | 'EBALANCE_UNKNOWN'
  /** the shared balancing region is not (or no longer) a tierlb listeners region */
  | 'ESHM_REGION'
  /** more listeners, servers or workers than the shared region has slots for */
  | 'ESHM_FULL'
  /** a PROXY header that the protocol cannot carry */
  | 'EPROXY_HEADER'
  /** a listener's address cannot be bound (in use, not local, a privileged port without the capability) */
  | 'ELISTEN'
  /** routing rules or a group a worker got that the config check should have refused (a bug) */
  | 'EROUTES'
  /** a certificate, key or CA file of a `tls:` / `ssl:` that cannot be read or used */
  | 'ETLS_FILE'
  /** a client certificate that does not verify against the listener's client_ca (verify: optional) */
  | 'ETLS_CLIENT_CERT'
  /** the HTTP relay: a server's connect did not complete within timeout connect */
  | 'ESERVER_CONNECT_TIMEOUT'
  /** the HTTP relay: the server connection closed (or failed) before the whole answer */
  | 'ESERVER_CLOSED'
  /** the HTTP relay: timeout server passed waiting for the answer's head */
  | 'ESERVER_HEADERS_TIMEOUT'
  /** the HTTP relay: timeout server passed between the answer's body bytes */
  | 'ESERVER_BODY_TIMEOUT'
  /** the HTTP relay: an answer that cannot be framed safely (the connection is closed, the client gets 502) */
  | 'ESERVER_BAD_RESPONSE'
  /** the HTTP relay: a request it cannot send (a target that is not origin-form) */
  | 'EREQUEST_INVALID';

export class ListenersError extends TierlbError {
  constructor(
    override readonly code: ListenersErrorCode,
    message: string,
  ) {
    super(code, message);
    this.name = 'ListenersError';
  }
}
