/**
 * The malformed-packet corpus (test/packet-corpus.ts) replayed at the director, as Ethernet frames from the client,
 * while a 4 MiB download and a 4 MiB upload run through the VIP (DR to rs1): both must arrive byte-exact, the
 * director must keep answering, and the bad packets must be counted, not crash anything.
 */
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { request } from '../src/director/client.js';
import { adm, buildTopo, RS1, startDirector, stopDirector, type Topo, VIP } from './netns-director-topo.js';
import { malformedCorpus } from './packet-corpus.js';

const VIP6 = 'fd00:77:1::100';
const RS16 = 'fd00:77:1::11';
const SIZE = 4 << 20;
const REPLAY_ROUNDS = 40;

let t0: Topo;
let director: { child: ChildProcess; stderr: () => string } | null = null;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The bytes both transfers carry: a fixed pseudo-random pattern (python's and ours agree on it). */
const PATTERN = `bytes((i * 2654435761 >> 13) & 255 for i in range(${SIZE}))`;

test.before(async () => {
  t0 = buildTopo('fz');
  // the director and rs1 take IPv6 too, so the corpus's IPv6 half reaches the queue
  for (const [ns, addr] of [
    [t0.director, `${VIP6}/64`],
    [t0.rs1, `${RS16}/64`],
  ] as const) {
    t0.set.exec(ns, 'sysctl', ['-qw', 'net.ipv6.conf.all.disable_ipv6=0', 'net.ipv6.conf.eth0.disable_ipv6=0']);
    t0.set.exec(ns, 'ip', ['-6', 'addr', 'add', addr, 'dev', 'eth0', 'nodad']);
  }
  director = await startDirector(t0, ['--fastpath', 'off']);
  for (const c of [
    ['-A', '-t', `${VIP}:8080`, '-s', 'rr'],
    ['-a', '-t', `${VIP}:8080`, '-r', RS1, '-g'],
    ['-A', '-u', `${VIP}:9000`, '-s', 'rr'],
    ['-a', '-u', `${VIP}:9000`, '-r', RS1, '-g'],
    ['-A', '-t', `[${VIP6}]:8080`, '-s', 'rr'],
    ['-a', '-t', `[${VIP6}]:8080`, '-r', `[${RS16}]:8080`, '-g'],
  ]) {
    const r = await adm(t0, c);
    if (r.code !== 0) throw new Error(`adm ${c.join(' ')}: ${r.stderr}`);
  }
});

test.after.always(async () => {
  if (director) await stopDirector(director.child);
  t0?.dispose();
});

test.serial(
  'a malformed-packet corpus replayed at the director: transfers through the VIP stay byte-exact',
  async (t) => {
    // rs1: on VIP:8080 the first connection downloads the pattern, the second uploads (prints its sha256)
    const server = t0.set.spawn(t0.rs1, '/usr/bin/python3', [
      '-c',
      `import socket, hashlib
data = ${PATTERN}
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('${VIP}', 8080)); s.listen(4)
print('ready', flush=True)
c, _ = s.accept(); c.sendall(data); c.close()
c, _ = s.accept(); h = hashlib.sha256(); n = 0
while True:
    b = c.recv(1 << 16)
    if not b: break
    h.update(b); n += len(b)
print('upload', n, h.hexdigest(), flush=True)`,
    ]);
    let sout = '';
    server.stdout?.on('data', (d) => {
      sout += d.toString();
    });
    for (let i = 0; i < 100 && !sout.includes('ready'); i++) await sleep(50);
    const want = createHash('sha256')
      .update(Uint8Array.from({ length: SIZE }, (_, i) => Number((BigInt(i) * 2654435761n) >> 13n) & 255))
      .digest('hex');

    // the client: download then upload, paced (64 KiB every 20 ms) so both run while the corpus is replayed
    const client = t0.set.spawn(t0.client, '/usr/bin/python3', [
      '-c',
      `import socket, hashlib, time
data = ${PATTERN}
c = socket.socket(); c.settimeout(20); c.connect(('${VIP}', 8080)); h = hashlib.sha256(); n = 0
while True:
    b = c.recv(1 << 16)
    if not b: break
    h.update(b); n += len(b); time.sleep(0.004)
print('download', n, h.hexdigest(), flush=True)
c = socket.socket(); c.settimeout(20); c.connect(('${VIP}', 8080))
for i in range(0, len(data), 1 << 16):
    c.sendall(data[i:i + (1 << 16)]); time.sleep(0.03)
c.close()`,
    ]);
    let cout = '';
    client.stdout?.on('data', (d) => {
      cout += d.toString();
    });
    const clientDone = new Promise((r) => client.once('exit', r));

    // the corpus as frames to the director's MAC, replayed while the transfers run
    const corpus = malformedCorpus({ vip: VIP, vip6: VIP6, tcpPort: 8080, udpPort: 9000 });
    const mac = (m: string) => m.replaceAll(':', '');
    const frames = corpus.map((p) => {
      const v6 = p.length > 0 && p[0] >> 4 === 6;
      return `${mac(t0.macs.director)}${mac(t0.macs.client)}${v6 ? '86dd' : '0800'}${Buffer.from(p).toString('hex')}`;
    });
    const file = join(t0.dir, 'corpus.hex');
    writeFileSync(file, frames.join('\n'));
    await sleep(300);
    const replay = t0.set.exec(t0.client, '/usr/bin/python3', [
      '-c',
      `import socket, time
fr = [bytes.fromhex(l) for l in open('${file}').read().split()]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind(('eth0', 0))
n = 0
for r in range(${REPLAY_ROUNDS}):
    for f in fr:
        try: s.send(f); n += 1
        except OSError: pass
    time.sleep(0.05)
print(n)`,
    ]);
    t.true(Number(replay) >= corpus.length * REPLAY_ROUNDS * 0.9, `sent ${replay}`);
    await clientDone;
    for (let i = 0; i < 40 && !sout.includes('upload'); i++) await sleep(100);
    t.regex(cout, new RegExp(`download ${SIZE} ${want}`));
    t.regex(sout, new RegExp(`upload ${SIZE} ${want}`));
    // the director is alive, answers, and counted what it refused (bad IHL, short and lying IPv4 headers never get
    // past the kernel's ip_rcv: they cannot be seen here)
    const st = JSON.parse(await request(t0.socket, { op: 'stats' }));
    t.is(director?.child.exitCode, null);
    for (const reason of ['bad-l4-header', 'martian', 'icmp-bad-inner', 'unknown-protocol'])
      t.true((st.bad[reason] ?? 0) > 0, `${reason}: ${JSON.stringify(st.bad)}`);
    t.is(st.bad.internal ?? 0, 0, 'no packet threw inside the forwarder');
    t.regex((await adm(t0, ['-L', '-n'])).stdout, new RegExp(`${VIP}:8080`));
    t.log(`corpus ${corpus.length} frames x ${REPLAY_ROUNDS}; director counted ${JSON.stringify(st.bad)}`);
  },
);
