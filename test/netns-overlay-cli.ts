// `tierlb` from the sources for the netns tests: node --import tsx test/netns-overlay-cli.ts ARGS.
// A file, not `node -e`, because node:cluster workers inherit the primary's execArgv.
import { main } from '../src/cli/main.js';

process.exitCode = await main(process.argv.slice(2));
