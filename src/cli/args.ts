/** The option loop the `tierlb <command>` parsers share. */

class MissingValue extends Error {}

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
