import test from 'ava';
import { ManualClock } from '../src/common/clock.js';
import { DIVERT_MARK } from '../src/fwmark/plan.js';
import { Forwarder } from '../src/l4/datapath/forward.js';
import { NF_ACCEPT, NF_DROP, type QueuedPacket } from '../src/l4/datapath/nfqmsg.js';
import { Engine } from '../src/l4/engine.js';
import { ip, TCP, tcp } from './packet-craft.js';

const VIP = '10.0.0.100';
const VIP6 = '2001:db8::100';

function setup() {
  const e = new Engine({ clock: new ManualClock(1000) });
  const verdicts: { id: number; v: number; mark?: number; payload?: Uint8Array }[] = [];
  const f = new Forwarder(e, {
    verdict: (id, v, mark, payload) => verdicts.push({ id, v, mark, payload: payload?.slice() }),
    sendRaw: () => true,
  });
  for (const [family, addr, rip] of [
    [4, VIP, '10.0.0.11'],
    [6, VIP6, '2001:db8::11'],
  ] as const) {
    const id = { kind: 'tcp', family, addr, port: 80 } as const;
    e.table.addService({ id, sched: 'rr', flags: 0, timeout: 0, netmask: family === 4 ? 0xffffffff : 128 });
    e.table.addDest(id, { addr: rip, port: 80, fwd: 'route', weight: 1, uThreshold: 0, lThreshold: 0 });
  }
  f.setOwnAddrs(['10.0.0.2', '127.0.0.1', '2001:db8::2', 'fe80::1%eth0']);
  f.plan();
  return { e, f, verdicts };
}

let nextId = 1;
function qp(payload: Uint8Array, indev = 2): QueuedPacket {
  return { id: nextId++, hwProtocol: 0, hook: 0, mark: DIVERT_MARK, indev, outdev: 0, payload };
}

function syn(src: string, dst = src.includes(':') ? VIP6 : VIP, sport = 40000): Uint8Array {
  return ip({ src, dst, proto: TCP, payload: tcp({ src, dst, sport, dport: 80, flags: 0x02 }) });
}

const MARTIANS = [
  '0.0.0.0',
  '0.1.2.3',
  '127.0.0.1',
  '127.9.9.9',
  '224.0.0.1',
  '239.255.255.250',
  '255.255.255.255',
  VIP,
  '10.0.0.2',
  '::',
  '::1',
  'ff02::1',
  VIP6,
  '2001:db8::2',
];

test('martian and own-address sources are dropped and counted before scheduling; no entry is made', (t) => {
  const { e, f, verdicts } = setup();
  for (const src of MARTIANS) {
    f.handle(qp(syn(src)));
    t.like(verdicts.at(-1), { v: NF_DROP }, src);
  }
  t.is(f.counters.bad.martian, MARTIANS.length);
  t.is(e.stats().size, 0);
  // ordinary clients of both families are scheduled
  f.handle(qp(syn('198.51.100.7')));
  t.like(verdicts.at(-1), { v: NF_ACCEPT });
  f.handle(qp(syn('2001:db8:5::7')));
  t.like(verdicts.at(-1), { v: NF_ACCEPT });
  t.is(e.stats().size, 2);
  t.is(f.counters.bad.martian, MARTIANS.length);
});

test("the director's own traffic to a VIP (in on lo) is not a martian", (t) => {
  const { e, f, verdicts } = setup();
  f.handle(qp(syn('10.0.0.2'), 1));
  t.like(verdicts.at(-1), { v: NF_ACCEPT });
  t.is(f.counters.bad.martian, undefined);
  t.is(e.stats().size, 1);
});
