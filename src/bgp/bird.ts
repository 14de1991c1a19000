/**
 * BIRD 2 run by the director, in the director's own network namespace (a child inherits it): the config and the
 * control socket live in their own directory beside the director's socket (<socket>.bird/); the daemon runs in the foreground
 * (`bird -f`) in its own process group, with the parent-death signal set (setpriv --pdeathsig KILL), so a director
 * that is SIGKILLed takes its routes with it (the router sees the session drop, or BFD notices within ~0.3 s).
 * An unexpected exit is logged and the daemon restarted with backoff (restartDelayMs); stop() ends the whole
 * process group (SIGTERM: BIRD sends a Cease to its neighbors; SIGKILL after 3 s).
 *
 * Announcements: announce(vips) rewrites the config and runs `birdc configure` (BIRD reconfigures the static
 * protocol in place; the sessions stay up).
 *
 * Processes are started with node:child_process directly, in the small functions below, until src/sys has its
 * process runner.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { accessSync, constants, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';
import { createInterface } from 'node:readline';
import { type Logger, log as rootLog } from '../common/log.js';
import { restartDelayMs } from './announce.js';
import { birdConfig } from './bird-config.js';
import { BgpError } from './errors.js';
import type { BgpPlan, BgpVip } from './semantics.js';

/** A program on the PATH (plus /usr/sbin and /sbin, where Debian puts bird); undefined when absent. */
export function findProgram(name: string): string | undefined {
  const dirs = isAbsolute(name)
    ? ['']
    : [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), '/usr/sbin', '/sbin', '/usr/local/sbin'];
  for (const d of dirs) {
    const p = d ? join(d, name) : name;
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {}
  }
  return undefined;
}

/** Run a program to completion (local helper until src/sys has the shared runner). */
function runProgram(
  cmd: string,
  args: string[],
  timeoutMs: number,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
      resolve({ code, stdout, stderr: stderr || (err && !stdout ? err.message : '') });
    });
  });
}

export interface BirdProtocol {
  name: string;
  proto: string;
  state: string;
  /** for BGP: Established, Active, Connect, ... */
  info: string;
}

export interface BirdStatus {
  running: boolean;
  pid?: number;
  restarts: number;
  announced: string[];
  protocols: BirdProtocol[];
}

/** `birdc show protocols` (with `timeformat protocol iso long`: Since is two words) → rows. */
export function parseProtocols(out: string): BirdProtocol[] {
  const rows: BirdProtocol[] = [];
  for (const line of out.split('\n')) {
    const w = line.trim().split(/\s+/);
    if (w.length < 4 || w[0] === 'Name' || w[0] === 'BIRD' || line.startsWith(' ')) continue;
    rows.push({ name: w[0], proto: w[1], state: w[3], info: w.slice(6).join(' ') });
  }
  return rows;
}

export interface BirdDaemonOptions {
  plan: BgpPlan;
  /** the daemon's own directory (config, control socket, pid file) */
  dir: string;
  log?: Logger;
}

export class BirdDaemon {
  readonly confPath: string;
  readonly socketPath: string;
  private plan: BgpPlan;
  private announced: BgpVip[] = [];
  private child: ChildProcess | null = null;
  private stopping = false;
  private restarts = 0;
  private failures = 0;
  private startedAt = 0;
  private restartTimer: NodeJS.Timeout | null = null;
  private readonly log: Logger;
  private bird = '';
  private birdc = '';
  private readonly onExit = () => this.killGroup('SIGKILL');
  /** serialises configure calls */
  private chain: Promise<void> = Promise.resolve();

  constructor(private readonly o: BirdDaemonOptions) {
    this.plan = o.plan;
    this.log = (o.log ?? rootLog).child({ part: 'bgp' });
    this.confPath = join(o.dir, 'bird.conf');
    this.socketPath = join(o.dir, 'bird.ctl');
  }

  /** Write the config (nothing announced), start BIRD and wait until its control socket answers. */
  async start(): Promise<void> {
    const bird = findProgram(this.plan.bird);
    const birdc = findProgram(this.plan.birdc);
    if (!bird || !birdc)
      throw new BgpError(
        'BGP_DAEMON_MISSING',
        `${!bird ? this.plan.bird : this.plan.birdc} not found: the bgp section needs BIRD 2 (apt-get install bird2, or scripts/install-deps.sh)`,
      );
    this.bird = bird;
    this.birdc = birdc;
    mkdirSync(this.o.dir, { recursive: true, mode: 0o700 });
    this.writeConf();
    const check = await runProgram(bird, ['-p', '-c', this.confPath], 5000);
    if (check.code !== 0)
      throw new BgpError('BGP_CONTROL', `BIRD refused the generated config ${this.confPath}: ${check.stderr.trim()}`);
    process.on('exit', this.onExit);
    await this.spawnDaemon();
  }

  private writeConf(): void {
    const tmp = `${this.confPath}.tmp`;
    writeFileSync(tmp, birdConfig(this.plan, this.announced), { mode: 0o600 });
    renameSync(tmp, this.confPath);
  }

  private async spawnDaemon(): Promise<void> {
    rmSync(this.socketPath, { force: true });
    const args = ['-f', '-c', this.confPath, '-s', this.socketPath, '-P', join(this.o.dir, 'bird.pid')];
    const setpriv = findProgram('setpriv');
    const [cmd, argv] = setpriv ? [setpriv, ['--pdeathsig', 'KILL', this.bird, ...args]] : [this.bird, args];
    const child = spawn(cmd, argv, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    this.startedAt = Date.now();
    let lastErr = '';
    for (const s of [child.stdout, child.stderr]) {
      if (!s) continue;
      createInterface({ input: s }).on('line', (line) => {
        lastErr = line;
        this.log.info({ bird: line }, 'bird');
      });
    }
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.once('error', (e) => this.log.error({ err: e.message }, 'bird did not start'));
    child.once('exit', (code, signal) => {
      if (this.child === child) this.child = null;
      if (this.stopping) return;
      if (Date.now() - this.startedAt > 60_000) this.failures = 0;
      const delay = restartDelayMs(++this.failures);
      this.log.error({ code, signal, restartInMs: delay }, 'bird exited; restarting');
      this.restartTimer = setTimeout(() => {
        this.restartTimer = null;
        if (this.stopping) return;
        this.restarts++;
        this.writeConf();
        this.spawnDaemon().catch((e: Error) => this.log.error({ err: e.message }, 'bird restart failed'));
      }, delay);
    });
    // ready once birdc answers
    for (let i = 0; i < 100; i++) {
      if (this.child !== child) {
        await exited;
        throw new BgpError('BGP_DAEMON_START', `bird exited at start: ${lastErr || 'no output'} (see the log)`);
      }
      const r = await runProgram(this.birdc, ['-s', this.socketPath, 'show', 'status'], 2000);
      if (r.code === 0 && /ready/.test(r.stdout)) {
        this.log.info({ birdPid: child.pid, socket: this.socketPath }, 'bird running');
        return;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new BgpError('BGP_DAEMON_START', `bird did not answer on ${this.socketPath} within 5 s`);
  }

  /** birdc with the daemon's socket; throws BgpError on failure. */
  async birdcCmd(...args: string[]): Promise<string> {
    const r = await runProgram(this.birdc, ['-s', this.socketPath, ...args], 5000);
    if (r.code !== 0)
      throw new BgpError('BGP_CONTROL', `birdc ${args.join(' ')} failed: ${(r.stderr || r.stdout).trim()}`);
    return r.stdout;
  }

  /** The VIPs announced now (sorted). */
  get announcedVips(): string[] {
    return this.announced.map((v) => v.address);
  }

  /**
   * Announce exactly `vips` (the others are withdrawn), and take a new plan if given (neighbors, timers: BIRD
   * applies the differences on configure). A no-op when nothing changed.
   */
  announce(vips: readonly BgpVip[], plan?: BgpPlan): Promise<void> {
    const next = [...vips].sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
    const p = this.chain.then(async () => {
      if (this.stopping && next.length) throw new BgpError('BGP_STOPPED', 'the bgp daemon is stopping');
      const nextPlan = plan ?? this.plan;
      if (JSON.stringify(next) === JSON.stringify(this.announced) && nextPlan === this.plan) return;
      this.announced = next;
      this.plan = nextPlan;
      if (!this.bird) return; // never started: nothing to reconfigure
      this.writeConf();
      if (!this.child) return; // not running (restarting): the next start reads the file
      const out = await this.birdcCmd('configure');
      if (!/Reconfigur/.test(out)) throw new BgpError('BGP_CONTROL', `bird refused the new config: ${out.trim()}`);
      this.log.info({ announced: this.announcedVips }, 'bgp announcements changed');
    });
    this.chain = p.catch(() => undefined);
    return p;
  }

  async status(): Promise<BirdStatus> {
    const st: BirdStatus = {
      running: !!this.child,
      restarts: this.restarts,
      announced: this.announcedVips,
      protocols: [],
    };
    if (this.child?.pid) st.pid = this.child.pid;
    if (this.child) {
      try {
        st.protocols = parseProtocols(await this.birdcCmd('show', 'protocols'));
      } catch (e) {
        this.log.warn({ err: (e as Error).message }, 'bird status failed');
      }
    }
    return st;
  }

  private killGroup(sig: NodeJS.Signals): void {
    const pid = this.child?.pid;
    if (!pid) return;
    try {
      process.kill(-pid, sig);
    } catch {
      try {
        process.kill(pid, sig);
      } catch {}
    }
  }

  /** End the daemon's process group (SIGTERM, SIGKILL after 3 s) and remove its socket and pid file. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = null;
    await this.chain;
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      const gone = new Promise((r) => child.once('exit', r));
      this.killGroup('SIGTERM');
      const t = setTimeout(() => this.killGroup('SIGKILL'), 3000);
      await gone;
      clearTimeout(t);
      // anything BIRD left in its group
      try {
        if (child.pid) process.kill(-child.pid, 'SIGKILL');
      } catch {}
    }
    this.child = null;
    process.off('exit', this.onExit);
    rmSync(this.socketPath, { force: true });
    rmSync(join(this.o.dir, 'bird.pid'), { force: true });
  }
}
