/** `tierlb adm` end to end: --rules FILE (offline), the admin socket client, and the daemon-side request handler. */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { parseCliArgs, readsStdin, runWithRulesFile } from '../src/cli/adm.js';
import { request, requestDirector } from '../src/director/client.js';
import { handleAdmRequest } from '../src/l4/adm/server.js';
import { newTarget, ok } from './adm-fixture.js';

const ROOT = new URL('..', import.meta.url).pathname;

/** `tierlb adm ...` in a child process (through src/cli/main.ts), with optional stdin. */
function tierlb(args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const script = "const m = await import('./src/cli/main.ts'); process.exitCode = await m.main(process.argv.slice(1));";
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', script, 'adm', ...args],
      { cwd: ROOT },
      (err, stdout, stderr) => {
        const code = err ? ((err as { code?: number }).code ?? 1) : 0;
        resolve({ code: typeof code === 'number' ? code : 1, stdout, stderr });
      },
    );
    child.stdin?.end(input ?? '');
  });
}

function tmp(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'tierlb-adm-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('parseCliArgs takes --rules / --socket before the ipvsadm arguments', (t) => {
  t.deepEqual(parseCliArgs(['--rules', 'f', '-L', '-n']), {
    rules: 'f',
    socket: '/run/tierlb/director.sock',
    argv: ['-L', '-n'],
  });
  t.deepEqual(parseCliArgs(['--socket=/s', '-S']), { socket: '/s', argv: ['-S'] });
  t.is(parseCliArgs(['--rules']), '--rules needs a value');
  t.true(readsStdin(['-R']));
  t.true(readsStdin(['--restore']));
  t.false(readsStdin(['-L', '-n']));
  t.false(readsStdin(['-S']));
});

test('--rules: a missing file is an empty table; changes are written back in -S form, listings are not', (t) => {
  const file = join(tmp(t), 'rules');
  t.deepEqual(runWithRulesFile(file, ['-L', '-n'], undefined), {
    code: 0,
    stdout:
      'IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n',
    stderr: '',
  });
  t.false(existsSync(file), 'a listing does not create the file');
  t.is(runWithRulesFile(file, ['-A', '-t', '10.0.0.1:80', '-s', 'rr'], undefined).code, 0);
  t.is(
    runWithRulesFile(file, ['-a', '-t', '10.0.0.1:80', '-r', '10.0.1.1', '-m', '-x', '50', '-y', '10'], undefined).code,
    0,
  );
  t.is(runWithRulesFile(file, ['--set', '0', '60', '0'], undefined).code, 0);
  t.is(
    readFileSync(file, 'utf8'),
    '-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.1.1:80 -m -w 1 -x 50 -y 10\n--set 900 60 300\n',
  );
  const mtime = statSync(file).mtimeMs;
  t.is(
    runWithRulesFile(file, ['-L', '-n', '--thresholds'], undefined).stdout.split('\n')[4],
    '  -> 10.0.1.1:80                  50         10         0          0         ',
  );
  t.is(runWithRulesFile(file, ['-L', '--timeout'], undefined).stdout, 'Timeout (tcp tcpfin udp): 900 60 300\n');
  t.is(runWithRulesFile(file, ['-A', '-t', '10.0.0.1:80'], undefined).stderr, 'Service already exists\n');
  t.is(statSync(file).mtimeMs, mtime, 'failed commands and listings leave the file alone');
});

test('--rules: a file with a bad line is reported and not touched', (t) => {
  const file = join(tmp(t), 'rules');
  writeFileSync(file, '-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.1.1 -w heavy\n');
  const r = runWithRulesFile(file, ['-C'], undefined);
  t.is(r.code, 1);
  t.is(r.stderr, `tierlb adm: ${file}: cannot load the rules:\nillegal weight specified\n`);
  t.is(readFileSync(file, 'utf8'), '-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.1.1 -w heavy\n');
});

test('tierlb adm --rules end to end: -R from stdin, -S, -L, exit codes', async (t) => {
  const file = join(tmp(t), 'rules');
  const rules = '-A -u 10.0.0.1:53 -s rr -p 60\n-a -u 10.0.0.1:53 -r 10.0.1.1 -m -w 2\n';
  t.deepEqual(await tierlb(['--rules', file, '-R'], rules), { code: 0, stdout: '', stderr: '' });
  t.is(readFileSync(file, 'utf8'), '-A -u 10.0.0.1:53 -s rr -p 60\n-a -u 10.0.0.1:53 -r 10.0.1.1:53 -m -w 2\n');
  const l = await tierlb(['--rules', file, '-Ln']);
  t.is(l.code, 0);
  t.is(l.stdout.split('\n')[3], 'UDP  10.0.0.1:53 rr persistent 60');
  t.deepEqual(await tierlb(['--rules', file, '-d', '-u', '10.0.0.1:53', '-r', '10.0.1.9']), {
    code: 255,
    stdout: '',
    stderr: 'No such destination\n',
  });
  t.is((await tierlb(['--rules', file, '-a', '-u', '10.0.0.1:53', '-r', '10.0.1.2', '-w', '-3'])).code, 2);
});

test('tierlb adm without a director: a clear error and exit 1', async (t) => {
  const sock = join(tmp(t), 'director.sock');
  t.deepEqual(await tierlb(['--socket', sock, '-L', '-n']), {
    code: 1,
    stdout: '',
    stderr: `tierlb adm: no director at ${sock} (start \`tierlb director\` or use --rules FILE)\n`,
  });
});

test('the admin socket: one JSON line each way, answered by handleAdmRequest', async (t) => {
  const sock = join(tmp(t), 'director.sock');
  const target = newTarget();
  const server = createServer((s) => {
    let buf = '';
    s.on('data', (d) => {
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl >= 0) s.end(`${handleAdmRequest(buf.slice(0, nl), target)}\n`);
    });
  });
  await new Promise<void>((r) => server.listen(sock, r));
  t.teardown(() => server.close());

  t.deepEqual(await requestDirector(sock, ['-R'], '-A -t 10.0.0.1:80 -s rr\n'), { code: 0, stdout: '', stderr: '' });
  t.is(ok(target, '-S').stdout, '-A -t 10.0.0.1:80 -s rr\n');
  const r = await tierlb(['--socket', sock, '-S', '-n']);
  t.deepEqual(r, { code: 0, stdout: '-A -t 10.0.0.1:80 -s rr\n', stderr: '' });
  const e = await tierlb(['--socket', sock, '-A', '-t', '10.0.0.1:80']);
  t.deepEqual(e, { code: 255, stdout: '', stderr: 'Service already exists\n' });
});

test('a director that closes without answering, or answers too late, is an error (not a hang)', async (t) => {
  const sock = join(tmp(t), 'director.sock');
  const server = createServer((s) => {
    s.once('data', (d) => {
      if (d.toString().includes('ping')) s.end();
    });
  });
  await new Promise<void>((r) => server.listen(sock, r));
  t.teardown(() => server.close());
  await t.throwsAsync(requestDirector(sock, ['ping'], undefined), {
    message: 'the director closed the connection without answering',
  });
  await t.throwsAsync(request(sock, { op: 'ping' }), {
    message: 'the director closed the connection without answering',
  });
  await t.throwsAsync(request(sock, { op: 'stats' }, 50), { message: 'timeout' });
});

test('handleAdmRequest answers bad requests with code 2', (t) => {
  const target = newTarget();
  t.deepEqual(JSON.parse(handleAdmRequest('{"argv": "-L"}', target)), {
    code: 2,
    stdout: '',
    stderr: 'tierlb adm: bad request: argv must be an array of strings\n',
  });
  t.is(JSON.parse(handleAdmRequest('not json', target)).code, 2);
  t.deepEqual(JSON.parse(handleAdmRequest('{"argv": ["-L", "--timeout"]}', target)), {
    code: 0,
    stdout: 'Timeout (tcp tcpfin udp): 900 120 300\n',
    stderr: '',
  });
});
