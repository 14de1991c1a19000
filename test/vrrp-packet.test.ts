import test from 'ava';
import { garpFrame } from '../src/ha/vrrp/io.js';
import {
  DropCounters,
  type DropReason,
  decodeAdvert,
  decodePacket,
  type Expectation,
  encodeAdvert,
  inetChecksum,
  ipv4Header,
  validate,
} from '../src/ha/vrrp/packet.js';

// Golden bytes from the RFC 3768 / RFC 5798 layouts, produced independently with scapy's VRRP / VRRPv3 layers.
const V2_PASS = '2133640101017b71c0a801647365637265740000';
const V2_NOAUTH = '2101ff020003cbf50a0000010a0000020000000000000000';
const V3_MCAST = '3133960100643f6f0a010264';
const V3_UNICAST = '310700010032a9db0a010264';

test('v2 encode: header, address, PASS authentication, checksum', (t) => {
  const b = encodeAdvert({
    version: 2,
    vrid: 51,
    priority: 100,
    addresses: ['192.168.1.100'],
    interval: 1,
    authPass: 'secret',
  });
  t.is(b.toString('hex'), V2_PASS);
  const n = encodeAdvert({ version: 2, vrid: 1, priority: 255, addresses: ['10.0.0.1', '10.0.0.2'], interval: 3 });
  t.is(n.toString('hex'), V2_NOAUTH);
});

test('v3 encode: centisecond interval and the IPv4 pseudo-header checksum', (t) => {
  const m = encodeAdvert({
    version: 3,
    vrid: 51,
    priority: 150,
    addresses: ['10.1.2.100'],
    interval: 100,
    src: '10.1.2.3',
    dst: '224.0.0.18',
  });
  t.is(m.toString('hex'), V3_MCAST);
  const u = encodeAdvert({
    version: 3,
    vrid: 7,
    priority: 0,
    addresses: ['10.1.2.100'],
    interval: 50,
    src: '10.1.2.3',
    dst: '10.1.2.4',
  });
  t.is(u.toString('hex'), V3_UNICAST);
  // the same bytes with another destination no longer check
  t.deepEqual(decodeAdvert(u, '10.1.2.3', '10.1.2.5'), { ok: false, reason: 'checksum' });
});

test('decode a whole IPv4 packet', (t) => {
  const vrrp = Buffer.from(V3_UNICAST, 'hex');
  const pkt = Buffer.concat([ipv4Header('10.1.2.3', '10.1.2.4', vrrp.length), vrrp]);
  t.is(inetChecksum(pkt.subarray(0, 20)), 0);
  t.is(pkt[8], 255);
  const d = decodePacket(pkt);
  if (!d.ok) return t.fail(d.reason);
  t.is(d.packet.src, '10.1.2.3');
  t.is(d.packet.dst, '10.1.2.4');
  t.is(d.packet.ttl, 255);
  t.like(d.packet.advert, { version: 3, vrid: 7, priority: 0, interval: 50, addresses: ['10.1.2.100'] });
  const v2 = decodeAdvert(Buffer.from(V2_PASS, 'hex'), '192.168.1.2', '224.0.0.18');
  if (!v2.ok) return t.fail(v2.reason);
  t.like(v2.advert, { version: 2, vrid: 51, priority: 100, interval: 1, authType: 1 });
  t.is(v2.advert.authData.toString('latin1'), 'secret\0\0');
});

const expectV2: Expectation = {
  version: 2,
  vrid: 51,
  interval: 1,
  authPass: 'secret',
  addressCount: 1,
  ownAddresses: new Set(['192.168.1.1']),
};

function v2packet(mut: (b: Buffer) => void = () => {}, ttl = 255, src = '192.168.1.2'): Buffer {
  const vrrp = Buffer.from(V2_PASS, 'hex');
  mut(vrrp);
  return Buffer.concat([ipv4Header(src, '224.0.0.18', vrrp.length, ttl), vrrp]);
}

function fixSum(b: Buffer): void {
  b.writeUInt16BE(0, 6);
  b.writeUInt16BE(inetChecksum(b), 6);
}

const bad: [string, () => Buffer, DropReason, Partial<Expectation>?][] = [
  ['empty', () => Buffer.alloc(0), 'ip_header'],
  ['IPv6 version nibble', () => Buffer.alloc(40, 0x60), 'ip_header'],
  [
    'not protocol 112',
    () => {
      const b = v2packet();
      b[9] = 17;
      return b;
    },
    'protocol',
  ],
  ['TTL 64', () => v2packet(undefined, 64), 'ttl'],
  ['truncated', () => v2packet().subarray(0, 26), 'length'],
  [
    'bad checksum',
    () =>
      v2packet((b) => {
        b[2] = 101;
      }),
    'checksum',
  ],
  [
    'type 2',
    () =>
      v2packet((b) => {
        b[0] = 0x22;
        fixSum(b);
      }),
    'type',
  ],
  [
    'version 1',
    () =>
      v2packet((b) => {
        b[0] = 0x11;
        fixSum(b);
      }),
    'version',
  ],
  ['v2 packet, v3 configured', () => v2packet(), 'version', { version: 3 }],
  ['other VRID', () => v2packet(), 'vrid', { vrid: 52 }],
  ['wrong password', () => v2packet(), 'auth', { authPass: 'secreT' }],
  ['no auth expected', () => v2packet(), 'auth_type', { authPass: undefined }],
  ['advert interval mismatch', () => v2packet(), 'interval', { interval: 2 }],
  ['address count mismatch', () => v2packet(), 'addr_count', { addressCount: 2 }],
  [
    'zero addresses',
    () =>
      v2packet((b) => {
        b[3] = 0;
        fixSum(b);
      }),
    'addr_count',
  ],
  ['our own', () => v2packet(undefined, 255, '192.168.1.1'), 'own'],
];

for (const [name, make, reason, exp] of bad) {
  test(`bad packet dropped: ${name}`, (t) => {
    const buf = make();
    const d = decodePacket(buf);
    const r = d.ok ? validate(d.packet, { ...expectV2, ...exp }) : d.reason;
    t.is(r, reason);
  });
}

test('a valid packet passes, counters count by reason, random garbage never throws', (t) => {
  const d = decodePacket(v2packet());
  t.true(d.ok);
  if (d.ok) t.is(validate(d.packet, expectV2), undefined);
  const c = new DropCounters();
  let seed = 1;
  const rnd = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed;
  };
  for (let i = 0; i < 2000; i++) {
    const b = v2packet();
    for (let k = 0; k < 1 + (rnd() % 4); k++) b[rnd() % b.length] = rnd() & 0xff;
    const buf = b.subarray(0, rnd() % (b.length + 1));
    t.notThrows(() => {
      const r = decodePacket(buf);
      const reason = r.ok ? validate(r.packet, expectV2) : r.reason;
      if (reason) c.add(reason);
    });
  }
  t.true(c.get('checksum') + c.get('ip_header') + c.get('length') > 0);
  t.deepEqual(Object.keys(c.toJSON()).sort(), [...c.byReason.keys()].sort());
});

test('gratuitous ARP frame (golden bytes): a broadcast request with the VIP as sender and target, as keepalived sends it', (t) => {
  const mac = Buffer.from('020000000001', 'hex');
  t.is(
    garpFrame(mac, '192.168.1.100').toString('hex'),
    // Ethernet: dst broadcast, src, ARP | Ethernet, IPv4, 6, 4, request | sender MAC, VIP | target ff*6, VIP
    'ffffffffffff0200000000010806' + '0001080006040001' + '020000000001c0a80164' + 'ffffffffffffc0a80164',
  );
});
