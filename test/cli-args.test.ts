/** The option loop of the tierlb commands (src/cli/args.ts). */
import test from 'ava';
import { eachOption } from '../src/cli/args.js';

const parse = (argv: string[]) => {
  const seen: string[] = [];
  const err = eachOption(argv, (a, val) => {
    if (a === '--x') seen.push(`x=${val()}`);
    else if (a === '--flag') seen.push('flag');
    else if (a === '--help') return 'help';
    else return `unknown option ${a}`;
    return undefined;
  });
  return { err, seen };
};

test('eachOption: options with and without a value, in order', (t) => {
  t.deepEqual(parse(['--x', '1', '--flag', '--x', '--flag']), { err: undefined, seen: ['x=1', 'flag', 'x=--flag'] });
  t.deepEqual(parse([]), { err: undefined, seen: [] });
});

test('eachOption: a missing value, or what the callback returns, stops the loop', (t) => {
  t.deepEqual(parse(['--flag', '--x']), { err: '--x needs a value', seen: ['flag'] });
  t.deepEqual(parse(['--help', '--flag']), { err: 'help', seen: [] });
  t.deepEqual(parse(['--flag', '--nope', '--flag']), { err: 'unknown option --nope', seen: ['flag'] });
});

test('eachOption: other errors of the callback are not swallowed', (t) => {
  t.throws(
    () =>
      eachOption(['--a'], () => {
        throw new TypeError('bug');
      }),
    { instanceOf: TypeError },
  );
});
