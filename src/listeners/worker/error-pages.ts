/** HAProxy's built-in error pages: what a listener answers when it cannot relay (400, 408, 502, 503, 504) or a
 * rule denies (403 and any other status: `deny: N`). */
import http from 'node:http';
import type { ExchangeResponse } from './messages.js';

const ERR_PAGES: Record<number, [string, string]> = {
  400: ['Bad request', 'Your browser sent an invalid request.'],
  401: ['Unauthorized', 'You need a valid user and password to access this content.'],
  403: ['Forbidden', 'Request forbidden by administrative rules.'],
  404: ['Not Found', 'The resource could not be found.'],
  405: ['Method Not Allowed', 'A request was made of a resource using a request method not supported by that resource'],
  429: ['Too Many Requests', 'You have sent too many requests in a given amount of time.'],
  500: ['Internal Server Error', 'An internal server error occurred.'],
  408: ['Request Time-out', "Your browser didn't send a complete request in time."],
  502: ['Bad Gateway', 'The server returned an invalid or incomplete response.'],
  503: ['Service Unavailable', 'No server is available to handle this request.'],
  504: ['Gateway Time-out', "The server didn't respond in time."],
};

/** The error page for `code`: its reason phrase and HTML body. */
export function errorPage(code: number): [reason: string, body: string] {
  const reason0 = http.STATUS_CODES[code] ?? 'Error';
  const [reason, text] = ERR_PAGES[code] ?? [reason0, reason0];
  return [reason, `<html><body><h1>${code} ${reason}</h1>\n${text}\n</body></html>\n`];
}

/** The error page as a whole HTTP/1.1 response, `connection: close` (written on a raw socket). */
export function errorResponse(code: number): string {
  const [reason, body] = errorPage(code);
  return (
    `HTTP/1.1 ${code} ${reason}\r\ncontent-length: ${body.length}\r\ncache-control: no-cache\r\n` +
    `content-type: text/html\r\nconnection: close\r\n\r\n${body}`
  );
}

/** Answer `res` with the error page (nothing when the response has begun or is gone). */
export function replyError(res: ExchangeResponse, code: number): void {
  if (res.headersSent || res.destroyed) return;
  const [reason, body] = errorPage(code);
  // (HTTP/2 has no reason phrase)
  res.writeHead(code, res.req?.httpVersionMajor === 2 ? undefined : reason, {
    'content-type': 'text/html',
    'cache-control': 'no-cache',
    'content-length': body.length,
  });
  res.end(body);
}
