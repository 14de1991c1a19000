/**
 * The server side of the director's admin unix socket (the client is ./client.ts): mode 0600 in a directory made
 * 0700, one JSON request per line, each connection's lines answered one after the other, one JSON line each.
 */
import { chmodSync, mkdirSync, unlinkSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { request } from './client.js';

/** Answers one request line (the answer without its newline). */
export type AnswerLine = (line: string) => Promise<string>;

export interface AdminSocket {
  readonly path: string;
  /** stop listening and remove the socket file */
  close(): void;
}

/** Whether a director already answers a ping on path. */
export async function socketInUse(path: string): Promise<boolean> {
  try {
    await request(path, { op: 'ping' }, 1000);
    return true;
  } catch {
    return false;
  }
}

/** Listen on path (a stale socket file there is replaced) and answer every line with `answer`. */
export async function serveAdminSocket(path: string, answer: AnswerLine): Promise<AdminSocket> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  removeSocketFile(path);
  const server = createServer((s: Socket) => {
    let buf = '';
    let chain = Promise.resolve();
    s.on('data', (d) => {
      buf += d.toString();
      let nl = buf.indexOf('\n');
      while (nl >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.trim())
          chain = chain.then(async () => {
            const r = await answer(line);
            if (!s.destroyed) s.write(`${r}\n`);
          });
        nl = buf.indexOf('\n');
      }
    });
    s.on('error', () => {});
  });
  const oldMask = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } finally {
    process.umask(oldMask);
  }
  chmodSync(path, 0o600);
  return {
    path,
    close: () => {
      server.close();
      removeSocketFile(path);
    },
  };
}

function removeSocketFile(path: string): void {
  try {
    unlinkSync(path);
  } catch {}
}
