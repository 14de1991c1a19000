import test from 'ava';
import { ipv4ToInt } from '../src/common/addr.js';
import { Connection } from '../src/l4/conn/conn.js';
import { FlowIndex4 } from '../src/l4/conn/flow4.js';
import { ConnTable, inKey, outKey } from '../src/l4/conn/table.js';
import { RealServer } from '../src/l4/dest.js';
import { VirtualService } from '../src/l4/service.js';
import { seeded } from './seeded.js';

test('IPv4 flow index: random adds, replaces and deletes agree with a Map of string keys (grows, backward shift)', (t) => {
  const rnd = seeded(11);
  const idx = new FlowIndex4<number>(16);
  const model = new Map<string, number>();
  // few distinct keys so that probe runs collide, wrap around and are shifted back on delete
  const key = () => {
    const k = [
      rnd() < 0.5 ? 6 : 17,
      rnd() < 0.5 ? 0xffffffff : Math.floor(rnd() * 64) * 0x01000001,
      Math.floor(rnd() * 4) * 16385,
      rnd() < 0.3 ? 0 : ipv4ToInt('10.77.1.100'),
      rnd() < 0.5 ? 65535 : 80,
    ] as const;
    return k;
  };
  for (let i = 0; i < 40_000; i++) {
    const k = key();
    const s = k.join('|');
    const r = rnd();
    if (r < 0.45) {
      t.is(idx.set(k[0], k[1], k[2], k[3], k[4], i), model.get(s));
      model.set(s, i);
    } else if (r < 0.8) {
      const removed = idx.delete(k[0], k[1], k[2], k[3], k[4]);
      t.is(removed, model.delete(s));
    } else t.is(idx.get(k[0], k[1], k[2], k[3], k[4]), model.get(s));
    if (i % 5000 === 0) {
      t.is(idx.size, model.size);
      for (const [ks, v] of model) {
        const f = ks.split('|').map(Number);
        t.is(idx.get(f[0], f[1], f[2], f[3], f[4]), v);
      }
    }
  }
  // delete only when the key maps to the given entry
  const k = [6, 1, 2, 3, 4] as const;
  idx.set(...k, -1);
  t.false(idx.delete(...k, -2));
  t.true(idx.delete(...k, -1));
  t.is(idx.get(...k), undefined);
  idx.clear();
  t.is(idx.size, 0);
});

const svc = new VirtualService(
  { kind: 'tcp', family: 4, addr: '10.0.0.1', port: 80 },
  { schedName: 'rr', flags: 0, timeout: 0, netmask: 0xffffffff },
);

test('IPv4 connections: the numeric lookups and the inKey/outKey strings find the same entry; IPv6 by string', (t) => {
  const nat = new RealServer({
    addr: '192.168.1.1',
    port: 8080,
    family: 4,
    fwd: 'masq',
    weight: 1,
    uThreshold: 0,
    lThreshold: 0,
  });
  const table = new ConnTable(100, seeded(1));
  const mk = (caddr: string, cport: number, family: 4 | 6 = 4, vaddr = '10.0.0.1', daddr = '192.168.1.1') =>
    new Connection({
      protocol: 6,
      family,
      caddr,
      cport,
      vaddr,
      vport: 80,
      daddr,
      dport: 8080,
      svc,
      flags: 0,
      fwmark: 0,
    });
  const a = mk('255.255.255.254', 65535);
  const b = mk('172.16.0.1', 1);
  const six = mk('2001:db8::1', 1, 6, '2001:db8::100', '2001:db8::11');
  for (const c of [a, b, six]) table.insert(c, nat);
  const C = ipv4ToInt('255.255.255.254');
  const V = ipv4ToInt('10.0.0.1');
  const R = ipv4ToInt('192.168.1.1');
  t.is(table.getIn4(6, C, 65535, V, 80), a);
  t.is(table.getIn(inKey(6, '255.255.255.254', 65535, '10.0.0.1', 80)), a);
  t.is(table.getOut4(6, R, 8080, C, 65535), a);
  t.is(table.getOut(outKey(6, '192.168.1.1', 8080, '255.255.255.254', 65535)), a);
  t.is(table.getIn4(17, C, 65535, V, 80), undefined);
  t.is(table.getIn(inKey(6, '2001:db8::1', 1, '2001:db8::100', 80)), six);
  t.is(table.getOut(outKey(6, '2001:db8::11', 8080, '2001:db8::1', 1)), six);
  // a second connection with the same tuple replaces the first in both indexes
  const a2 = mk('255.255.255.254', 65535);
  table.insert(a2, nat);
  t.is(table.getIn4(6, C, 65535, V, 80), a2);
  t.is(table.getOut4(6, R, 8080, C, 65535), a2);
  table.drop(a);
  t.is(table.getIn4(6, C, 65535, V, 80), a2, 'dropping the replaced entry leaves the new one indexed');
  table.drop(a2);
  t.is(table.getIn4(6, C, 65535, V, 80), undefined);
  t.is(table.getOut4(6, R, 8080, C, 65535), undefined);
  t.is(table.getIn(inKey(6, '172.16.0.1', 1, '10.0.0.1', 80)), b);
  table.flush();
  t.is(table.getIn(inKey(6, '172.16.0.1', 1, '10.0.0.1', 80)), undefined);
  t.is(table.getIn(inKey(6, '2001:db8::1', 1, '2001:db8::100', 80)), undefined);
});
