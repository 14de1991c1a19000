/**
 * A health check's timeout against a real HTTP server in another process: an answer that came within the timeout
 * counts even when the checking process ran late (its event loop was blocked past the timer), and an answer that
 * truly comes after the timeout is L7TOUT.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import test from 'ava';
import { runCheck } from '../src/listeners/checks.js';
import type { CheckSpec } from '../src/listeners/config.js';

const SPEC: CheckSpec = { type: 'http', method: 'GET', uri: '/health', inter: 1000, rise: 2, fall: 3 };

/** An HTTP server in a child process: says `got` on stdout when a request came, answers `delay` ms later. */
async function slowServer(delay: number): Promise<{ port: number; got: Promise<void>; proc: ChildProcess }> {
  const src = `const s = require('node:http').createServer((q, r) => { process.stdout.write('got\\n');
    setTimeout(() => r.end('ok'), ${delay}); });
  s.listen(0, '127.0.0.1', () => process.stdout.write('port ' + s.address().port + '\\n'));`;
  const proc = spawn(process.execPath, ['-e', src], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  let gotIt: () => void = () => {};
  const got = new Promise<void>((r) => (gotIt = r));
  const port = await new Promise<number>((resolve, reject) => {
    proc.once('exit', (c) => reject(new Error(`server exited ${c}`)));
    proc.stdout!.on('data', (d) => {
      out += d;
      const m = /port (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
      if (out.includes('got')) gotIt();
    });
  });
  return { port, got, proc };
}

/** block this process's event loop for `ms` (the checking process is busy) */
function block(ms: number): void {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    // busy
  }
}

test('an answer that came in time counts though the checker ran late; a late answer is L7TOUT', async (t) => {
  const srv = await slowServer(100);
  t.teardown(() => srv.proc.kill('SIGKILL'));
  // answered 100 ms after the request, timeout 300 ms; the checker is blocked until well past 300 ms
  const pending = runCheck('127.0.0.1', srv.port, SPEC, 300);
  await srv.got;
  block(600);
  const r = await pending;
  t.is(r.status, 'L7OK', r.desc);
  t.true(r.ok);

  const late = await slowServer(600);
  t.teardown(() => late.proc.kill('SIGKILL'));
  // answered 600 ms after the request, timeout 300 ms, the checker free to run: the timeout wins
  const r2 = await runCheck('127.0.0.1', late.port, SPEC, 300);
  t.is(r2.status, 'L7TOUT');
  t.false(r2.ok);
});
