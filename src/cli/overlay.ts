/**
 * `tierlb overlay up|down|show --config FILE [--netns NS]`: the VXLAN overlay of this host from the config's
 * `overlay` section.
 *   up      create / correct the bridges, VXLAN devices and fdb entries (idempotent); --dry-run prints the commands
 *   down    remove what the overlay made for the config (--all: every link carrying the overlay's alias)
 *   show    compare the host with the config (--json for machine output); exit 0 when in sync, 3 when not
 */
import { parseArgs } from 'node:util';
import { TierlbError } from '../common/errors.js';
import { loadConfigFile } from '../config/index.js';
import { normalizeOverlay, type OverlaySpec } from '../overlay/config.js';
import '../overlay/config-schema.js'; // registers the overlay section with the loader
import { overlayDown, overlayShow, overlayUp, readHostState } from '../overlay/exec.js';
import { commandLine, formatChecks, planDown, planUp } from '../overlay/plan.js';

const USAGE = `usage: tierlb overlay up|down|show --config FILE [--netns NS] [--dry-run] [--json] [--all] [--quiet]`;

/** The `overlay` section of a tierlb config file (problems at file:line:col, from the shared loader). */
export async function loadOverlaySpec(file: string): Promise<OverlaySpec> {
  const { config } = await loadConfigFile(file, { sections: ['overlay'] });
  if (config.overlay === undefined) throw new TierlbError('EOVERLAY_CONFIG', `${file}: no 'overlay' section`);
  return normalizeOverlay(config.overlay);
}

export async function run(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  const parse = (a: string[]) =>
    parseArgs({
      args: a,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        netns: { type: 'string', short: 'n' },
        'dry-run': { type: 'boolean' },
        json: { type: 'boolean' },
        all: { type: 'boolean' },
        quiet: { type: 'boolean', short: 'q' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  try {
    parsed = parse(argv);
  } catch (e) {
    process.stderr.write(`tierlb overlay: ${(e as Error).message}\n${USAGE}\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const action = positionals[0];
  if (!action || !['up', 'down', 'show'].includes(action) || positionals.length > 1 || !values.config) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  const out = (s: string) => process.stdout.write(s.endsWith('\n') ? s : `${s}\n`);
  const opts = {
    netns: values.netns,
    onCommand: values.quiet || values.json ? undefined : (line: string) => out(`+ ${line}`),
  };
  try {
    const spec = await loadOverlaySpec(values.config);
    if (action === 'show') {
      const plan = overlayShow(spec, opts);
      const inSync = plan.commands.length === 0 && plan.conflicts.length === 0;
      if (values.json)
        out(JSON.stringify({ inSync, checks: plan.checks, conflicts: plan.conflicts, commands: plan.commands }));
      else {
        out(formatChecks(plan.checks));
        for (const c of plan.conflicts) out(`conflict: ${c}`);
        out(inSync ? 'in sync' : `${plan.commands.length} command(s) to apply (tierlb overlay up)`);
      }
      return inSync ? 0 : 3;
    }
    if (values['dry-run']) {
      const state = readHostState(opts);
      const plan = action === 'up' ? planUp(spec, state) : planDown(spec, state, { all: values.all });
      if (values.json) out(JSON.stringify({ conflicts: plan.conflicts, commands: plan.commands }));
      else {
        for (const c of plan.commands) out(commandLine(c, opts.netns));
        for (const c of plan.conflicts) process.stderr.write(`conflict: ${c}\n`);
      }
      return plan.conflicts.length && action === 'up' ? 1 : 0;
    }
    const res = action === 'up' ? overlayUp(spec, opts) : overlayDown(spec, { ...opts, all: values.all });
    for (const c of res.plan.conflicts) process.stderr.write(`tierlb overlay: conflict: ${c}\n`);
    if (action === 'up' && res.plan.conflicts.length) {
      process.stderr.write('tierlb overlay: nothing changed\n');
      return 1;
    }
    if (values.json) out(JSON.stringify({ ran: res.ran, conflicts: res.plan.conflicts }));
    else if (!values.quiet) out(res.ran.length ? `${res.ran.length} command(s) applied` : 'nothing to do');
    return 0;
  } catch (e) {
    process.stderr.write(`tierlb overlay: ${(e as Error).message}\n`);
    return 1;
  }
}
