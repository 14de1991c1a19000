/** The director's announce rule (pure) and the routing daemon's restart backoff. */
import test from 'ava';
import { type AnnounceInput, announceDecisions, restartDelayMs, type ServiceInput } from '../src/bgp/announce.js';

const web: ServiceInput = { name: 'tcp 10.99.0.1:80', vips: ['10.99.0.1'], quorumUp: true, weightSum: 2 };
const tls: ServiceInput = { name: 'tcp 10.99.0.1:443', vips: ['10.99.0.1'], quorumUp: true, weightSum: 2 };
const mark: ServiceInput = { name: 'fwm 10000', vips: ['10.99.0.2', '10.99.0.1'], weightSum: 1 };
const base: AnnounceInput = { datapathUp: true, stopping: false, services: [web, tls, mark], require: 'all' };

const announced = (i: AnnounceInput) =>
  announceDecisions(i)
    .filter((d) => d.announce)
    .map((d) => d.vip);

test('every VIP of the services is announced while the data path is up and every quorum is met', (t) => {
  t.deepEqual(announceDecisions(base), [
    { vip: '10.99.0.1', announce: true, reason: 'quorum met' },
    { vip: '10.99.0.2', announce: true, reason: 'quorum met' },
  ]);
});

test('withdrawn while the data path is down and while stopping (SIGTERM)', (t) => {
  t.deepEqual(announced({ ...base, datapathUp: false }), []);
  t.is(announceDecisions({ ...base, datapathUp: false })[0].reason, 'data path down');
  t.deepEqual(announced({ ...base, stopping: true }), []);
  t.is(announceDecisions({ ...base, stopping: true })[1].reason, 'director stopping');
});

test('quorum loss of one service withdraws its VIP (require all) but not the others', (t) => {
  const i = { ...base, services: [web, { ...tls, quorumUp: false }, mark] };
  t.deepEqual(announced(i), ['10.99.0.2']);
  t.is(announceDecisions(i)[0].reason, 'quorum lost: tcp 10.99.0.1:443');
  // require any: one service with quorum keeps the VIP
  t.deepEqual(announced({ ...i, require: 'any' }), ['10.99.0.1', '10.99.0.2']);
  t.deepEqual(announceDecisions({ ...i, require: 'any' })[0].reason, 'quorum met on 2/3');
  // and back when the quorum returns
  t.deepEqual(announced(base), ['10.99.0.1', '10.99.0.2']);
});

test('an unchecked service has quorum while its configured weights sum to at least 1', (t) => {
  t.deepEqual(announced({ ...base, services: [{ ...mark, weightSum: 0 }] }), []);
  t.deepEqual(announced({ ...base, services: [mark] }), ['10.99.0.2', '10.99.0.1']);
  // a checked service follows the checker (hysteresis is the checker's), whatever the weights
  t.deepEqual(announced({ ...base, services: [{ ...web, quorumUp: false, weightSum: 5 }] }), []);
});

test('the bgp section may list the VIPs: a VIP no service uses is not announced', (t) => {
  const d = announceDecisions({ ...base, vips: ['10.99.0.2', '10.99.0.9'] });
  t.deepEqual(d, [
    { vip: '10.99.0.2', announce: true, reason: 'quorum met' },
    { vip: '10.99.0.9', announce: false, reason: 'no service uses this VIP' },
  ]);
});

test('restart backoff: 0.5 s doubling, capped at 30 s', (t) => {
  t.deepEqual([1, 2, 3, 4, 7, 8, 20].map(restartDelayMs), [500, 1000, 2000, 4000, 30000, 30000, 30000]);
});

test('a checked service waits for the first probe of each real server before its VIP is announced', (t) => {
  const i = { ...base, services: [web, { ...tls, firstChecksPending: true }, mark] };
  t.deepEqual(announceDecisions(i)[0], {
    vip: '10.99.0.1',
    announce: false,
    reason: 'waiting for the first checks: tcp 10.99.0.1:443',
  });
  t.deepEqual(announced(i), ['10.99.0.2']);
});
