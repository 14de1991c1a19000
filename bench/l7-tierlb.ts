// `tierlb` from the sources for the HTTP benchmarks with BENCH_FROM_SOURCES=1 (./lib/product.ts):
// node --import tsx bench/l7-tierlb.ts listeners --config FILE.
// A file, not `node -e`, because node:cluster workers inherit the primary's execArgv.
import { main } from '../src/cli/main.js';

process.exitCode = await main(process.argv.slice(2));
