/** The pure health-check state logic (keepalived's epilogs, inhibit, alpha, quorum, hysteresis, sorry server). */
import test from 'ava';
import {
  type CheckerTiming,
  type RealServerHealthSpec,
  realWeight,
  type VirtualServerHealthSpec,
  VirtualServerState,
} from '../src/ha/checks/state.js';

const tcp = (o: Partial<CheckerTiming> = {}): CheckerTiming => ({
  kind: 'tcp',
  delayLoopMs: 6000,
  retry: 1,
  delayBeforeRetryMs: 1000,
  ...o,
});

function rs(n: number, o: Partial<RealServerHealthSpec> = {}): RealServerHealthSpec {
  return { addr: `10.0.0.${n}`, port: 80, weight: 1, inhibitOnFailure: false, checkers: [tcp()], ...o };
}

function vs(o: Partial<VirtualServerHealthSpec> = {}): VirtualServerState {
  return new VirtualServerState({ quorum: 1, hysteresis: 0, alpha: false, realServers: [rs(1), rs(2)], ...o });
}

const ok = { ok: true };
const bad = { ok: false, reason: 'refused' };

test('init: every server without alpha goes in with its weight; quorum is gained', (t) => {
  const v = vs({ realServers: [rs(1, { weight: 3 }), rs(2)] });
  const r = v.init();
  t.deepEqual(r.actions, [
    { op: 'add', addr: '10.0.0.1', port: 80, weight: 3, sorry: false },
    { op: 'add', addr: '10.0.0.2', port: 80, weight: 1, sorry: false },
  ]);
  t.true(v.quorumUp);
  t.deepEqual(
    r.events.map((e) => e.type),
    ['quorum-up'],
  );
});

test('tcp: a failure is retried after delay_before_retry, the last retry takes the server out', (t) => {
  const v = vs();
  v.init();
  const first = v.result(0, 0, bad);
  t.is(first.delayMs, 1000);
  t.deepEqual(first.actions, []);
  const second = v.result(0, 0, bad);
  t.is(second.delayMs, 6000);
  t.deepEqual(second.actions, [{ op: 'del', addr: '10.0.0.1', port: 80, sorry: false }]);
  t.deepEqual(
    second.events.map((e) => e.type),
    ['rs-down'],
  );
  // down: failures are not retried and change nothing
  const third = v.result(0, 0, bad);
  t.is(third.delayMs, 6000);
  t.deepEqual(third.actions, []);
  // back
  const up = v.result(0, 0, ok);
  t.deepEqual(up.actions, [{ op: 'add', addr: '10.0.0.1', port: 80, weight: 1, sorry: false }]);
  t.deepEqual(
    up.events.map((e) => e.type),
    ['rs-up'],
  );
});

test('tcp: a success between failures resets the retry counter', (t) => {
  const v = vs();
  v.init();
  t.is(v.result(0, 0, bad).delayMs, 1000);
  t.is(v.result(0, 0, ok).delayMs, 6000);
  t.is(v.result(0, 0, bad).delayMs, 1000);
  t.deepEqual(v.result(0, 0, bad).actions, [{ op: 'del', addr: '10.0.0.1', port: 80, sorry: false }]);
});

test('retry 0: the first failure takes the server out', (t) => {
  const v = vs({ realServers: [rs(1, { checkers: [tcp({ retry: 0 })] }), rs(2)] });
  v.init();
  t.deepEqual(v.result(0, 0, bad).actions, [{ op: 'del', addr: '10.0.0.1', port: 80, sorry: false }]);
});

test('retry 3: down after the third retry (four failures)', (t) => {
  const v = vs({ realServers: [rs(1, { checkers: [tcp({ retry: 3 })] }), rs(2)] });
  v.init();
  for (let i = 0; i < 3; i++) t.deepEqual(v.result(0, 0, bad), { delayMs: 1000, actions: [], events: [] });
  t.is(v.result(0, 0, bad).actions.length, 1);
});

test('inhibit_on_failure: weight 0 instead of removal, the weight comes back', (t) => {
  const v = vs({ realServers: [rs(1, { inhibitOnFailure: true, weight: 5, checkers: [tcp({ retry: 0 })] }), rs(2)] });
  v.init();
  const down = v.result(0, 0, bad);
  t.deepEqual(down.actions, [{ op: 'edit', addr: '10.0.0.1', port: 80, weight: 0, sorry: false }]);
  t.like(down.events[0], { type: 'rs-down', inhibit: true });
  const up = v.result(0, 0, ok);
  t.deepEqual(up.actions, [{ op: 'edit', addr: '10.0.0.1', port: 80, weight: 5, sorry: false }]);
});

test('alpha: servers start out of the pool and go in on their first success', (t) => {
  const v = vs({ alpha: true });
  const r = v.init();
  t.deepEqual(r.actions, []);
  t.false(v.quorumUp);
  // quorum starts down (nothing alive yet); without a sorry server there is nothing to announce
  t.deepEqual(r.events, []);
  const up = v.result(1, 0, ok);
  t.deepEqual(up.actions, [{ op: 'add', addr: '10.0.0.2', port: 80, weight: 1, sorry: false }]);
  t.deepEqual(
    up.events.map((e) => e.type),
    ['rs-up', 'quorum-up'],
  );
});

test('alpha: a first tcp failure is not retried and changes nothing', (t) => {
  const v = vs({ alpha: true });
  v.init();
  t.deepEqual(v.result(0, 0, bad), { delayMs: 6000, actions: [], events: [] });
});

test('alpha + inhibit_on_failure: the server is configured with weight 0 from the start', (t) => {
  const v = vs({ alpha: true, realServers: [rs(1, { inhibitOnFailure: true, weight: 4 })] });
  t.deepEqual(v.init().actions, [{ op: 'add', addr: '10.0.0.1', port: 80, weight: 0, sorry: false }]);
  t.deepEqual(v.result(0, 0, ok).actions, [{ op: 'edit', addr: '10.0.0.1', port: 80, weight: 4, sorry: false }]);
});

test('alpha on a table that already holds the server takes it out until it passes', (t) => {
  const v = vs({ alpha: true, realServers: [rs(1)] });
  t.deepEqual(v.init(() => true).actions, [{ op: 'del', addr: '10.0.0.1', port: 80, sorry: false }]);
});

test('init on a table that already holds the server edits it instead of adding', (t) => {
  const v = vs({ realServers: [rs(1, { weight: 2 })] });
  t.deepEqual(v.init(() => true).actions, [{ op: 'edit', addr: '10.0.0.1', port: 80, weight: 2, sorry: false }]);
});

test('http: a failing URL is retried even while the checker is down', (t) => {
  const http = tcp({ kind: 'http', retry: 2 });
  const v = vs({ realServers: [rs(1, { checkers: [http] }), rs(2)] });
  v.init();
  t.is(v.result(0, 0, bad).delayMs, 1000);
  t.is(v.result(0, 0, bad).delayMs, 1000);
  t.deepEqual(v.result(0, 0, bad).actions, [{ op: 'del', addr: '10.0.0.1', port: 80, sorry: false }]);
  // down, failing: still retried
  t.is(v.result(0, 0, bad).delayMs, 1000);
});

test('several checkers: down when one fails, up only when all pass', (t) => {
  const v = vs({ realServers: [rs(1, { checkers: [tcp({ retry: 0 }), tcp({ retry: 0 })] }), rs(2)] });
  v.init();
  t.is(v.result(0, 0, bad).actions.length, 1);
  t.deepEqual(v.result(0, 1, bad).actions, []);
  t.deepEqual(v.result(0, 0, ok).actions, []);
  t.false(v.realServers[0].alive);
  t.deepEqual(v.result(0, 1, ok).actions, [{ op: 'add', addr: '10.0.0.1', port: 80, weight: 1, sorry: false }]);
});

const misc = (o: Partial<CheckerTiming> = {}): CheckerTiming => ({
  kind: 'misc',
  delayLoopMs: 5000,
  retry: 0,
  delayBeforeRetryMs: 1000,
  ...o,
});

test('misc: exit 0 up, exit 1 down, exit 2+ down without misc_dynamic', (t) => {
  const v = vs({ realServers: [rs(1, { checkers: [misc()] }), rs(2)] });
  v.init();
  t.deepEqual(v.result(0, 0, { ok: true, exitCode: 0 }).actions, []);
  t.deepEqual(v.result(0, 0, { ok: false, exitCode: 1 }).actions, [
    { op: 'del', addr: '10.0.0.1', port: 80, sorry: false },
  ]);
  t.deepEqual(v.result(0, 0, { ok: true, exitCode: 0 }).actions.length, 1);
  t.deepEqual(v.result(0, 0, { ok: false, exitCode: 7 }).actions, [
    { op: 'del', addr: '10.0.0.1', port: 80, sorry: false },
  ]);
  // killed at misc_timeout
  v.result(0, 0, { ok: true, exitCode: 0 });
  t.is(v.result(0, 0, { ok: false, reason: 'timed out' }).actions.length, 1);
});

test('misc_dynamic: exit code n ≥ 2 sets weight n − 2, 0 restores the configured weight, 1 is down', (t) => {
  const v = vs({ realServers: [rs(1, { weight: 10, checkers: [misc({ dynamic: true })] }), rs(2)] });
  v.init();
  const w7 = v.result(0, 0, { ok: false, exitCode: 7 });
  t.deepEqual(w7.actions, [{ op: 'edit', addr: '10.0.0.1', port: 80, weight: 5, sorry: false }]);
  t.like(w7.events[0], { type: 'weight', from: 10, to: 5 });
  t.deepEqual(v.result(0, 0, { ok: false, exitCode: 7 }).actions, []);
  t.deepEqual(v.result(0, 0, { ok: false, exitCode: 2 }).actions, [
    { op: 'edit', addr: '10.0.0.1', port: 80, weight: 0, sorry: false },
  ]);
  t.true(v.realServers[0].alive);
  t.deepEqual(v.result(0, 0, { ok: true, exitCode: 0 }).actions, [
    { op: 'edit', addr: '10.0.0.1', port: 80, weight: 10, sorry: false },
  ]);
  v.result(0, 0, { ok: false, exitCode: 255 });
  t.is(v.realServers[0].effectiveWeight, 253);
  t.deepEqual(v.result(0, 0, { ok: false, exitCode: 1 }).actions, [
    { op: 'del', addr: '10.0.0.1', port: 80, sorry: false },
  ]);
  // down resets the dynamic weight: back up with exit 0 = the configured weight
  t.deepEqual(v.result(0, 0, { ok: true, exitCode: 0 }).actions, [
    { op: 'add', addr: '10.0.0.1', port: 80, weight: 10, sorry: false },
  ]);
});

test('misc: retry counts like the other checkers and waits delay_before_retry', (t) => {
  const v = vs({ realServers: [rs(1, { checkers: [misc({ retry: 1 })] }), rs(2)] });
  v.init();
  t.deepEqual(v.result(0, 0, { ok: false, exitCode: 1 }), { delayMs: 1000, actions: [], events: [] });
  const r = v.result(0, 0, { ok: false, exitCode: 1 });
  t.is(r.delayMs, 5000);
  t.is(r.actions.length, 1);
});

test('sorry server: added when the last server goes, removed when one comes back', (t) => {
  const v = vs({
    sorry: { addr: '10.0.9.9', port: 8080, inhibit: false },
    realServers: [rs(1, { checkers: [tcp({ retry: 0 })] }), rs(2, { checkers: [tcp({ retry: 0 })] })],
  });
  t.is(v.init().actions.length, 2);
  t.deepEqual(v.result(0, 0, bad).actions, [{ op: 'del', addr: '10.0.0.1', port: 80, sorry: false }]);
  const last = v.result(1, 0, bad);
  t.deepEqual(last.actions, [
    { op: 'del', addr: '10.0.0.2', port: 80, sorry: false },
    { op: 'add', addr: '10.0.9.9', port: 8080, weight: 1, sorry: true },
  ]);
  t.deepEqual(
    last.events.map((e) => e.type),
    ['rs-down', 'sorry-add', 'quorum-down'],
  );
  t.true(v.sorryAlive);
  const back = v.result(0, 0, ok);
  // while the sorry server is in, perform_svr_state leaves the table alone; update_quorum_state then swaps
  t.deepEqual(back.actions, [
    { op: 'del', addr: '10.0.9.9', port: 8080, sorry: true },
    { op: 'add', addr: '10.0.0.1', port: 80, weight: 1, sorry: false },
  ]);
  t.false(v.sorryAlive);
});

test('sorry server: with alpha it is in from the start', (t) => {
  const v = vs({ alpha: true, sorry: { addr: '10.0.9.9', port: 80, inhibit: false } });
  t.deepEqual(v.init().actions, [{ op: 'add', addr: '10.0.9.9', port: 80, weight: 1, sorry: true }]);
});

test('sorry_server_inhibit: configured at weight 0, enabled and disabled by weight', (t) => {
  const v = vs({
    sorry: { addr: '10.0.9.9', port: 80, inhibit: true },
    realServers: [rs(1, { checkers: [tcp({ retry: 0 })] })],
  });
  t.deepEqual(v.init().actions, [
    { op: 'add', addr: '10.0.0.1', port: 80, weight: 1, sorry: false },
    { op: 'add', addr: '10.0.9.9', port: 80, weight: 0, sorry: true },
  ]);
  t.deepEqual(v.result(0, 0, bad).actions, [
    { op: 'del', addr: '10.0.0.1', port: 80, sorry: false },
    { op: 'edit', addr: '10.0.9.9', port: 80, weight: 1, sorry: true },
  ]);
  t.deepEqual(v.result(0, 0, ok).actions, [
    { op: 'edit', addr: '10.0.9.9', port: 80, weight: 0, sorry: true },
    { op: 'add', addr: '10.0.0.1', port: 80, weight: 1, sorry: false },
  ]);
});

test('quorum with hysteresis: lost below quorum − hysteresis, regained at quorum + hysteresis', (t) => {
  const four = [1, 2, 3, 4].map((n) => rs(n, { checkers: [tcp({ retry: 0 })] }));
  const v = vs({ quorum: 3, hysteresis: 1, realServers: four });
  const init = v.init();
  t.true(v.quorumUp);
  t.like(init.events[0], { type: 'quorum-up', weightSum: 4, threshold: 4 });
  v.result(0, 0, bad); // 3
  v.result(1, 0, bad); // 2 = 3 − 1: still up
  t.true(v.quorumUp);
  const lost = v.result(2, 0, bad); // 1 < 2
  t.false(v.quorumUp);
  t.like(lost.events.at(-1), { type: 'quorum-down', weightSum: 1, threshold: 2 });
  t.deepEqual(lost.actions, [{ op: 'del', addr: '10.0.0.3', port: 80, sorry: false }]);
  v.result(0, 0, ok); // 2
  v.result(1, 0, ok); // 3 < 4: still down
  t.false(v.quorumUp);
  const gained = v.result(2, 0, ok); // 4
  t.true(v.quorumUp);
  t.like(gained.events.at(-1), { type: 'quorum-up', weightSum: 4, threshold: 4 });
});

test('quorum counts weights, not servers', (t) => {
  const v = vs({
    quorum: 5,
    realServers: [rs(1, { weight: 4, checkers: [tcp({ retry: 0 })] }), rs(2, { weight: 2 })],
  });
  v.init();
  t.true(v.quorumUp);
  t.is(v.weighLive(), 6);
  const r = v.result(0, 0, bad);
  t.false(v.quorumUp);
  t.like(r.events.at(-1), { type: 'quorum-down', weightSum: 2 });
});

test('realWeight clamps to the IPVS range', (t) => {
  t.is(realWeight(-3), 0);
  t.is(realWeight(70000), 65535);
  t.is(realWeight(7), 7);
});
