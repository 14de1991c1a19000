import test from 'ava';
import { bytesToIpv6, ipv6ToBytes } from '../src/common/addr.js';
import { decode, encode, encodeV1, encodeV2, headerFor, V2_SIGNATURE } from '../src/listeners/proxy-protocol.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

test('v1 TCP4 line, byte for byte', (t) => {
  const b = encodeV1({
    version: 1,
    command: 'PROXY',
    family: 'TCP4',
    src: '192.168.0.1',
    dst: '192.168.0.11',
    srcPort: 56324,
    dstPort: 443,
  });
  t.is(b.toString('latin1'), 'PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n');
  const r = decode(Buffer.concat([b, Buffer.from('GET / HTTP/1.1\r\n')]));
  t.deepEqual(r, {
    status: 'ok',
    length: b.length,
    header: {
      version: 1,
      command: 'PROXY',
      family: 'TCP4',
      src: '192.168.0.1',
      dst: '192.168.0.11',
      srcPort: 56324,
      dstPort: 443,
    },
  });
});

test('v1 TCP6, UNKNOWN, and the 107-byte worst case', (t) => {
  const b = encodeV1({
    version: 1,
    command: 'PROXY',
    family: 'TCP6',
    src: '2001:db8::1',
    dst: '2001:db8::2',
    srcPort: 1,
    dstPort: 2,
  });
  t.is(b.toString(), 'PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n');
  t.is(encodeV1({ version: 1, command: 'LOCAL', family: 'UNKNOWN' }).toString(), 'PROXY UNKNOWN\r\n');
  const worst =
    'PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n';
  t.is(worst.length, 104);
  t.is(decode(Buffer.from(worst)).status, 'ok');
  const unk = decode(Buffer.from('PROXY UNKNOWN ffff::1 ffff::2 1 2\r\nrest'));
  t.like(unk, { status: 'ok', length: 35, header: { family: 'UNKNOWN' } });
});

test('v1 incomplete and invalid', (t) => {
  t.is(decode(Buffer.from('PRO')).status, 'incomplete');
  t.is(decode(Buffer.from('PROXY TCP4 1.2.3.4')).status, 'incomplete');
  t.is(decode(Buffer.from('GET / HTTP/1.1\r\n')).status, 'error');
  t.is(decode(Buffer.from('PROXY TCP4 1.2.3.400 1.2.3.4 1 2\r\n')).status, 'error');
  t.is(decode(Buffer.from('PROXY TCP4 1.2.3.4 1.2.3.4 1 65536\r\n')).status, 'error');
  t.is(decode(Buffer.from(`PROXY TCP4 ${'1'.repeat(120)}`)).status, 'error');
});

test('v2 TCP4 golden bytes', (t) => {
  const b = encodeV2({
    version: 2,
    command: 'PROXY',
    family: 'TCP4',
    src: '192.168.0.1',
    dst: '192.168.0.11',
    srcPort: 56324,
    dstPort: 443,
  });
  t.deepEqual(b, hex(`0d0a0d0a000d0a515549540a 21 11 000c  c0a80001 c0a8000b dc04 01bb`));
  t.deepEqual(b.subarray(0, 12), V2_SIGNATURE);
  t.deepEqual(decode(b), {
    status: 'ok',
    length: 28,
    header: {
      version: 2,
      command: 'PROXY',
      family: 'TCP4',
      src: '192.168.0.1',
      dst: '192.168.0.11',
      srcPort: 56324,
      dstPort: 443,
    },
  });
});

test('v2 TCP6 golden bytes and TLVs', (t) => {
  const b = encodeV2({
    version: 2,
    command: 'PROXY',
    family: 'TCP6',
    src: '2001:db8::1',
    dst: '::ffff:10.0.0.1',
    srcPort: 80,
    dstPort: 8080,
    tlvs: [{ type: 0x02, value: Buffer.from('example.com') }],
  });
  t.deepEqual(
    b,
    hex(
      `0d0a0d0a000d0a515549540a 21 21 0032
       20010db8000000000000000000000001 00000000000000000000ffff0a000001 0050 1f90
       02 000b ${Buffer.from('example.com').toString('hex')}`,
    ),
  );
  const r = decode(b);
  t.like(r, {
    status: 'ok',
    length: 66,
    header: { family: 'TCP6', src: '2001:db8::1', dst: '::ffff:10.0.0.1', srcPort: 80, dstPort: 8080 },
  });
  if (r.status === 'ok') t.is(r.header.tlvs?.[0]?.value.toString(), 'example.com');
});

test('v2 LOCAL, UNSPEC, incomplete and invalid', (t) => {
  const local = encodeV2({ version: 2, command: 'LOCAL', family: 'UNKNOWN' });
  t.deepEqual(local, hex('0d0a0d0a000d0a515549540a 20 00 0000'));
  t.like(decode(local), { status: 'ok', length: 16, header: { command: 'LOCAL', family: 'UNKNOWN' } });
  const full = encodeV2({
    version: 2,
    command: 'PROXY',
    family: 'TCP4',
    src: '1.2.3.4',
    dst: '5.6.7.8',
    srcPort: 1,
    dstPort: 2,
  });
  for (const n of [1, 5, 12, 15, 27]) t.is(decode(full.subarray(0, n)).status, 'incomplete', `n=${n}`);
  const badVer = Buffer.from(full);
  badVer[12] = 0x11;
  t.is(decode(badVer).status, 'error');
  const badSig = Buffer.from(full);
  badSig[6] = 0x00;
  t.is(decode(badSig).status, 'error');
  const shortAddr = hex('0d0a0d0a000d0a515549540a 21 11 0004 01020304');
  t.is(decode(shortAddr).status, 'error');
});

test('v2 UNIX block is 216 bytes', (t) => {
  const b = encodeV2({ version: 2, command: 'PROXY', family: 'UNIX', src: '/run/a.sock', dst: '/run/b.sock' });
  t.is(b.length, 16 + 216);
  t.is(b[13], 0x31);
  t.like(decode(b), { status: 'ok', header: { src: '/run/a.sock', dst: '/run/b.sock' } });
});

test('IPv6 text/bytes and headerFor', (t) => {
  t.is(bytesToIpv6(ipv6ToBytes('2001:db8:0:0:1:0:0:1')), '2001:db8::1:0:0:1');
  t.is(bytesToIpv6(ipv6ToBytes('::')), '::');
  t.is(bytesToIpv6(ipv6ToBytes('fe80::1')), 'fe80::1');
  t.like(headerFor('::ffff:127.0.0.2', 5000, '127.0.0.1', 80), { family: 'TCP4', src: '127.0.0.2' });
  t.like(headerFor('::1', 5000, '::1', 80), { family: 'TCP6' });
});

test('a v4-mapped client address reads the same from v1 and v2 (RFC 5952 5: ::ffff:a.b.c.d)', (t) => {
  // an IPv4 client to an IPv6 address: both sides travel as TCP6
  const h = headerFor('10.0.0.1', 5000, '2001:db8::1', 80);
  t.is(h.family, 'TCP6');
  for (const v of [1, 2] as const) {
    const r = decode(encode(h, v));
    t.like(r, { status: 'ok', header: { src: '::ffff:10.0.0.1', dst: '2001:db8::1', srcPort: 5000, dstPort: 80 } });
  }
});
