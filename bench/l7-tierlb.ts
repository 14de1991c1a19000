// `tierlb` from the sources for bench/l7.ts: node --import tsx bench/l7-tierlb.ts listeners --config FILE.
// A file, not `node -e`, because node:cluster workers inherit the primary's execArgv.
import { main } from '../src/cli/main.js';

process.exitCode = await main(process.argv.slice(2));
