/**
 * Network namespaces made by tierlb (the lab, the tests): every namespace gets the run's unique prefix, is recorded,
 * and is deleted on dispose(), on process exit and on SIGINT/SIGTERM. Shared by the lab and the netns tests.
 */
import { type SpawnOptions, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { runCheckedSync } from '../sys/exec.js';

/** Run a command synchronously; throws src/sys's ExecError (stderr kept) on a failure unless allowFail. */
export function sh(cmd: string, args: string[], opts: { allowFail?: boolean; input?: string } = {}): string {
  try {
    return runCheckedSync([cmd, ...args], { input: opts.input });
  } catch (e) {
    if (opts.allowFail) return '';
    throw e;
  }
}

const live = new Set<NetnsSet>();
let hooked = false;

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  const cleanAll = () => {
    for (const s of live) s.dispose();
  };
  process.on('exit', cleanAll);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      cleanAll();
      process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1));
    });
  }
}

/** A unique prefix for one run: short, because interface names are limited to 15 characters. */
export function runPrefix(tag = 't'): string {
  return `tl${tag}${randomBytes(2).toString('hex')}`;
}

/** A set of namespaces (and root-namespace links) owned by one test or lab run. */
export class NetnsSet {
  readonly namespaces: string[] = [];
  readonly rootLinks: string[] = [];
  private readonly children = new Set<import('node:child_process').ChildProcess>();
  private disposed = false;

  constructor(readonly prefix: string = runPrefix()) {
    hookExit();
    live.add(this);
  }

  /** Create namespace `${prefix}-${name}` with lo up; returns its full name. */
  add(name: string): string {
    const ns = `${this.prefix}-${name}`;
    sh('ip', ['netns', 'add', ns]);
    this.namespaces.push(ns);
    sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    return ns;
  }

  /** Run a command inside a namespace synchronously. */
  exec(ns: string, cmd: string, args: string[], opts: { allowFail?: boolean; input?: string } = {}): string {
    return sh('ip', ['netns', 'exec', ns, cmd, ...args], opts);
  }

  /** Start a long-running process inside a namespace; it is killed on dispose(). */
  spawn(ns: string, cmd: string, args: string[], opts: SpawnOptions = {}) {
    const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: 'pipe', ...opts });
    this.children.add(child);
    child.on('exit', () => this.children.delete(child));
    return child;
  }

  /** A veth pair between two namespaces (either may be null for the root namespace). */
  veth(a: { ns: string | null; name: string }, b: { ns: string | null; name: string }): void {
    sh('ip', [
      'link',
      'add',
      a.name,
      ...(a.ns ? ['netns', a.ns] : []),
      'type',
      'veth',
      'peer',
      'name',
      b.name,
      ...(b.ns ? ['netns', b.ns] : []),
    ]);
    if (!a.ns) this.rootLinks.push(a.name);
    if (!b.ns) this.rootLinks.push(b.name);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    live.delete(this);
    for (const c of this.children) {
      try {
        c.kill('SIGKILL');
      } catch {}
    }
    for (const ns of this.namespaces) {
      // kill whatever still runs in the namespace, then delete it
      const pids = sh('ip', ['netns', 'pids', ns], { allowFail: true }).split('\n').filter(Boolean);
      for (const p of pids) {
        try {
          process.kill(Number(p), 'SIGKILL');
        } catch {}
      }
      sh('ip', ['netns', 'del', ns], { allowFail: true });
    }
    for (const l of this.rootLinks) sh('ip', ['link', 'del', l], { allowFail: true });
  }
}
