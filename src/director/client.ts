/**
 * The client side of the director's admin socket (the server is ./admin-socket.ts): one JSON request line, one JSON
 * answer line. Used by `tierlb adm`, `tierlb director reload|stats|rules`, the lab and the tests.
 */
import { connect } from 'node:net';
import type { AdmResult } from '../l4/adm/run.js';
import { DirectorError } from './errors.js';

/** Where the director listens unless told otherwise (`--socket PATH`), and where its clients look. */
export const DIRECTOR_SOCKET = '/run/tierlb/director.sock';

/**
 * One request line to the director's socket (adm, reload, stats, ping), one answer line back. Rejects when the
 * director closes the connection without answering (DirectorError EDIRECTOR_NO_ANSWER), or after timeoutMs
 * (EDIRECTOR_TIMEOUT; 0: no time limit); a socket nobody listens on rejects with the system error (ENOENT,
 * ECONNREFUSED).
 */
export function request(socketPath: string, req: object, timeoutMs = 30000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(socketPath);
    let buf = '';
    const t =
      timeoutMs > 0
        ? setTimeout(() => {
            s.destroy();
            reject(new DirectorError('EDIRECTOR_TIMEOUT', 'timeout'));
          }, timeoutMs)
        : undefined;
    const fail = (e: Error) => {
      clearTimeout(t);
      reject(e);
    };
    s.on('connect', () => s.write(`${JSON.stringify(req)}\n`));
    s.on('data', (d) => {
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(t);
      s.end();
      resolve(buf.slice(0, nl));
    });
    s.on('end', () => {
      if (!buf.includes('\n'))
        fail(new DirectorError('EDIRECTOR_NO_ANSWER', 'the director closed the connection without answering'));
    });
    s.on('error', fail);
  });
}

/** ipvsadm's argv (and stdin) to the director, its result back. */
export async function requestDirector(
  socketPath: string,
  argv: string[],
  stdin: string | undefined,
  timeoutMs = 0,
): Promise<AdmResult> {
  return JSON.parse(await request(socketPath, { argv, stdin }, timeoutMs)) as AdmResult;
}
