/**
 * `node [--import tsx] src/cli/entry.(ts|js) <command> …` = `tierlb <command> …`, exiting with the command's code: how
 * the lab starts tierlb daemons inside namespaces (src/lab/proc.ts tierlbArgv, by path: the lab imports nothing of
 * cli/) and how the netns tests start them, from the sources in development and from dist/ once built.
 */
import { main } from './main.js';

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`tierlb: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  },
);
