/**
 * VRRPv3 over IPv6 (RFC 5798): the advertisement with its IPv6 pseudo-header checksum, the unsolicited Neighbor
 * Advertisement, the ancillary data of the receive path, and the configuration (YAML and keepalived.conf, one family
 * per instance). The golden bytes were computed independently (Python struct/ipaddress, RFC 1071 sum).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { checkConfigString } from '../src/config/index.js';
import '../src/ha/config-schema.js'; // registers the vrrp section with the loader
import { loadKeepalivedConf } from '../src/ha/keepalived/config.js';
import { checkVrrpConfig, type VrrpSection, vrrpFromSection } from '../src/ha/vrrp/config.js';
import { pickSource } from '../src/ha/vrrp/instance.js';
import { type InterfaceInfo, parseCmsgs6, vipArgs } from '../src/ha/vrrp/io.js';
import { NA_FRAME_LEN, naFrame } from '../src/ha/vrrp/ndisc.js';
import {
  decodeAdvert,
  decodePacket6,
  encodeAdvert,
  inetChecksum,
  pseudoHeader6,
  validate,
} from '../src/ha/vrrp/packet.js';
import { addrGreater } from '../src/ha/vrrp/state.js';
import { instanceDefaults, isLinkLocal6 } from '../src/ha/vrrp/types.js';

const GOLDEN_ADVERT = '3133640200643dfdfe80000000000000000000000000010020010db8000000000000000000000100';
const GOLDEN_NA =
  '33330000000102000000000186dd6000000000203aff20010db8000000000000000000000100ff0200000000000000000000000000018800f72c2000000020010db80000000000000000000001000201020000000001';

test('v3 IPv6 encode: 16-byte addresses, checksum over the IPv6 pseudo-header (golden)', (t) => {
  const b = encodeAdvert({
    version: 3,
    vrid: 51,
    priority: 100,
    addresses: ['fe80::100', '2001:db8::100'],
    interval: 100,
    src: 'fe80::1',
    dst: 'ff02::12',
  });
  t.is(b.length, 40);
  t.is(b.toString('hex'), GOLDEN_ADVERT);
  t.is(b.readUInt16BE(6), 0x3dfd);
  // the pseudo-header: src, dst, 32-bit length, 3 zero bytes, next header 112
  const ph = pseudoHeader6('fe80::1', 'ff02::12', 40);
  t.is(ph.length, 40);
  t.is(ph.subarray(32).toString('hex'), '0000002800000070');
  t.is(inetChecksum(ph, b), 0);
  // the same message checksummed for another source is a different packet
  t.not(
    encodeAdvert({
      version: 3,
      vrid: 51,
      priority: 100,
      addresses: ['fe80::100', '2001:db8::100'],
      interval: 100,
      src: 'fe80::2',
      dst: 'ff02::12',
    }).readUInt16BE(6),
    0x3dfd,
  );
  t.throws(() => encodeAdvert({ version: 2, vrid: 1, priority: 1, addresses: ['fe80::1'], interval: 1 }));
  t.throws(() => encodeAdvert({ version: 3, vrid: 1, priority: 1, addresses: ['fe80::1', '10.0.0.1'], interval: 1 }));
});

test('v3 IPv6 decode: addresses, interval, hop limit; bad checksum, v2, truncation dropped', (t) => {
  const b = Buffer.from(GOLDEN_ADVERT, 'hex');
  const d = decodePacket6(b, 'fe80::1', 'ff02::12', 255);
  if (!d.ok) return t.fail(d.reason);
  t.deepEqual(d.packet.advert.addresses, ['fe80::100', '2001:db8::100']);
  t.is(d.packet.advert.vrid, 51);
  t.is(d.packet.advert.priority, 100);
  t.is(d.packet.advert.interval, 100);
  t.is(d.packet.ttl, 255);
  t.is(d.packet.src, 'fe80::1');
  // the checksum covers the source: the same bytes from another sender fail
  t.deepEqual(decodePacket6(b, 'fe80::2', 'ff02::12', 255), { ok: false, reason: 'checksum' });
  const bad = Buffer.from(b);
  bad[2] = 101;
  t.deepEqual(decodePacket6(bad, 'fe80::1', 'ff02::12', 255), { ok: false, reason: 'checksum' });
  const v2 = Buffer.from(b);
  v2[0] = 0x21;
  t.deepEqual(decodePacket6(v2, 'fe80::1', 'ff02::12', 255), { ok: false, reason: 'version' });
  t.deepEqual(decodeAdvert(b.subarray(0, 39), 'fe80::1', 'ff02::12'), { ok: false, reason: 'length' });
  const expect = { version: 3 as const, vrid: 51, interval: 100, addressCount: 2, ownAddresses: new Set(['fe80::9']) };
  t.is(validate(d.packet, expect), undefined);
  // RFC 5798 7.1: hop limit other than 255 → dropped
  const d64 = decodePacket6(b, 'fe80::1', 'ff02::12', 64);
  if (!d64.ok) return t.fail(d64.reason);
  t.is(validate(d64.packet, expect), 'ttl');
  // no IPV6_HOPLIMIT in the ancillary data (-1) is dropped too
  const dnone = decodePacket6(b, 'fe80::1', 'ff02::12', -1);
  if (!dnone.ok) return t.fail(dnone.reason);
  t.is(validate(dnone.packet, expect), 'ttl');
  t.is(validate(d.packet, { ...expect, ownAddresses: new Set(['fe80::1']) }), 'own');
  t.is(validate(d.packet, { ...expect, addressCount: 1 }), 'addr_count');
});

test('unsolicited NA frame: Ethernet/IPv6/ICMPv6 bytes as keepalived sends them (golden)', (t) => {
  const mac = Buffer.from('020000000001', 'hex');
  const f = naFrame(mac, '2001:db8::100');
  t.is(f.length, NA_FRAME_LEN);
  t.is(f.toString('hex'), GOLDEN_NA);
  t.is(f[54], 136); // ICMPv6 type NA
  t.is(f[58], 0x20); // Override, not Solicited, not Router
  t.is(f[21], 255); // hop limit
  t.is(f.readUInt16BE(56), 0xf72c);
  // on a forwarding interface the Router flag is set and the checksum follows
  const r = naFrame(mac, '2001:db8::100', true);
  t.is(r[58], 0xa0);
  t.is(r.readUInt16BE(56), 0xf72c - 0x8000);
});

test('recvmsg ancillary data: IPV6_HOPLIMIT and IPV6_PKTINFO', (t) => {
  const ctl = Buffer.alloc(64);
  // cmsghdr { u64 len = 20; int level 41; int type 52 (IPV6_HOPLIMIT); int data } padded to 24
  ctl.writeBigUInt64LE(20n, 0);
  ctl.writeInt32LE(41, 8);
  ctl.writeInt32LE(52, 12);
  ctl.writeInt32LE(254, 16);
  // cmsghdr { len 36; 41; 50 (IPV6_PKTINFO); in6_addr; ifindex }
  ctl.writeBigUInt64LE(36n, 24);
  ctl.writeInt32LE(41, 32);
  ctl.writeInt32LE(50, 36);
  Buffer.from('ff020000000000000000000000000012', 'hex').copy(ctl, 40);
  ctl.writeInt32LE(7, 56);
  t.deepEqual(parseCmsgs6(ctl, 64), { dst: 'ff02::12', hopLimit: 254 });
  t.deepEqual(parseCmsgs6(ctl, 0), { dst: undefined, hopLimit: -1 });
});

test('IPv6 tie-break compares addresses bytewise; IPv4 as before', (t) => {
  t.true(addrGreater('fe80::2', 'fe80::1'));
  t.false(addrGreater('fe80::1', 'fe80::1:0'));
  t.true(addrGreater('fe80::1:0', 'fe80::ffff'));
  t.true(addrGreater('10.0.0.2', '10.0.0.1'));
  t.true(addrGreater('192.168.0.1', '10.0.0.1'));
});

test('IPv6 virtual addresses are added nodad with ip -6, without a label', (t) => {
  t.deepEqual(vipArgs({ addr: '2001:db8::100', prefixLen: 64, label: 'x' }, 'eth0', true), [
    '-6',
    'addr',
    'add',
    '2001:db8::100/64',
    'dev',
    'eth0',
    'nodad',
  ]);
  t.deepEqual(vipArgs({ addr: 'fe80::100', prefixLen: 128, dev: 'eth1' }, 'eth0', false), [
    '-6',
    'addr',
    'del',
    'fe80::100/128',
    'dev',
    'eth1',
  ]);
  t.deepEqual(vipArgs({ addr: '10.0.0.1', prefixLen: 24, label: 'eth0:1' }, 'eth0', true), [
    'addr',
    'add',
    '10.0.0.1/24',
    'dev',
    'eth0',
    'label',
    'eth0:1',
  ]);
});

const YAML6 = `vrrp:
  instances:
    - name: V6
      interface: eth0
      virtual_router_id: 61
      priority: 150
      advert_int: 0.5
      virtual_ipaddress: [fe80::61, 2001:db8::61/64]
`;

test('YAML: an IPv6 instance is VRRPv3 with /128 by default', (t) => {
  t.deepEqual(checkConfigString(YAML6, 'ha.yaml').problems, []);
  const sec = {
    instances: [
      { name: 'V6', interface: 'eth0', virtual_router_id: 61, virtual_ipaddress: ['fe80::61', '2001:db8::61/64'] },
    ],
  } as VrrpSection;
  const cfg = vrrpFromSection(sec);
  t.is(cfg.instances[0].version, 3);
  t.deepEqual(cfg.instances[0].virtualIpaddress, [
    { addr: 'fe80::61', prefixLen: 128 },
    { addr: '2001:db8::61', prefixLen: 64 },
  ]);
  t.deepEqual(checkVrrpConfig(cfg), []);
});

test('YAML: mixed families and VRRPv2 over IPv6 are refused at file:line', (t) => {
  const text = `vrrp:
  instances:
    - name: MIX
      interface: eth0
      virtual_router_id: 62
      version: 2
      virtual_ipaddress:
        - 2001:db8::62
        - { address: 10.0.0.62/24 }
      unicast_src_ip: 10.0.0.1
`;
  const got = checkConfigString(text, 'ha.yaml').problems.map((p) => `ha.yaml:${p.line}: ${p.message}`);
  t.deepEqual(got.filter((m) => m.includes('MIX')).sort(), [
    'ha.yaml:10: (MIX): address family must match VRRP instance [10.0.0.1]',
    'ha.yaml:6: (MIX) VRRPv2 is IPv4 only: an IPv6 instance needs version 3',
    'ha.yaml:9: (MIX): address family must match VRRP instance [10.0.0.62/24]',
  ]);
});

function conf(text: string) {
  const dir = mkdtempSync(join(tmpdir(), 'tlv6-'));
  writeFileSync(join(dir, 'k.conf'), text);
  const r = loadKeepalivedConf(join(dir, 'k.conf'));
  rmSync(dir, { recursive: true, force: true });
  const at = (d: { line: number; message: string }) => `k.conf:${d.line}: ${d.message}`;
  return { r, errors: r.errors.map(at), warnings: r.warnings.map(at) };
}

test('keepalived.conf: IPv6 instance (version 3 even with vrrp_version 2), first VIP not link-local warned', (t) => {
  const { r, errors, warnings } = conf(`global_defs {
  vrrp_version 2
}
vrrp_instance V6 {
  interface eth0
  virtual_router_id 61
  advert_int 0.5
  virtual_ipaddress {
    2001:db8::61/64
    fe80::61
  }
}
`);
  t.deepEqual(errors, []);
  t.deepEqual(warnings, ['k.conf:4: (V6) the first IPv6 VIP address should be link local']);
  const i = r.config.vrrp.instances[0];
  t.is(i.version, 3);
  t.deepEqual(i.virtualIpaddress, [
    { addr: '2001:db8::61', prefixLen: 64 },
    { addr: 'fe80::61', prefixLen: 128 },
  ]);
});

test('keepalived.conf: mixed families and version 2 over IPv6 are errors with file:line', (t) => {
  const { errors } = conf(`vrrp_instance MIX {
  interface eth0
  virtual_router_id 62
  version 2
  virtual_ipaddress {
    fe80::62
    10.0.0.62/24
    2001:db8::62/129
  }
}
`);
  t.deepEqual(errors, [
    'k.conf:7: (MIX): address family must match VRRP instance [10.0.0.62/24]',
    'k.conf:8: bad prefix length in 2001:db8::62/129',
    'k.conf:4: (MIX) VRRPv2 is IPv4 only: an IPv6 instance needs version 3',
  ]);
});

test('IPv6 advert source: the first link-local address that is not a VIP (a held link-local VIP is listed first)', (t) => {
  const c = instanceDefaults({
    name: 'VI_6',
    interface: 'eth0',
    virtualRouterId: 61,
    virtualIpaddress: [
      { addr: 'FE80::1:100', prefixLen: 128 },
      { addr: '2001:db8:88::100', prefixLen: 64 },
    ],
  });
  // what `ip -j addr` lists on a master (or after a crash): the kernel puts the newer link-local VIP first
  const ifc: InterfaceInfo = {
    name: 'eth0',
    index: 2,
    mac: Buffer.alloc(6),
    primaryIp: undefined,
    addresses: [],
    addresses6: ['2001:db8:88::100', '2001:db8:88::2', 'fe80::1:100', 'fe80::e4fb:d0ff:feb2:60a'],
  };
  t.is(pickSource(c, ifc), 'fe80::e4fb:d0ff:feb2:60a');
  t.is(pickSource({ ...c, unicastSrcIp: 'fe80::9' }, ifc), 'fe80::9');
  const err = t.throws(() => pickSource(c, { ...ifc, addresses6: ['2001:db8:88::2', 'fe80::1:100'] }));
  t.is(err?.message, 'vrrp VI_6: eth0 has no IPv6 link-local address to send from');
  // IPv4 unchanged: the first address that is not a VIP
  const c4 = instanceDefaults({
    name: 'VI_4',
    interface: 'eth0',
    virtualRouterId: 1,
    virtualIpaddress: [{ addr: '10.0.0.100', prefixLen: 24 }],
  });
  t.is(pickSource(c4, { ...ifc, addresses: ['10.0.0.100', '10.0.0.2'] }), '10.0.0.2');
});

test('isLinkLocal6: fe80::/10 only', (t) => {
  t.deepEqual(
    ['fe80::1', 'FE80::1', 'febf:1::1', 'fe8::1', 'fec0::1', 'fe80', '2001:db8::1', '10.0.0.1'].map(isLinkLocal6),
    [true, true, true, false, false, false, false, false],
  );
});
