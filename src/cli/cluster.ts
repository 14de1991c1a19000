/**
 * `tierlb cluster render --config CLUSTER.yaml --node NAME [--marks FILE] [--no-save]`: print one node's own config
 * (a director's `director` + `bgp`, an LB node's `listeners` + `overlay`), derived from the cluster file.
 * `tierlb cluster marks --config CLUSTER.yaml [--marks FILE] [--no-save]`: the listeners' fwmarks.
 * The fwmarks are kept in the marks file (default `<cluster file stem>.marks.json` beside it), written when a new
 * listener gets one (not with --no-save), so adding a listener never renumbers the others.
 */

import { defaultMarksFile, loadCluster, saveMarks } from '../cluster/load.js';
import { renderNodeYaml } from '../cluster/render.js';
import { formatProblem } from '../config/index.js';
import { ConfigError } from '../config/problems.js';
import { eachOption } from './args.js';

const USAGE = [
  'usage: tierlb cluster render --config CLUSTER.yaml --node NAME [--marks FILE] [--no-save]',
  '       tierlb cluster marks --config CLUSTER.yaml [--marks FILE] [--no-save]',
].join('\n');

export async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === '-h' || sub === '--help' || sub === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const o: { config?: string; node?: string; marks?: string; save: boolean } = { save: true };
  const err = eachOption(rest, (a, val) => {
    if (a === '--config' || a === '-c') o.config = val();
    else if (a === '--node' || a === '-n') o.node = val();
    else if (a === '--marks') o.marks = val();
    else if (a === '--no-save') o.save = false;
    else return `unknown option ${a}`;
    return undefined;
  });
  if (err || (sub !== 'render' && sub !== 'marks') || !o.config || (sub === 'render' && !o.node)) {
    process.stderr.write(`${err ? `tierlb cluster: ${err}\n` : ''}${USAGE}\n`);
    return 2;
  }
  const marksFile = o.marks ?? defaultMarksFile(o.config);
  try {
    const c = await loadCluster(o.config, marksFile);
    if (sub === 'render') process.stdout.write(renderNodeYaml(c.cluster, o.node as string, c.marks, o.config));
    else for (const [n, m] of Object.entries(c.marks)) process.stdout.write(`${n} ${m} 0x${m.toString(16)}\n`);
    if (c.marksChanged && o.save) {
      saveMarks(marksFile, c.marks);
      process.stderr.write(`tierlb cluster: fwmarks saved to ${marksFile} (keep it with the cluster file)\n`);
    }
    return 0;
  } catch (e) {
    if (e instanceof ConfigError) for (const p of e.problems) process.stderr.write(`${formatProblem(p)}\n`);
    else process.stderr.write(`tierlb cluster: ${(e as Error).message}\n`);
    return 1;
  }
}
