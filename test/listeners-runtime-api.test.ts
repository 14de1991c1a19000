/**
 * HAProxy's runtime API on the listeners' control socket, end to end over loopback: `show stat` read by the CSV
 * reader that reads a real haproxy 2.6's (the columns line up), `show servers state`, `set server … state|weight`,
 * `enable|disable server`; a drain under keep-alive load (0 failed, new requests and connections elsewhere, the
 * existing ones finish), maint out of the checks, and the state kept across a reload and a worker kill.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { controlRequest } from '../src/listeners/control.js';
import { freePort, httpBackend, load, request, sleep, startListeners, tcpBackend, until } from './listeners-helpers.js';

/** RFC 4180 CSV with HAProxy's `# ` header line: the reader a `show stat` consumer would use. */
function parseShowStat(text: string): { header: string[]; rows: Record<string, string>[]; widths: number[] } {
  const lines = text.split('\n').filter((l) => l.length > 0);
  const split = (line: string): string[] => {
    const out: string[] = [];
    let cur = '';
    let q = false;
    for (let i = 0; i < line.length; i++) {
      const c = line[i]!;
      if (q) {
        if (c === '"' && line[i + 1] === '"') {
          cur += '"';
          i++;
        } else if (c === '"') q = false;
        else cur += c;
      } else if (c === '"') q = true;
      else if (c === ',') {
        out.push(cur);
        cur = '';
      } else cur += c;
    }
    out.push(cur);
    return out;
  };
  if (!lines[0]?.startsWith('# ')) throw new Error(`no '# ' header line: ${lines[0]}`);
  const header = split(lines[0].slice(2));
  const rows: Record<string, string>[] = [];
  const widths: number[] = [];
  for (const l of lines.slice(1)) {
    const f = split(l);
    widths.push(f.length);
    rows.push(Object.fromEntries(header.map((h, i) => [h, f[i] ?? ''])));
  }
  return { header, rows, widths };
}

const sock = (p: string, cmd: string) => controlRequest(p, cmd, 10_000);

async function startHaproxy(dir: string, backend: string): Promise<{ socket: string; proc: ChildProcess }> {
  const socket = path.join(dir, 'haproxy.sock');
  const port = await freePort();
  const cfg = path.join(dir, 'haproxy.cfg');
  fs.writeFileSync(
    cfg,
    `global\n  stats socket ${socket} level admin\ndefaults\n  mode http\n  timeout connect 1s\n  timeout client 5s\n  timeout server 5s\n` +
      `listen web\n  bind 127.0.0.1:${port}\n  server a ${backend} check inter 500\n  server b 127.0.0.1:1 weight 3\n`,
  );
  const proc = spawn('haproxy', ['-db', '-f', cfg], { stdio: 'ignore' });
  if (!(await until(() => fs.existsSync(socket), 10_000))) throw new Error('haproxy did not start');
  return { socket, proc };
}

test('show stat: the columns of haproxy 2.6, read by the same CSV reader; FRONTEND, servers, BACKEND', async (t) => {
  const a = await httpBackend('a');
  const port = await freePort();
  const l = await startListeners(`listeners:
  workers: 1
  stats: { enabled: false }
  listen:
    - name: web
      bind: 127.0.0.1:${port}
      mode: http
      check: { type: http, uri: /health, inter: 200ms, fall: 1000 }
      servers:
        - { name: a, address: ${a.address} }
        - { name: b, address: 127.0.0.1:1, weight: 3, check: false }
`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tierlb-hap-'));
  const hap = await startHaproxy(dir, a.address);
  t.teardown(async () => {
    hap.proc.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
    await l.stop();
    await a.close();
  });
  // (a busy machine: let the first checks pass before counting)
  const checked = async (s: string) => {
    const a = parseShowStat(await sock(s, 'show stat')).rows.find((r) => r.svname === 'a');
    // (UP, not only a last check passed: a busy start may have taken it DOWN, and rise needs two)
    return a?.status === 'UP' && a.check_status === 'L7OK';
  };
  t.true(await until(() => checked(l.socket)), 'tierlb checked a');
  // (b refuses: each request it is picked for is redispatched to a. A check every 200 ms may time out on a busy
  // machine: with fall 1000, a few in a row do not take a down while the four requests run)
  const statuses: number[] = [];
  for (let i = 0; i < 4; i++) statuses.push((await request(`http://127.0.0.1:${port}/`)).status);
  t.deepEqual(statuses, [200, 200, 200, 200], 'every request answered by a');
  // (a worker counts a request when its response has closed, which may come just after the client has it all)
  const served = async () =>
    parseShowStat(await sock(l.socket, 'show stat')).rows.find((r) => r.svname === 'BACKEND')?.stot === '4';
  if (!(await until(served))) {
    const rows = parseShowStat(await sock(l.socket, 'show stat')).rows;
    t.fail(`the four requests counted: ${rows.map((r) => `${r.svname} stot=${r.stot} status=${r.status}`).join(', ')}`);
  }
  const theirs = parseShowStat(await sock(hap.socket, 'show stat'));
  // (a check every 200 ms may time out once on a busy machine: read ours when the last one passed)
  await until(() => checked(l.socket));
  const ours = parseShowStat(await sock(l.socket, 'show stat'));
  t.deepEqual(ours.header, theirs.header, 'the same columns in the same order');
  t.true(theirs.header.length > 100);
  // every row has as many fields as the header (HAProxy ends each field, the header too, with a comma)
  for (const w of [...ours.widths, ...theirs.widths]) t.is(w, theirs.header.length);
  t.deepEqual(
    ours.rows.map((r) => `${r.pxname}/${r.svname}/${r.type}`),
    ['web/FRONTEND/0', 'web/a/2', 'web/b/2', 'web/BACKEND/1'],
  );
  const byName = (rows: Record<string, string>[], sv: string) => rows.find((r) => r.svname === sv)!;
  for (const rows of [ours.rows, theirs.rows]) {
    t.is(byName(rows, 'FRONTEND').status, 'OPEN');
    t.is(byName(rows, 'b').weight, '3');
    t.is(byName(rows, 'b').status, 'no check');
    t.is(byName(rows, 'b').addr, '127.0.0.1:1');
    t.is(byName(rows, 'BACKEND').algo, 'roundrobin');
  }
  t.is(byName(ours.rows, 'a').addr, a.address);
  t.is(byName(ours.rows, 'a').check_status, 'L7OK');
  t.is(byName(ours.rows, 'a').stot, '4');
  t.is(byName(ours.rows, 'FRONTEND').stot, '4');
  t.is(byName(ours.rows, 'BACKEND').stot, '4');
});

test('set server state / weight, enable / disable, show servers state; HAProxy error words', async (t) => {
  const a = await httpBackend('a');
  const b = await httpBackend('b');
  const port = await freePort();
  const l = await startListeners(`listeners:
  workers: 2
  stats: { enabled: false }
  listen:
    - name: web
      bind: 127.0.0.1:${port}
      mode: http
      servers:
        - { name: a, address: ${a.address}, weight: 10 }
        - { name: b, address: ${b.address} }
`);
  t.teardown(async () => {
    await l.stop();
    await a.close();
    await b.close();
  });
  const state = async () =>
    (await sock(l.socket, 'show servers state'))
      .split('\n')
      .slice(2)
      .filter(Boolean)
      .map((x) => x.split(' '));
  const first = (await sock(l.socket, 'show servers state')).split('\n');
  t.is(first[0], '1');
  t.true(first[1]!.startsWith('# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight'));
  t.deepEqual(
    (await state()).map((f) => f.slice(0, 9)),
    [
      ['1', 'web', '1', 'a', '127.0.0.1', '2', '0', '10', '10'],
      ['1', 'web', '2', 'b', '127.0.0.1', '2', '0', '1', '1'],
    ],
  );
  t.is(await sock(l.socket, 'set server web/a state drain'), '\n');
  t.is((await state())[0]![6], '8', 'FDRAIN');
  t.is(await sock(l.socket, 'set server web/a weight 50%'), '\n');
  t.is((await state())[0]![7], '5');
  t.is(await sock(l.socket, 'get weight web/a'), '5 (initial 10)\n\n');
  t.is(await sock(l.socket, 'disable server web/b'), '\n');
  t.deepEqual((await state())[1]!.slice(5, 7), ['0', '1'], 'maint: stopped, FMAINT');
  const stat = parseShowStat(await sock(l.socket, 'show stat'));
  t.deepEqual(
    stat.rows.map((r) => `${r.svname}:${r.status}`),
    ['FRONTEND:OPEN', 'a:DRAIN', 'b:MAINT', 'BACKEND:DOWN'],
  );
  // HAProxy's filters: proxy (name or iid), type bits (1 frontends, 2 backends, 4 servers), sid; up / no-maint
  const names = async (cmd: string) => parseShowStat(await sock(l.socket, cmd)).rows.map((r) => r.svname);
  t.deepEqual(await names('show stat web 4 -1'), ['a', 'b']);
  t.deepEqual(await names('show stat 1 3 -1'), ['FRONTEND', 'BACKEND']);
  t.deepEqual(await names('show stat -1 4 2'), ['b']);
  t.deepEqual(await names('show stat no-maint'), ['FRONTEND', 'a', 'BACKEND']);
  t.deepEqual(await names('show stat nope -1 -1'), []);
  // nothing usable: 503
  t.is((await request(`http://127.0.0.1:${port}/`)).status, 503);
  t.is(await sock(l.socket, 'enable server web/b; set server web/a state ready'), '\n\n');
  t.deepEqual(
    (await state()).map((f) => f.slice(5, 8)),
    [
      ['2', '0', '5'],
      ['2', '0', '1'],
    ],
  );
  // errors, as haproxy words them
  t.is(await sock(l.socket, 'set server web/zz state drain'), 'No such server.\n\n');
  t.is(await sock(l.socket, 'set server nope/a state drain'), 'No such backend.\n\n');
  t.is(await sock(l.socket, 'set server web state drain'), "Require 'backend/server'.\n\n");
  t.is(
    await sock(l.socket, 'set server web/a state foo'),
    "'set server <srv> state' expects 'ready', 'drain' and 'maint'.\n\n",
  );
  t.is(
    await sock(l.socket, 'set server web/a weight 300'),
    'Absolute weight can only be between 0 and 256 inclusive.\n\n',
  );
  t.regex(await sock(l.socket, 'help'), /set server <bk>\/<srv> state/);
  t.regex(await sock(l.socket, 'show info'), /^Name: tierlb\n(.*\n)*Pid: \d+\n(.*\n)*Uptime_sec: \d+\n/);
  t.regex(await sock(l.socket, 'no such thing'), /^Unknown command/);
  // the tierlb commands still answer
  t.true(Array.isArray(JSON.parse(await sock(l.socket, 'stats json'))));
  // the CLI's friendly aliases
  const cli = (...args: string[]) =>
    spawnSync(
      process.execPath,
      ['--import', 'tsx', 'test/listeners-entry.ts', 'listeners', 'server', ...args, '--socket', l.socket],
      {
        encoding: 'utf8',
      },
    );
  const drain = cli('drain', 'web/b');
  t.is(drain.status, 0, drain.stderr);
  t.is(drain.stdout, 'web/b: drain\n');
  t.is(cli('weight', 'web/b', '7').status, 0);
  t.deepEqual((await state())[1]!.slice(6, 8), ['8', '7']);
  t.is(cli('ready', 'web/b').status, 0);
  const bad = cli('maint', 'web/zz');
  t.is(bad.status, 1);
  t.regex(bad.stderr, /No such server/);
  t.is(cli('weight', 'web/b').status, 2, 'a weight is needed');
});

test('drain under keep-alive load: 0 failed, new requests and connections elsewhere, the existing finish; maint leaves the checks; kept across a worker kill and a reload', async (t) => {
  const a = await httpBackend('a');
  const b = await httpBackend('b');
  const ta = await tcpBackend('ta', '127.0.0.1', { greet: true });
  const tb = await tcpBackend('tb', '127.0.0.1', { greet: true });
  let checksOnA = 0;
  a.server.prependListener('request', (req) => {
    if (req.url === '/health') checksOnA++;
  });
  const port = await freePort();
  const tport = await freePort();
  const yaml = (extra = '') => `listeners:
  workers: 2
  stats: { enabled: false }
  listen:
    - name: web
      bind: 127.0.0.1:${port}
      mode: http
      # fall 1000: checks slowed down by a busy machine (the backends share the test's process with its load) do
      # not take a server down during the test
      check: { type: http, uri: /health, inter: 250ms, fall: 1000 }
      servers:
        - { name: a, address: ${a.address} }
        - { name: b, address: ${b.address} }
    - name: tcp
      bind: 127.0.0.1:${tport}
      mode: tcp
      servers:
        - { name: ta, address: ${ta.address} }
        - { name: tb, address: ${tb.address} }
${extra}`;
  const l = await startListeners(yaml());
  t.teardown(async () => {
    await l.stop();
    for (const x of [a, b, ta, tb]) await x.close();
  });
  const url = `http://127.0.0.1:${port}/`;
  // a TCP connection on ta and a slow HTTP request on a are in flight when they are drained
  const tcpConns: net.Socket[] = [];
  for (let i = 0; i < 2; i++) {
    const c = net.connect(tport, '127.0.0.1');
    c.on('error', () => {});
    tcpConns.push(c);
    await new Promise((r) => c.once('connect', r));
  }
  await until(() => ta.conns === 1 && tb.conns === 1);
  // which of the two is on ta: its greeting says
  const said = ['', ''];
  tcpConns.forEach((c, i) => {
    c.on('data', (d) => (said[i] += d));
  });
  t.true(await until(() => said.every((g) => g.length > 0)));
  for (const c of tcpConns) c.removeAllListeners('data');
  const onTa = tcpConns[said.findIndex((g) => g.includes('from ta'))]!;
  const onTb = tcpConns[said.findIndex((g) => g.includes('from tb'))]!;
  a.delay = 600;
  const slow = request(`${url}slow`);
  t.true(await until(() => a.active === 1), 'a slow request is in flight on a');
  a.delay = 0;
  const running = load(url, { concurrency: 6 });
  await sleep(400);
  t.is(await sock(l.socket, 'set server web/a state drain; set server tcp/ta state drain'), '\n\n');
  const hitsAtDrain = a.hits;
  await sleep(800);
  const res = await running.stop();
  t.is(res.fail, 0, res.errors.slice(0, 3).join(' '));
  t.is((await slow).body, 'a', 'the request in flight on the drained server finished');
  t.true(a.hits - hitsAtDrain <= 6, `at most the requests already picked reach a (${a.hits - hitsAtDrain})`);
  t.true(res.bodies.b! > 0);
  // new TCP connections go to tb; the one on ta still works until it ends
  for (let i = 0; i < 4; i++) {
    const c = net.connect(tport, '127.0.0.1');
    c.on('error', () => {});
    await new Promise((r) => c.once('connect', r));
    c.resume();
    c.end('x');
    await new Promise((r) => c.once('close', r));
  }
  t.is(ta.conns, 1, 'no new connection on the drained server');
  t.is(tb.conns, 5);
  let got = '';
  onTa.on('data', (d) => (got += d));
  onTa.end('hello');
  await until(() => got.length > 0);
  t.is(got, 'ta got 5 bytes', 'the existing connection on ta finished normally');
  onTb.destroy();

  // maint: out of the checks
  t.is(await sock(l.socket, 'set server web/a state maint'), '\n');
  await sleep(300);
  const before = checksOnA;
  await sleep(1200);
  t.is(checksOnA, before, 'no check reaches a server in maintenance');
  // kept when a worker dies and is replaced, and over a reload that keeps the server
  const pids = await l.workerPids();
  process.kill(pids[0]!, 'SIGKILL');
  await until(async () => (await l.workerPids()).length === 2 && !(await l.workerPids()).includes(pids[0]!));
  l.writeConfig(yaml('    # reloaded\n'));
  t.is(await l.reload(), 'ok\n');
  const st = await sock(l.socket, 'show servers state');
  t.regex(st, /\n1 web 1 a \S+ 0 1 /, 'web/a still in maintenance');
  t.regex(st, /\n2 tcp 1 ta \S+ 2 8 /, 'tcp/ta still draining');
  const after = await Promise.all(Array.from({ length: 10 }, () => request(url)));
  t.deepEqual(new Set(after.map((r) => r.body)), new Set(['b']));
  // ready: back in the checks and the picks
  t.is(await sock(l.socket, 'set server web/a state ready'), '\n');
  t.true(await until(() => checksOnA > before));
  t.true(
    await until(async () => (await Promise.all([request(url), request(url)])).some((r) => r.body === 'a')),
    'a takes requests again',
  );
});
