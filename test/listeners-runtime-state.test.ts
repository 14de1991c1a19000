/**
 * The admin state the runtime API sets, without processes: drain and maint take a server out of new picks, a
 * weight replaces the configured one (N or N% of it), and a reload keeps what it set for a server that stays, as
 * HAProxy's server-state-file does (unless the config changed what the state came from).
 */
import test from 'ava';
import { ManualClock } from '../src/common/clock.js';
import { loadListenersConfigString } from '../src/listeners/config.js';
import '../src/listeners/config-schema.js';
import { NOSERVER } from '../src/listeners/picker.js';
import { Pool } from '../src/listeners/pool.js';
import { adminFlags, setAdminState, setWeight } from '../src/listeners/runtime-api/servers-state.js';
import { serverStatus } from '../src/listeners/runtime-api/show-stat.js';

const cfg = (aWeight = 4, bDisabled = false) =>
  loadListenersConfigString(`listeners:
  listen:
    - name: web
      bind: 127.0.0.1:1
      servers:
        - { name: a, address: 127.0.0.1:2, weight: ${aWeight} }
        - { name: b, address: 127.0.0.1:3, disabled: ${bDisabled} }
`).listeners[0]!;

test('drain and maint: out of new picks; ready brings back; weights N and N%', (t) => {
  const clock = new ManualClock(0);
  const pool = new Pool(cfg(), clock);
  const [a, b] = pool.servers as [(typeof pool.servers)[0], (typeof pool.servers)[0]];
  t.true(setAdminState(a, 'drain', clock.now()));
  t.is(serverStatus(a), 'DRAIN');
  t.is(adminFlags(a), 8);
  t.is(a.weightAt(clock.now()), 0);
  for (let i = 0; i < 5; i++) t.is(pool.pick({}), b.id, 'new picks skip the drained server');
  t.true(setAdminState(b, 'maint', clock.now()));
  t.is(serverStatus(b), 'MAINT');
  t.is(pool.pick({}), NOSERVER);
  t.false(setAdminState(b, 'maint', clock.now()), 'no change, nothing to publish');
  setAdminState(a, 'ready', clock.now());
  t.is(pool.pick({}), a.id);
  t.is(setWeight(a, '50%'), undefined);
  t.is(a.weightAt(clock.now()), 2);
  t.is(setWeight(a, '300'), 'Absolute weight can only be between 0 and 256 inclusive.');
  t.is(setWeight(a, 'x'), 'Empty weight string empty or preceded by garbage');
  a.agentPct = 50;
  t.is(setWeight(a, '8'), undefined);
  t.is(a.weightAt(clock.now()), 8, 'a runtime weight replaces an agent percentage');
});

test('a reload keeps the runtime state of a server that stays; a changed config weight or disabled wins', (t) => {
  const clock = new ManualClock(0);
  const p1 = new Pool(cfg(4, true), clock);
  t.is(serverStatus(p1.servers[1]!), 'MAINT', 'disabled in the config');
  setAdminState(p1.servers[0]!, 'drain', 0);
  setWeight(p1.servers[0]!, '7');
  setAdminState(p1.servers[1]!, 'ready', 0);
  t.is(serverStatus(p1.servers[1]!), 'no check', 'ready leaves the config maintenance');
  const p2 = new Pool(cfg(4, true), clock, p1);
  t.is(p2.servers[0]!.admin, 'drain');
  t.is(p2.servers[0]!.uweight, 7);
  t.false(p2.servers[1]!.maint, 'kept out of maintenance: the config did not change');
  const p3 = new Pool(cfg(5, false), clock, p2);
  t.is(p3.servers[0]!.admin, 'drain');
  t.is(p3.servers[0]!.uweight, undefined, 'the config weight changed: it wins');
  t.false(p3.servers[1]!.maint);
  const p4 = new Pool(cfg(5, true), clock, p3);
  t.true(p4.servers[1]!.maint, 'the config says disabled again: it wins');
});
