/**
 * The ecmp lab (config/lab-ecmp.yaml) end to end through its demo: the router's ECMP route over the three directors,
 * one request traced through router → director → LB node → backend, and 60 long downloads that all survive a
 * drain, a SIGKILL and an addition; `lab down` leaves no namespace and no BIRD behind. Own prefix and state dir.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { ecmpDemo } from '../src/lab/ecmp-demo.js';
import { labDown, listNamespaces } from '../src/lab/lab.js';
import { runPrefix, sh } from '../src/lab/netns.js';

const CONFIG = new URL('../config/lab-ecmp.yaml', import.meta.url).pathname;
const stateDir = mkdtempSync(join(tmpdir(), 'tierlb-lab-ecmp-'));
const prefix = runPrefix('e');
const quiet = () => {};

test.after.always(async () => {
  await labDown({ prefix, stateDir, out: quiet });
  rmSync(stateDir, { recursive: true, force: true });
});

test.serial('ecmp demo: ECMP route, trace through the router, flows survived: 60/60, nothing left', async (t) => {
  const lines: string[] = [];
  const r = await ecmpDemo({ configFile: CONFIG, prefix, stateDir, out: (l) => lines.push(l), err: quiet });
  const log = lines.join('\n');
  t.true(r.ok, `${r.problems.join('\n')}\n${log}`);
  t.regex(
    log,
    /nexthop via 10\.77\.1\.2 dev eth0 weight 1\s+nexthop via 10\.77\.1\.3 dev eth0 weight 1\s+nexthop via 10\.77\.1\.4/,
  );
  t.regex(log, /the router forwards it by ECMP/);
  t.regex(log, /✓ reply-bypass .* via rt; 0 at the directors/);
  t.is(lines.at(-1), 'flows survived: 60/60');
  t.deepEqual(
    listNamespaces().filter((n) => n.startsWith(`${prefix}-`)),
    [],
  );
  // no BIRD of this lab left (they ran with the lab's state dir in their command line)
  t.false(sh('ps', ['-eo', 'args'], { allowFail: true }).includes(stateDir));
});
