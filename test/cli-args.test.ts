/** The option loop of the tierlb commands (src/cli/args.ts). */
import test from 'ava';
import { eachOption } from '../src/cli/args.js';
import { parseLabArgs } from '../src/cli/lab.js';

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

test('parseLabArgs: options, positional words and everything after -- in rest', (t) => {
  t.deepEqual(parseLabArgs(['exec', 'client1', '--', 'curl', '--config', 'x']), {
    sub: 'exec',
    rest: ['client1', 'curl', '--config', 'x'],
  });
  t.deepEqual(parseLabArgs(['demo', '-n', '5', '--keep', '--config', 'c.yaml', '--prefix', 'p', '--state-dir', 'd']), {
    sub: 'demo',
    rest: [],
    requests: 5,
    keep: true,
    config: 'c.yaml',
    prefix: 'p',
    stateDir: 'd',
  });
  t.deepEqual(parseLabArgs(['trace', '--pcap', '/tmp/p', '--port', '8080']), {
    sub: 'trace',
    rest: [],
    pcap: '/tmp/p',
    port: 8080,
  });
  t.deepEqual(parseLabArgs([]), { sub: '', rest: [] });
  t.is(parseLabArgs(['trace', '--requests', '0']), '--requests needs 1..100000');
  t.is(parseLabArgs(['trace', '--port', 'http']), '--port needs 1..65535');
  t.is(parseLabArgs(['trace', '--port', '0']), '--port needs 1..65535');
  t.is(parseLabArgs(['up', '--prefix']), '--prefix needs a value');
  t.is(parseLabArgs(['up', '--nope']), 'unknown option --nope');
  t.is(parseLabArgs(['up', '--help', '--nope']), 'help');
});
