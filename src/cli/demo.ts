/**
 * `tierlb demo [--requests N] [--config FILE] [--keep]` (= `npm run demo`, = `tierlb lab demo`): the whole flow on the
 * shipped default config (config/lab.yaml): lab up → traffic → who served what → the trace of one request → lab down.
 * Exit 0 only when the flow really worked.
 */
import { defaultConfigFile, parseLabArgs } from './lab.js';

export async function run(argv: string[]): Promise<number> {
  const keep = argv.includes('--keep');
  const o = parseLabArgs(['demo', ...argv.filter((a) => a !== '--keep')]);
  if (o === 'help') {
    process.stdout.write('usage: tierlb demo [--requests N] [--config FILE] [--prefix P] [--state-dir DIR] [--keep]\n');
    return 0;
  }
  if (typeof o === 'string') {
    process.stderr.write(`tierlb demo: ${o}\n`);
    return 2;
  }
  if (process.getuid && process.getuid() !== 0) {
    process.stderr.write('tierlb demo: needs root (network namespaces, iptables, tcpdump); run it as root\n');
    return 1;
  }
  const { runDemo } = await import('../lab/demo.js');
  return runDemo({
    configFile: defaultConfigFile(o),
    prefix: o.prefix,
    stateDir: o.stateDir,
    requests: o.requests,
    keep,
  });
}
