/**
 * How the HTTP benchmarks start tierlb: the built product, as a user runs it (`bin/tierlb.js` over tsc's dist/),
 * built first by `npm run build` so that it is the current sources'. Not the sources through tsx: its esbuild
 * transform keeps function names with a helper (`__name`, an Object.defineProperty) on every function it creates,
 * e.g. each request's attempt object, which cost tierlb ~5% of its req/s and CPU in the HTTP benchmark (measured
 * 2026-12-03, listeners-quick, 3 rounds: 38.1k req/s at 31.5 ms CPU per 1k requests from the sources, 40.1k at 29.6
 * built). `BENCH_FROM_SOURCES=1` starts the sources instead (no build; stack traces and profiles name .ts lines).
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

const REPO = new URL('../..', import.meta.url).pathname;

let built = false;

/** node's arguments to run `tierlb ARGS...` (the build made once per benchmark process) */
export function tierlbArgs(args: string[]): string[] {
  if (process.env.BENCH_FROM_SOURCES === '1') return ['--import', 'tsx', join(REPO, 'bench/l7-tierlb.ts'), ...args];
  if (!built) {
    process.stderr.write('bench: building tierlb (npm run build), so that the built product is measured\n');
    execFileSync('npm', ['run', '--silent', 'build'], { cwd: REPO, stdio: ['ignore', 'ignore', 'inherit'] });
    built = true;
  }
  return [join(REPO, 'bin/tierlb.js'), ...args];
}
