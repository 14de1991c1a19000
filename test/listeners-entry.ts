/** Runs `tierlb <argv>` from the TypeScript sources (tests spawn `node --import tsx test/listeners-entry.ts listeners ...`). */
import { main } from '../src/cli/main.js';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`tierlb: ${err?.stack ?? err}\n`);
    process.exitCode = 1;
  },
);
