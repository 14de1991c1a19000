/** src/sys's command splitter: keepalived 2.2's rules for notify, misc_path and vrrp_script, one argv for one text. */
import test from 'ava';
import { miscProbe } from '../src/ha/checks/probes.js';
import { CommandSyntaxError } from '../src/sys/errors.js';
import { recordingRunner } from '../src/sys/recording.js';
import { runScript } from '../src/sys/script.js';
import { commandArgv, splitCommand } from '../src/sys/split.js';

test('blanks separate words; quotes group and join the text around them', (t) => {
  t.deepEqual(splitCommand('/bin/check  a\tb\nc\r\fd\ve'), ['/bin/check', 'a', 'b', 'c', 'd', 'e']);
  t.deepEqual(splitCommand(`/bin/check "a b" 'c d' e\\ f  g`), ['/bin/check', 'a b', 'c d', 'e f', 'g']);
  t.deepEqual(splitCommand(`a"b c"d`), ['ab cd']);
  t.deepEqual(splitCommand(`'it''s' "x"'y'`), ['its', 'xy']);
  t.deepEqual(splitCommand(`"it's" 'say "hi"'`), ["it's", 'say "hi"']);
  t.deepEqual(splitCommand(`x "" ''`), ['x', '', '']);
  t.deepEqual(splitCommand('   '), []);
  t.deepEqual(splitCommand(''), []);
});

test('no shell: $, *, ;, | and redirections are plain text', (t) => {
  t.deepEqual(splitCommand('/bin/echo $HOME * ; a|b >out'), ['/bin/echo', '$HOME', '*', ';', 'a|b', '>out']);
});

test('backslash escapes, in and out of quotes (single quotes too, unlike a shell)', (t) => {
  t.deepEqual(splitCommand(`"a\\"b" 'a\\'b' a\\\\b \\q`), ['a"b', "a'b", 'a\\b', 'q']);
  t.deepEqual(splitCommand('\\t\\n\\r\\a\\b\\f\\v\\E'), ['\t\n\r\x07\b\f\v\x1b']);
  t.deepEqual(splitCommand('\\x41\\x4a \\x4 \\xg'), ['AJ', '\x04', 'xg']);
  t.deepEqual(splitCommand('\\101\\60 \\7'), ['A0', '\x07']);
  t.deepEqual(splitCommand('\\cA\\c[ \\c'), ['\x01\x1b', 'c']);
  // escapes are bytes, the word is read as UTF-8; a NUL ends the word as it ends a C string
  t.deepEqual(splitCommand('caf\\xc3\\xa9 "ü é" ab\\0cd'), ['café', 'ü é', 'ab']);
});

test('what keepalived refuses is a typed error', (t) => {
  const q = t.throws(() => splitCommand('/bin/notify "open'), { instanceOf: CommandSyntaxError });
  t.is(q.code, 'ECMD_QUOTE');
  t.regex(q.message, /missing terminating "/);
  t.is(t.throws<CommandSyntaxError>(() => splitCommand(`/bin/notify 'open`))?.code, 'ECMD_QUOTE');
  t.is(t.throws<CommandSyntaxError>(() => splitCommand('/bin/notify x\\'))?.code, 'ECMD_ESCAPE');
  t.is(t.throws<CommandSyntaxError>(() => commandArgv('   '))?.code, 'ECMD_EMPTY');
  t.is(t.throws<CommandSyntaxError>(() => commandArgv('""'))?.code, 'ECMD_EMPTY');
});

test('the same text gives the same argv as a notify script and as a misc_path', async (t) => {
  const texts = [
    `/etc/keepalived/check.sh "a b" 'c d' e\\ f`,
    `/usr/bin/test -e '/run/x y'`,
    `/bin/sh -c 'exit 4'`,
    `a"b c"d \\x41 "q\\"q"`,
  ];
  for (const text of texts) {
    const notify = recordingRunner();
    const misc = recordingRunner();
    await runScript(text, [], {}, notify);
    await miscProbe(text, 1000, misc);
    t.deepEqual(notify.calls[0].argv, splitCommand(text), text);
    t.deepEqual(misc.calls[0].argv, notify.calls[0].argv, text);
  }
  // keepalived's notify adds TYPE NAME STATE PRIORITY after the script's own words
  const rec = recordingRunner();
  await runScript(texts[0], ['GROUP', 'G1', 'BACKUP', '0'], {}, rec);
  t.deepEqual(rec.calls[0].argv, ['/etc/keepalived/check.sh', 'a b', 'c d', 'e f', 'GROUP', 'G1', 'BACKUP', '0']);
});
