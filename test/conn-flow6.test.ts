import test from 'ava';
import { bytesToIpv6 } from '../src/common/addr.js';
import { Connection } from '../src/l4/conn/conn.js';
import { type FlowHash6, FlowIndex6, hash6, ipv6Words } from '../src/l4/conn/flow6.js';
import { ConnTable, inKey, outKey } from '../src/l4/conn/table.js';
import { RealServer } from '../src/l4/dest.js';
import { VirtualService } from '../src/l4/service.js';
import { seeded } from './seeded.js';

const words = (addr: string) => {
  const w = new Int32Array(4);
  ipv6Words(addr, w, 0);
  return w;
};

test('ipv6Words: four big-endian words of the 16 address bytes, any textual form', (t) => {
  t.deepEqual([...words('2001:db8::1')], [0x20010db8, 0, 0, 1]);
  t.deepEqual([...words('ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe')], [-1, -1, -1, -2]);
  t.deepEqual([...words('::ffff:10.0.0.1')], [0, 0, 0xffff, 0x0a000001]);
  t.deepEqual([...words('2001:0DB8:0::0:1')], [...words('2001:db8::1')]);
  const out = new Int32Array(8).fill(7);
  ipv6Words('::2', out, 4);
  t.deepEqual([...out], [7, 7, 7, 7, 0, 0, 0, 2]);
});

test('IPv6 flow index: both directions of one flow are distinct keys; addresses read at an offset of any array', (t) => {
  const idx = new FlowIndex6<string>(16);
  // one packet's words: source then destination, as the parser keeps them
  const pkt = new Int32Array(8);
  ipv6Words('2001:db8:1::5', pkt, 0);
  ipv6Words('2001:db8::100', pkt, 4);
  t.is(idx.set(6, pkt, 0, 40000, pkt, 4, 80, 'in'), undefined);
  t.is(idx.set(6, pkt, 4, 80, pkt, 0, 40000, 'reverse'), undefined);
  t.is(idx.size, 2);
  t.is(idx.get(6, words('2001:db8:1::5'), 0, 40000, words('2001:db8::100'), 0, 80), 'in');
  t.is(idx.get(6, pkt, 4, 80, pkt, 0, 40000), 'reverse');
  // protocol, each port and each address word are part of the key
  t.is(idx.get(17, pkt, 0, 40000, pkt, 4, 80), undefined);
  t.is(idx.get(6, pkt, 0, 40001, pkt, 4, 80), undefined);
  t.is(idx.get(6, pkt, 0, 40000, pkt, 4, 81), undefined);
  t.is(idx.get(6, pkt, 0, 80, pkt, 4, 40000), undefined);
  t.is(idx.set(6, pkt, 0, 40000, pkt, 4, 80, 'in2'), 'in', 'a set of an existing key replaces');
  t.is(idx.size, 2);
  t.false(idx.delete(6, pkt, 0, 40000, pkt, 4, 80, 'in'), 'delete of another entry of the key');
  t.true(idx.delete(6, pkt, 0, 40000, pkt, 4, 80, 'in2'));
  t.is(idx.get(6, pkt, 0, 40000, pkt, 4, 80), undefined);
  t.is(idx.get(6, pkt, 4, 80, pkt, 0, 40000), 'reverse');
  t.true(idx.delete(6, pkt, 4, 80, pkt, 0, 40000));
  t.false(idx.delete(6, pkt, 4, 80, pkt, 0, 40000));
  t.is(idx.size, 0);
});

test('IPv6 flow index: keys whose hashes collide are told apart by the full key (every word, ports, protocol)', (t) => {
  for (const hash of [(() => 0) as FlowHash6, ((_p, a, ao) => a[ao + 3] & 1) as FlowHash6]) {
    const idx = new FlowIndex6<number>(16, hash);
    const base = words('2001:db8::1');
    const vip = words('2001:db8::100');
    const keys: [number, Int32Array, number, Int32Array, number][] = [];
    // keys that differ in one word of either address, a port or the protocol only
    for (let w = 0; w < 4; w++) {
      const a = base.slice();
      a[w] ^= 0x100;
      keys.push([6, a, 1, vip, 80]);
      const b = vip.slice();
      b[w] ^= 0x100;
      keys.push([6, base, 1, b, 80]);
    }
    keys.push([6, base, 1, vip, 80], [17, base, 1, vip, 80], [6, base, 2, vip, 80], [6, base, 1, vip, 81]);
    keys.push([6, vip, 80, base, 1]);
    keys.forEach((k, i) => {
      t.is(idx.set(k[0], k[1], 0, k[2], k[3], 0, k[4], i), undefined);
    });
    t.is(idx.size, keys.length);
    keys.forEach((k, i) => {
      t.is(idx.get(k[0], k[1], 0, k[2], k[3], 0, k[4]), i);
    });
    // delete every other one: the probe runs are shifted back and the rest are still found
    keys.forEach((k, i) => {
      if (i % 2 === 0) t.true(idx.delete(k[0], k[1], 0, k[2], k[3], 0, k[4]));
    });
    keys.forEach((k, i) => {
      t.is(idx.get(k[0], k[1], 0, k[2], k[3], 0, k[4]), i % 2 === 0 ? undefined : i);
    });
    t.is(idx.size, keys.length >> 1);
    idx.clear();
    t.is(idx.size, 0);
    t.is(idx.get(6, base, 0, 1, vip, 0, 80), undefined);
  }
});

test('IPv6 flow index: random adds, replaces and deletes agree with a Map of string keys (grows, wraps, backward shift)', (t) => {
  for (const [seed, hash] of [
    [12, hash6],
    [13, ((p, a, ao, pp) => (p ^ pp ^ a[ao + 3]) & 3) as FlowHash6],
  ] as const) {
    const rnd = seeded(seed);
    const idx = new FlowIndex6<number>(16, hash);
    const model = new Map<string, number>();
    const addrs = ['2001:db8::1', '2001:db8::100', 'ffff::', '::', '::ffff:10.0.0.1', 'fe80::1:2:3:4'].map(words);
    const key = () =>
      [
        rnd() < 0.5 ? 6 : 17,
        Math.floor(rnd() * addrs.length),
        rnd() < 0.5 ? 65535 : Math.floor(rnd() * 3),
        Math.floor(rnd() * addrs.length),
        rnd() < 0.5 ? 80 : 0,
      ] as const;
    const strOf = (k: readonly number[]) =>
      `${k[0]}|${bytesToIpv6(bytesOf(addrs[k[1]]))}|${k[2]}|${bytesToIpv6(bytesOf(addrs[k[3]]))}|${k[4]}`;
    for (let i = 0; i < 30_000; i++) {
      const k = key();
      const s = strOf(k);
      const r = rnd();
      const a = addrs[k[1]];
      const b = addrs[k[3]];
      if (r < 0.45) {
        t.is(idx.set(k[0], a, 0, k[2], b, 0, k[4], i), model.get(s));
        model.set(s, i);
      } else if (r < 0.8) t.is(idx.delete(k[0], a, 0, k[2], b, 0, k[4]), model.delete(s));
      else t.is(idx.get(k[0], a, 0, k[2], b, 0, k[4]), model.get(s));
      if (i % 5000 === 0) {
        t.is(idx.size, model.size);
        for (const [ks, v] of model) {
          const f = ks.split('|');
          t.is(idx.get(Number(f[0]), words(f[1]), 0, Number(f[2]), words(f[3]), 0, Number(f[4])), v);
        }
      }
    }
    t.is(idx.size, model.size);
  }
});

function bytesOf(w: Int32Array): Uint8Array {
  const b = new Uint8Array(16);
  for (let i = 0; i < 4; i++) {
    b[4 * i] = w[i] >>> 24;
    b[4 * i + 1] = (w[i] >>> 16) & 255;
    b[4 * i + 2] = (w[i] >>> 8) & 255;
    b[4 * i + 3] = w[i] & 255;
  }
  return b;
}

const svc6 = new VirtualService(
  { kind: 'tcp', family: 6, addr: '2001:db8::100', port: 80 },
  { schedName: 'rr', flags: 0, timeout: 0, netmask: 128 },
);

test('IPv6 connections: the numeric lookups and the inKey/outKey strings find the same entry; replaced and dropped', (t) => {
  const nat = new RealServer({
    addr: '2001:db8::11',
    port: 8080,
    family: 6,
    fwd: 'masq',
    weight: 1,
    uThreshold: 0,
    lThreshold: 0,
  });
  const table = new ConnTable(100, seeded(1));
  const mk = (caddr: string, cport: number) =>
    new Connection({
      protocol: 6,
      family: 6,
      caddr,
      cport,
      vaddr: '2001:db8::100',
      vport: 80,
      daddr: '2001:db8::11',
      dport: 8080,
      svc: svc6,
      flags: 0,
      fwmark: 0,
    });
  const a = mk('ffff::fffe', 65535);
  const b = mk('2001:db8::1', 1);
  for (const c of [a, b]) table.insert(c, nat);
  const pkt = new Int32Array(8);
  ipv6Words('ffff::fffe', pkt, 0);
  ipv6Words('2001:db8::100', pkt, 4);
  const rip = words('2001:db8::11');
  t.is(table.getIn6(6, pkt, 0, 65535, pkt, 4, 80), a);
  t.is(table.getIn(inKey(6, 'ffff::fffe', 65535, '2001:db8::100', 80)), a);
  t.is(table.getOut6(6, rip, 0, 8080, pkt, 0, 65535), a);
  t.is(table.getOut(outKey(6, '2001:db8::11', 8080, 'ffff::fffe', 65535)), a);
  t.is(table.getIn6(17, pkt, 0, 65535, pkt, 4, 80), undefined);
  t.is(table.getIn6(6, pkt, 4, 80, pkt, 0, 65535), undefined, 'the reverse direction is not an input flow');
  t.is(table.getIn(inKey(6, '2001:db8::1', 1, '10.0.0.1', 80)), undefined, 'mixed families name nothing');
  t.is(table.getIn('6|2001:db8::1|1'), undefined);
  // a second connection with the same tuple replaces the first in both indexes
  const a2 = mk('ffff::fffe', 65535);
  table.insert(a2, nat);
  t.is(table.getIn6(6, pkt, 0, 65535, pkt, 4, 80), a2);
  t.is(table.getOut6(6, rip, 0, 8080, pkt, 0, 65535), a2);
  table.drop(a);
  t.is(table.getIn6(6, pkt, 0, 65535, pkt, 4, 80), a2, 'dropping the replaced entry leaves the new one indexed');
  t.is(table.getOut6(6, rip, 0, 8080, pkt, 0, 65535), a2);
  table.drop(a2);
  t.is(table.getIn6(6, pkt, 0, 65535, pkt, 4, 80), undefined);
  t.is(table.getOut6(6, rip, 0, 8080, pkt, 0, 65535), undefined);
  t.is(table.getIn(inKey(6, '2001:db8::1', 1, '2001:db8::100', 80)), b);
  table.flush();
  t.is(table.getIn(inKey(6, '2001:db8::1', 1, '2001:db8::100', 80)), undefined);
  t.is(table.getOut(outKey(6, '2001:db8::11', 8080, '2001:db8::1', 1)), undefined);
  t.is(table.size, 0);
});
