/**
 * `tierlb demo [--requests N] [--config FILE] [--keep]` (= `npm run demo`): `tierlb lab demo`, the whole flow on the
 * shipped default config (config/lab.yaml): lab up → traffic → who served what → the trace of one request → lab down.
 * Exit 0 only when the flow really worked.
 */
import { run as runLab } from './lab.js';

export function run(argv: string[]): Promise<number> {
  return runLab(['demo', ...argv]);
}
