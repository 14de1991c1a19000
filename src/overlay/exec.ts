/**
 * The overlay executor: reads the host's state with `ip -j -d addr show` and `bridge -j fdb show` (in a namespace
 * with `-n NS`), runs the planner's commands, and checks that planning again yields nothing.
 */
import { TierlbError } from '../common/errors.js';
import { runCheckedSync, runSync, type SyncRunner } from '../sys/exec.js';
import type { OverlaySpec } from './config.js';
import { type Command, commandLine, type Plan, planDown, planUp, render } from './plan.js';
import { type HostState, parseHostState } from './state.js';

export interface ExecOptions {
  netns?: string;
  /**
   * The process runner (src/sys; a recording fake in tests). Synchronous: the overlay's API (cli, lab, tests) is.
   * A failing command throws src/sys's ExecError with its stderr.
   */
  run?: SyncRunner;
  /** Called before each command is run (for logging). */
  onCommand?: (line: string, cmd: Command) => void;
}

export function readHostState(opts: ExecOptions = {}): HostState {
  const run = (argv: string[]) => runCheckedSync(argv, {}, opts.run ?? runSync);
  const ip = run(render({ argv: ['ip', '-j', '-d', 'addr', 'show'], why: '' }, opts.netns));
  const fdb = run(render({ argv: ['bridge', '-j', 'fdb', 'show'], why: '' }, opts.netns));
  return parseHostState(ip, fdb);
}

export interface ApplyResult {
  plan: Plan;
  /** Commands that ran (none when there were conflicts or nothing to do). */
  ran: Command[];
}

function runPlan(plan: Plan, opts: ExecOptions): Command[] {
  const ran: Command[] = [];
  for (const c of plan.commands) {
    opts.onCommand?.(commandLine(c, opts.netns), c);
    runCheckedSync(render(c, opts.netns), {}, opts.run ?? runSync);
    ran.push(c);
  }
  return ran;
}

/**
 * Bring the host to the config. With conflicts (links not made by tierlb, missing ports) nothing is changed. After
 * the commands, the state is read again and must need no further command.
 */
export function overlayUp(spec: OverlaySpec, opts: ExecOptions = {}): ApplyResult {
  const plan = planUp(spec, readHostState(opts));
  if (plan.conflicts.length) return { plan, ran: [] };
  const ran = runPlan(plan, opts);
  if (ran.length) {
    const again = planUp(spec, readHostState(opts));
    if (again.commands.length || again.conflicts.length) {
      throw new TierlbError(
        'EOVERLAY_DRIFT',
        `overlay did not converge; still to do:\n  ${[...again.conflicts, ...again.commands.map((c) => commandLine(c, opts.netns))].join('\n  ')}`,
      );
    }
  }
  return { plan, ran };
}

/** Remove what the overlay made for the config (or, with all, every link it made). */
export function overlayDown(spec: OverlaySpec, opts: ExecOptions & { all?: boolean } = {}): ApplyResult {
  const plan = planDown(spec, readHostState(opts), { all: opts.all });
  return { plan, ran: runPlan(plan, opts) };
}

/** The comparison of config and host, without changing anything. */
export function overlayShow(spec: OverlaySpec, opts: ExecOptions = {}): Plan {
  return planUp(spec, readHostState(opts));
}
