import test from 'ava';
import { CONN_F_TEMPLATE, Connection } from '../src/l4/conn/conn.js';
import { ExpiryHeap } from '../src/l4/conn/heap.js';
import { ConnTable } from '../src/l4/conn/table.js';
import { TCP_S_ESTABLISHED, TCP_S_SYN_RECV, TCP_S_TIME_WAIT } from '../src/l4/conn/tcp.js';
import { RealServer } from '../src/l4/dest.js';
import { VirtualService } from '../src/l4/service.js';
import { seeded } from './engine-fixture.js';

const svc = new VirtualService(
  { kind: 'tcp', family: 4, addr: '10.0.0.1', port: 80 },
  {
    schedName: 'rr',
    flags: 0,
    timeout: 0,
    netmask: 0xffffffff,
  },
);
const server = (fwd: 'route' | 'masq' = 'route') =>
  new RealServer({ addr: '192.168.1.1', port: 80, family: 4, fwd, weight: 1, uThreshold: 0, lThreshold: 0 });

function conn(
  cport: number,
  o: { template?: boolean; state?: number; timeout?: number; now?: number } = {},
): Connection {
  const c = new Connection({
    protocol: 6,
    family: 4,
    caddr: '172.16.0.1',
    cport: o.template ? 0 : cport,
    vaddr: '10.0.0.1',
    vport: o.template ? cport : 80,
    daddr: '192.168.1.1',
    dport: 80,
    svc,
    flags: o.template ? CONN_F_TEMPLATE : 0,
    fwmark: 0,
  });
  c.state = o.state ?? 0;
  c.timeoutMs = o.timeout ?? 1000;
  c.expires = (o.now ?? 0) + c.timeoutMs;
  return c;
}

test('heap pops in deadline order', (t) => {
  const h = new ExpiryHeap<number>();
  const rnd = seeded(3);
  const xs = Array.from({ length: 500 }, () => Math.floor(rnd() * 1000));
  for (const x of xs) h.push(x, x);
  const out: number[] = [];
  while (h.size) out.push(h.pop() as number);
  t.deepEqual(
    out,
    [...xs].sort((a, b) => a - b),
  );
  t.is(h.pop(), undefined);
  t.is(h.peekTime(), Number.POSITIVE_INFINITY);
});

test('bind/unbind keep the server counters; expiry is by deadline and a touch moves it', (t) => {
  const d = server();
  const table = new ConnTable(100, seeded(1));
  const a = conn(1, { timeout: 1000 });
  const b = conn(2, { timeout: 5000 });
  table.insert(a, d);
  table.insert(b, d);
  t.is(d.inactConns, 2);
  t.true(a.noOutput && a.inactive);
  t.is(table.getIn('6|172.16.0.1|1|10.0.0.1|80'), a);
  table.touch(a, 900); // now due at 1900
  t.is(table.expire(1000), 0);
  t.is(table.expire(1899), 0);
  t.is(table.expire(1900), 1);
  t.false(a.live);
  t.is(table.getIn('6|172.16.0.1|1|10.0.0.1|80'), undefined);
  t.is(table.expire(5000), 1);
  t.is(d.inactConns, 0);
  t.is(table.size, 0);
});

test('NAT connections are indexed for replies', (t) => {
  const d = server('masq');
  const table = new ConnTable(100, seeded(1));
  const a = conn(1);
  table.insert(a, d);
  t.is(table.getOut('6|192.168.1.1|80|172.16.0.1|1'), a);
  table.expireNow(a, 0);
  t.is(table.getOut('6|192.168.1.1|80|172.16.0.1|1'), undefined);
});

test('a template that controls a connection is re-armed for 60 s', (t) => {
  const d = server();
  const table = new ConnTable(100, seeded(1));
  const ct = conn(80, { template: true, timeout: 10_000 });
  const c = conn(1, { timeout: 100_000 });
  table.insert(ct, d);
  table.insert(c, d);
  table.controlAdd(c, ct);
  t.is(d.persistConns, 1);
  t.is(table.expire(10_000), 0);
  t.true(ct.live);
  t.is(ct.expires, 70_000);
  t.is(table.expire(70_000), 0); // re-armed again: still controlling
  t.is(ct.expires, 130_000);
  t.is(table.expire(100_000), 1); // the connection
  t.is(ct.nControl, 0);
  t.is(table.expire(130_000), 1);
  t.is(d.persistConns, 0);
});

test('dropping a connection takes its unassured template along', (t) => {
  const d = server();
  const table = new ConnTable(100, seeded(1));
  const ct = conn(80, { template: true });
  const c = conn(1);
  table.insert(ct, d);
  table.insert(c, d);
  table.controlAdd(c, ct);
  table.drop(ct); // controls a connection: stays
  t.true(ct.live);
  table.drop(c);
  t.false(ct.live);
  t.is(table.size, 0);
});

test('random drop: half-open always, established only when idle for 60 s with few packets', (t) => {
  const d = server();
  const table = new ConnTable(10_000, seeded(5));
  const half: Connection[] = [];
  const busy: Connection[] = [];
  const idle: Connection[] = [];
  const other: Connection[] = [];
  for (let i = 0; i < 2000; i++) {
    const kind = i % 4;
    const c = conn(i + 1, {
      state: kind === 0 ? TCP_S_SYN_RECV : kind === 3 ? TCP_S_TIME_WAIT : TCP_S_ESTABLISHED,
      timeout: 900_000,
      now: kind === 2 ? 0 : 100_000, // idle ones last saw a packet at 0
    });
    c.inpkts = kind === 1 ? 50 : 1;
    table.insert(c, d);
    [half, busy, idle, other][kind].push(c);
  }
  let dropped = 0;
  for (let s = 0; s < 200; s++) dropped += table.randomDrop(100_000);
  t.true(dropped > 0);
  t.true(half.filter((c) => c.live).length < 100, 'most half-open entries are gone');
  t.true(idle.filter((c) => c.live).length < 200, 'idle entries with one packet go too');
  t.true(
    busy.every((c) => c.live),
    'entries with traffic stay',
  );
  t.true(
    other.every((c) => c.live),
    'closing entries are left to their timers',
  );
  t.is(d.inactConns, table.size);
});

test('eviction at the bound takes half-open entries only', (t) => {
  const d = server();
  const table = new ConnTable(100, seeded(9));
  for (let i = 0; i < 100; i++) table.insert(conn(i + 1, { state: TCP_S_ESTABLISHED }), d);
  t.false(table.evictHalfOpen());
  table.flush();
  t.is(table.size, 0);
  t.is(d.inactConns, 0);
  for (let i = 0; i < 100; i++) table.insert(conn(i + 1, { state: TCP_S_SYN_RECV }), d);
  t.true(table.evictHalfOpen());
  t.is(table.size, 99);
});

test('expiry work is proportional to what is due, not to the table', (t) => {
  const d = server();
  const table = new ConnTable(1 << 20, seeded(1));
  for (let i = 0; i < 100_000; i++) table.insert(conn(i + 1, { timeout: 1_000_000 }), d);
  for (let i = 0; i < 10; i++) table.insert(conn(200_000 + i, { timeout: 10 }), d);
  // count the entries the ticks take off the expiry queue: only the due ones, never the 100 000 far ones
  // (a deterministic measure of the work; the wall-clock cost of a tick is a benchmark's business)
  const heap = (table as unknown as { heap: ExpiryHeap<Connection> }).heap;
  const pop = heap.pop.bind(heap);
  let pops = 0;
  heap.pop = () => {
    pops++;
    return pop();
  };
  let expired = 0;
  for (let now = 1; now <= 1000; now++) expired += table.expire(now);
  t.is(expired, 10);
  t.is(pops, 10);
  t.is(table.size, 100_000);
});
