/**
 * `node [--import tsx] src/lab/entry.(ts|js) <command> …` = `tierlb <command> …`: how the lab starts tierlb
 * daemons inside namespaces, from the sources in development and from dist/ once built.
 */
import { main } from '../cli/main.js';

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`tierlb: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  },
);
