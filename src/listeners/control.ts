/**
 * The primary's control socket (a unix socket, default /run/tierlb/listeners.sock): one command line in, the
 * answer out, then close — like HAProxy's stats socket. Commands: `stats [table|csv|json]`, `reload`, `workers`.
 * `reload` answers `ok` or `error` followed by the reasons (file:line:col: reason).
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { ListenersError } from './errors.js';
import { helpText, type RuntimeHost, runtimeCommands } from './runtime-api/commands.js';
import { formatCsv, formatTable, type StatRow } from './stats.js';

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

/** What the control socket's commands act on (the primary). */
export interface ControlHost {
  runtime: RuntimeHost;
  rows(): Promise<StatRow[]>;
  reload(): Promise<{ ok: boolean; error?: string }>;
  /** one line per worker: pid, generation, slot, state */
  workers(): string[];
}

/** One control-socket line: HAProxy's runtime commands (./runtime-api/), then tierlb's stats / reload / workers. */
export async function controlCommand(line: string, h: ControlHost): Promise<string> {
  const rt = await runtimeCommands(h.runtime, line);
  if (rt !== undefined) return rt;
  const [cmd, arg] = line.trim().split(/\s+/);
  switch (cmd) {
    case 'stats': {
      const rows = await h.rows();
      if (arg === 'csv') return formatCsv(rows);
      if (arg === 'json') return `${JSON.stringify(rows)}\n`;
      return formatTable(rows);
    }
    case 'reload': {
      const r = await h.reload();
      return r.ok ? 'ok\n' : `error\n${r.error}\n`;
    }
    case 'workers':
      return `${h.workers().join('\n')}\n`;
    default:
      return `Unknown command, but maybe one of the following ones is a better match:\n${helpText()}\n`;
  }
}
