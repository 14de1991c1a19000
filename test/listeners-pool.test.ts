/** The primary's pool (backups, maxconn queue, slowstart, agent weight), checks' rise/fall and agent replies, config. */
import test from 'ava';
import { ManualClock } from '../src/common/clock.js';
import { applyResult, parseAgentReply } from '../src/listeners/checks.js';
import { type ListenerSpec, loadListenersConfigString } from '../src/listeners/config.js';
import type { Picked } from '../src/listeners/picker.js';
import { Pool } from '../src/listeners/pool.js';

function spec(yamlServers: string, extra = ''): ListenerSpec {
  return loadListenersConfigString(`listeners:
  workers: 1
  listen:
    - name: l
      bind: 127.0.0.1:8080
      mode: http${extra}
      servers:
${yamlServers}
`).listeners[0]!;
}

/** what a pick got, by server name */
type Outcome = { server: string } | { error: string };

function outcome(pool: Pool, r: Picked): Outcome {
  return typeof r === 'number' ? { server: pool.name(r) } : { error: r };
}

function pick(pool: Pool, src?: string): Outcome | 'queued' {
  let out: Outcome | 'queued' = 'queued';
  pool.acquire({ src }, undefined, (r) => (out = outcome(pool, r)));
  return out;
}

const name = (o: Outcome | 'queued') => (o === 'queued' ? 'queued' : 'server' in o ? o.server : o.error);

test('backups take traffic only when no active server is up', (t) => {
  const clock = new ManualClock(0);
  const pool = new Pool(
    spec(`        - { name: a, address: 10.0.0.1:80 }
        - { name: b, address: 10.0.0.2:80, backup: true }`),
    clock,
  );
  t.is(name(pick(pool)), 'a');
  pool.servers[0]!.healthy = false;
  t.is(name(pick(pool)), 'b');
  pool.servers[1]!.healthy = false;
  t.is(name(pick(pool)), 'noserver');
});

test('maxconn queues, release serves the queue in order, timeout queue expires', (t) => {
  const clock = new ManualClock(0);
  const pool = new Pool(
    spec(`        - { name: a, address: 10.0.0.1:80, maxconn: 1 }`, '\n      timeout: { queue: 1s }'),
    clock,
  );
  t.is(name(pick(pool)), 'a');
  const got: string[] = [];
  pool.acquire({}, undefined, (r) => got.push(`1:${name(outcome(pool, r))}`));
  pool.acquire({}, undefined, (r) => got.push(`2:${name(outcome(pool, r))}`));
  t.is(pool.qcur, 2);
  pool.release(pool.index('a')!);
  t.deepEqual(got, ['1:a']);
  clock.advance(1000);
  pool.serveQueue();
  t.deepEqual(got, ['1:a', '2:timeout']);
  t.is(pool.qmax, 2);
});

test('slowstart ramps the weight; agent % scales it; drain and maint', (t) => {
  const clock = new ManualClock(10_000);
  const pool = new Pool(spec(`        - { name: a, address: 10.0.0.1:80, weight: 100, slowstart: 10s }`), clock);
  const s = pool.servers[0]!;
  t.is(s.weightAt(clock.now()), 100); // up since start: no ramp
  s.upSince = clock.now();
  clock.advance(1000);
  t.is(s.weightAt(clock.now()), 10);
  clock.advance(4000);
  t.is(s.weightAt(clock.now()), 50);
  clock.advance(5000);
  t.is(s.weightAt(clock.now()), 100);
  s.agentPct = 50;
  t.is(s.weightAt(clock.now()), 50);
  s.admin = 'drain';
  t.is(s.status, 'NOLB');
  t.is(name(pick(pool)), 'noserver');
  s.admin = 'maint';
  t.is(s.status, 'MAINT');
});

test('rise/fall: DOWN after fall failures, UP after rise successes', (t) => {
  const clock = new ManualClock(0);
  const pool = new Pool(
    spec(`        - { name: a, address: 10.0.0.1:80 }`, '\n      check: { type: tcp, inter: 1s, rise: 2, fall: 3 }'),
    clock,
  );
  const s = pool.servers[0]!;
  const chk = pool.spec.check!;
  const bad = { ok: false, status: 'L4CON', desc: 'refused' };
  const good = { ok: true, status: 'L4OK', desc: 'ok' };
  t.is(applyResult(s, bad, chk, 1), null);
  t.is(applyResult(s, bad, chk, 2), null);
  t.is(applyResult(s, bad, chk, 3), 'down');
  t.is(s.status, 'DOWN');
  t.is(applyResult(s, good, chk, 4), null);
  t.is(applyResult(s, bad, chk, 5), null);
  t.is(applyResult(s, good, chk, 6), null);
  t.is(applyResult(s, good, chk, 7), 'up');
  t.is(s.upSince, 7);
  t.is(s.chkdown, 1);
});

test('agent replies (HAProxy agent-check words)', (t) => {
  t.deepEqual(parseAgentReply('up 75%\n'), { oper: 'up', weightPct: 75 });
  t.deepEqual(parseAgentReply('drain'), { admin: 'drain' });
  t.deepEqual(parseAgentReply('maint,down #disk full'), { admin: 'maint', oper: 'down', desc: 'disk full' });
  t.deepEqual(parseAgentReply('ready 100%'), { admin: 'ready', weightPct: 100 });
  t.deepEqual(parseAgentReply('stopped'), { oper: 'down' });
});

test('config: defaults, durations, and file:line:col problems', (t) => {
  const l = spec(
    `        - { name: a, address: 10.0.0.1:80, slowstart: 30s, send_proxy: v2 }`,
    '\n      timeout: { server: 1m }',
  );
  t.is(l.timeout.server, 60_000);
  t.is(l.timeout.connect, 5000);
  t.is(l.balance, 'roundrobin');
  t.like(l.servers[0], { host: '10.0.0.1', port: 80, weight: 1, slowstart: 30_000, sendProxy: 'v2' });
  const bad = `listeners:
  listen:
    - name: l
      bind: 127.0.0.1:80
      balance: leastcon
      servers:
        - { name: a, address: nowhere }
    - name: l
      bind: 127.0.0.1:80
      servers: []
`;
  const err = t.throws(() => loadListenersConfigString(bad, 'x.yaml'));
  const msg = err!.message;
  t.regex(msg, /x\.yaml:5:\d+: .*unknown balance 'leastcon'/);
  t.regex(msg, /x\.yaml:7:\d+: .*'nowhere' is not host:port/);
  t.regex(msg, /x\.yaml:8:\d+: .*listener 'l' is defined twice \(first at line 3\)/);
  t.regex(msg, /x\.yaml:9:\d+: .*already bound/);
  t.regex(msg, /x\.yaml:10:\d+: .*at least one server/);
});
