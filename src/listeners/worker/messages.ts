/**
 * What the request path (./route-request.ts, ./http-exchange.ts, ./http-relay.ts, ./error-pages.ts) uses of a
 * client's request and response: implemented by the listener's own HTTP/1 server side (./h1/client-session.ts) and
 * by node:http2's compatibility request and response (./h2.ts), so both take the same path.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type net from 'node:net';

/** A request body as the relay reads it: 'data' chunks, then 'end'; pause/resume for backpressure. */
export interface RelayBody {
  on(event: 'data', fn: (chunk: Buffer) => void): unknown;
  once(event: 'end', fn: () => void): unknown;
  off(event: 'data' | 'end', fn: (chunk: Buffer) => void): unknown;
  pause(): unknown;
  resume(): unknown;
}

export interface ExchangeRequest extends RelayBody {
  readonly method?: string | undefined;
  readonly url?: string | undefined;
  /** lower-case names */
  readonly headers: IncomingHttpHeaders;
  /** flat [name, value, ...] as they came */
  readonly rawHeaders: string[];
  readonly httpVersionMajor: number;
  readonly httpVersionMinor: number;
  readonly socket: net.Socket;
  /** HTTP/1 (./h1/client-session.ts): the request has no body by its framing */
  readonly bodyless?: boolean;
}

export interface ExchangeResponse {
  readonly req: ExchangeRequest;
  readonly socket: net.Socket | null;
  statusCode: number;
  readonly headersSent: boolean;
  readonly destroyed: boolean;
  readonly writableFinished: boolean;
  /** the connection may carry another request after this answer */
  shouldKeepAlive: boolean;
  /** (status, reason, headers) or (status, headers); headers as an object or flat [name, value, ...] */
  writeHead(
    status: number,
    reason?: string | string[] | OutgoingHttpHeaders,
    headers?: string[] | OutgoingHttpHeaders,
  ): unknown;
  setHeader(name: string, value: string): unknown;
  write(chunk: Buffer | string): boolean;
  end(chunk?: Buffer | string): unknown;
  destroy(): unknown;
  on(event: 'close', fn: () => void): unknown;
  once(event: 'close' | 'drain', fn: () => void): unknown;
}
