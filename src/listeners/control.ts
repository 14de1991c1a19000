/**
 * The primary's control socket (a unix socket, default /run/tierlb/listeners.sock): one command line in, the
 * answer out, then close — like HAProxy's stats socket. Commands: `stats [table|csv|json]`, `reload`, `workers`.
 * `reload` answers `ok` or `error` followed by the reasons (file:line:col: reason).
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { ListenersError } from './errors.js';

export interface ControlServer {
  close(): Promise<void>;
}

function alive(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(socketPath);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

export async function startControl(
  socketPath: string,
  handle: (line: string) => Promise<string>,
): Promise<ControlServer> {
  fs.mkdirSync(path.dirname(socketPath), { recursive: true });
  if (fs.existsSync(socketPath)) {
    if (await alive(socketPath))
      throw new ListenersError(
        'ECONTROL_IN_USE',
        `${socketPath} is in use by a running primary: stop it first, or give this one another control socket`,
      );
    fs.unlinkSync(socketPath);
  }
  const server = net.createServer((c) => {
    let buf = '';
    c.setEncoding('utf8');
    c.on('error', () => {});
    c.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      const line = buf.slice(0, nl);
      buf = '';
      handle(line).then(
        (out) => c.end(out),
        (e) => c.end(`error\n${String(e)}\n`),
      );
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        try {
          fs.unlinkSync(socketPath);
        } catch {}
      }),
  };
}

/** Send one command to a running primary; resolves with its answer. */
export function controlRequest(socketPath: string, command: string, timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = net.connect(socketPath);
    let out = '';
    const t = setTimeout(() => {
      c.destroy();
      reject(
        new ListenersError(
          'ECONTROL_NO_ANSWER',
          `no answer from ${socketPath} in ${timeoutMs} ms: is the primary busy or stuck? (see its log)`,
        ),
      );
    }, timeoutMs);
    c.setEncoding('utf8');
    c.on('connect', () => c.write(`${command}\n`));
    c.on('data', (d: string) => (out += d));
    c.on('end', () => {
      clearTimeout(t);
      resolve(out);
    });
    c.on('error', (e) => {
      clearTimeout(t);
      reject(e);
    });
  });
}
