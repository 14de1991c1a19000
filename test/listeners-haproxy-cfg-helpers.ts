/**
 * One haproxy.cfg run twice, side by side on loopback: by a real haproxy and by `tierlb listeners --haproxy` (from
 * the sources). The file takes its ports from environment variables in quotes ("127.0.0.1:${FRONT}"), which both
 * read, so each process gets its own ports from the same text.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, sleep } from './listeners-helpers.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export type Who = 'haproxy' | 'tierlb';
export const BOTH: readonly Who[] = ['haproxy', 'tierlb'];

/** A free port no earlier call handed out (freePort closes its probe, so two calls may return the same one). */
const taken = new Set<number>();
export async function uniquePort(): Promise<number> {
  for (;;) {
    const p = await freePort();
    if (!taken.has(p)) {
      taken.add(p);
      return p;
    }
  }
}

export function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export interface SideBySide {
  logs: Record<Who, string>;
  /** SIGTERM both (SIGKILL after 8 s) and wait for them */
  stop(): Promise<void>;
}

/**
 * Start haproxy and tierlb on `cfg`, each with its environment; resolves once every port `waitFor(who)` names
 * accepts connections (throws with the process's output when one exits or 30 s pass).
 */
export async function runBoth(
  cfg: string,
  envOf: (who: Who) => Record<string, string>,
  waitFor: (who: Who) => number[],
): Promise<SideBySide> {
  const procs: ChildProcess[] = [];
  const logs: Record<Who, string> = { haproxy: '', tierlb: '' };
  const entry = path.join(ROOT, 'test/listeners-entry.ts');
  for (const who of BOTH) {
    const argv =
      who === 'haproxy'
        ? ['haproxy', '-f', cfg, '-db']
        : [process.execPath, '--import', 'tsx', entry, 'listeners', '--haproxy', cfg];
    const env = { ...process.env, TIERLB_LOG_LEVEL: 'warn', ...envOf(who) };
    const p = spawn(argv[0], argv.slice(1), { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    p.stdout!.on('data', (d) => (logs[who] += d));
    p.stderr!.on('data', (d) => (logs[who] += d));
    procs.push(p);
  }
  const stop = async () => {
    for (const p of procs) if (p.exitCode === null) p.kill('SIGTERM');
    await Promise.all(
      procs.map(
        (p) =>
          new Promise<void>((r) => {
            if (p.exitCode !== null) return r();
            const t = setTimeout(() => p.kill('SIGKILL'), 8000);
            p.once('exit', () => {
              clearTimeout(t);
              r();
            });
          }),
      ),
    );
  };
  const deadline = Date.now() + 30_000;
  for (const who of BOTH) {
    for (const port of waitFor(who)) {
      while (!(await portOpen(port))) {
        if (Date.now() > deadline || procs.some((p) => p.exitCode !== null)) {
          await stop();
          throw new Error(`${who} did not start:\n${logs[who]}`);
        }
        await sleep(100);
      }
    }
  }
  return { logs, stop };
}
