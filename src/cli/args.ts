/** The option loop the `tierlb <command>` parsers share. */

import { TierlbError } from '../common/errors.js';

/** An option without its value; eachOption turns it into its message. */
class MissingValue extends TierlbError {
  override readonly code = 'ECLI_MISSING_VALUE';
  constructor(message: string) {
    super('ECLI_MISSING_VALUE', message);
    this.name = 'MissingValue';
  }
}

/**
 * Calls `on` for each word of argv in turn; `value()` takes the next word as the option's value. Stops at the first
 * string `on` returns (an error message, or a word such as 'help') and returns it; `X needs a value` when an option's
 * value is missing; undefined when every word was taken.
 */
export function eachOption(
  argv: string[],
  on: (opt: string, value: () => string) => string | undefined,
): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const opt = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new MissingValue(`${opt} needs a value`);
      return v;
    };
    try {
      const stop = on(opt, value);
      if (stop !== undefined) return stop;
    } catch (e) {
      if (e instanceof MissingValue) return e.message;
      throw e;
    }
  }
  return undefined;
}
