/**
 * What an attacker (or an unlucky network) sends a director, on the real kernel: fragmented UDP datagrams to DR and
 * NAT services, ICMP errors about NAT and DR flows in both directions (PMTU discovery through the director), and
 * martian sources. Client, director, rs1, rs2 on a bridge (test/netns-director-topo.ts); crafted packets leave the
 * client or a real server through a raw socket (python3, IP_HDRINCL).
 */
import type { ChildProcess } from 'node:child_process';
import test from 'ava';
import { request } from '../src/director/client.js';
import {
  adm,
  buildTopo,
  buildTopo6,
  CLIENT,
  CLIENT6,
  DIRECTOR,
  DIRECTOR6,
  RS1,
  RS2,
  RS16,
  startDirector,
  stopDirector,
  type Topo,
  VIP,
  VIP6,
} from './netns-director-topo.js';
import { icmpError, ip, TCP, tcp, UDP, udp } from './packet-craft.js';

let t0: Topo;
let director: { child: ChildProcess; stderr: () => string } | null = null;
const received: Record<string, string[]> = { rs1: [], rs2: [] };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Push each whole line a child prints into `sink`: stdout arrives in chunks that may end mid-line. */
function collectLines(p: ChildProcess, sink: string[]): void {
  let tail = '';
  p.stdout?.on('data', (d) => {
    const lines = (tail + d.toString()).split('\n');
    tail = lines.pop() ?? '';
    sink.push(...lines.filter((l) => l !== ''));
  });
}

/** A UDP server on 9000 and 9001 printing "<port> <size> <client>:<cport>" for every datagram (python3). */
function udpRecorder(ns: string, name: 'rs1' | 'rs2'): void {
  const code = `
import socket, selectors, sys
sel = selectors.DefaultSelector()
for p in (9000, 9001):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.bind(('0.0.0.0', p)); sel.register(s, selectors.EVENT_READ, p)
while True:
    for k, _ in sel.select():
        d, a = k.fileobj.recvfrom(65535)
        print(k.data, len(d), '%s:%d' % a, flush=True)
`;
  const p = t0.set.spawn(ns, '/usr/bin/python3', ['-c', code]);
  collectLines(p, received[name]);
}

/** Send raw IPv4 packets (full headers) from a namespace. */
function rawSend(ns: string, pkts: Uint8Array[]): void {
  const hex = pkts.map((p) => Buffer.from(p).toString('hex')).join(' ');
  t0.set.exec(ns, '/usr/bin/python3', [
    '-c',
    `import socket,sys
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
for h in sys.argv[1].split():
    b = bytes.fromhex(h); s.sendto(b, ('%d.%d.%d.%d' % tuple(b[16:20]), 0))`,
    hex,
  ]);
}

/** Send IPv4 packets as Ethernet frames to `dstMac` from a namespace's eth0 (AF_PACKET: any source, even 0.0.0.0). */
function frameSend(ns: string, srcMac: string, dstMac: string, pkts: Uint8Array[]): void {
  const mac = (m: string) => m.replaceAll(':', '');
  const hex = pkts.map((p) => `${mac(dstMac)}${mac(srcMac)}0800${Buffer.from(p).toString('hex')}`).join(' ');
  t0.set.exec(ns, '/usr/bin/python3', [
    '-c',
    `import socket,sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind(('eth0', 0))
for h in sys.argv[1].split(): s.send(bytes.fromhex(h))`,
    hex,
  ]);
}

async function stats(): Promise<{
  bad: Record<string, number>;
  forwarded: Record<string, number>;
  kernel: { reassembly?: { v4: { oks: number } } };
}> {
  return JSON.parse(await request(t0.socket, { op: 'stats' }));
}

test.before(async () => {
  t0 = buildTopo('h');
  udpRecorder(t0.rs1, 'rs1');
  udpRecorder(t0.rs2, 'rs2');
  // NAT: the real servers answer the client through the director
  for (const rs of [t0.rs1, t0.rs2]) t0.set.exec(rs, 'ip', ['route', 'replace', `${CLIENT}/32`, 'via', DIRECTOR]);
  director = await startDirector(t0, ['--fastpath', 'off']);
  const cmds = [
    ['-A', '-u', `${VIP}:9000`, '-s', 'rr'],
    ['-a', '-u', `${VIP}:9000`, '-r', RS1, '-g'],
    ['-a', '-u', `${VIP}:9000`, '-r', RS2, '-g'],
    ['-A', '-u', `${VIP}:9001`, '-s', 'rr'],
    ['-a', '-u', `${VIP}:9001`, '-r', `${RS1}:9001`, '-m'],
    ['-a', '-u', `${VIP}:9001`, '-r', `${RS2}:9001`, '-m'],
    ['-A', '-t', `${VIP}:80`, '-s', 'rr'],
    ['-a', '-t', `${VIP}:80`, '-r', RS1, '-g'],
  ];
  for (const c of cmds) {
    const r = await adm(t0, c);
    if (r.code !== 0) throw new Error(`adm ${c.join(' ')}: ${r.stderr}`);
  }
});

test.after.always(async () => {
  if (director) await stopDirector(director.child);
  t0?.dispose();
});

test.serial('fragmented UDP datagrams reach the real server whole, DR and NAT; reassembly is counted', async (t) => {
  const sizes = [100, 1400, 3000, 8000];
  const send = (port: number, sport: number) =>
    t0.set.exec(t0.client, '/usr/bin/python3', [
      '-c',
      `import socket
for i, n in enumerate((${sizes.join(',')})):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', ${sport} + i))
    s.sendto(b'x' * n, ('${VIP}', ${port}))`,
    ]);
  send(9000, 30000);
  send(9001, 31000);
  for (let i = 0; i < 40 && received.rs1.length + received.rs2.length < 8; i++) await sleep(50);
  const got = [...received.rs1, ...received.rs2];
  for (const port of [9000, 9001])
    t.deepEqual(
      got
        .filter((l) => l.startsWith(`${port} `))
        .map((l) => Number(l.split(' ')[1]))
        .sort((a, b) => a - b),
      sizes,
      `port ${port}: ${got.join(' | ')}`,
    );
  // the real servers saw the client's own address (DR keeps it, NAT keeps it)
  t.true(got.every((l) => l.split(' ')[2].startsWith(`${CLIENT}:`)));
  const st = await stats();
  t.falsy(st.bad.fragment, JSON.stringify(st.bad));
  t.true((st.kernel.reassembly?.v4.oks ?? 0) >= 4, JSON.stringify(st.kernel));
});

/** A connected UDP socket in the client: sends one datagram, then reports what its next recv gets. */
function udpClient(port: number, sport: number): { result: Promise<string>; proc: ChildProcess } {
  const proc = t0.set.spawn(t0.client, '/usr/bin/python3', [
    '-c',
    `import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', ${sport})); s.connect(('${VIP}', ${port}))
s.send(b'hello'); print('sent', flush=True)
sys.stdin.readline(); s.settimeout(2)
try:
    s.send(b'again'); s.recv(100); print('data', flush=True)
except ConnectionRefusedError: print('refused', flush=True)
except socket.timeout: print('timeout', flush=True)`,
  ]);
  let out = '';
  const result = new Promise<string>((resolve) => {
    proc.stdout?.on('data', (d) => {
      out += d.toString();
      if (/refused|data|timeout/.test(out)) resolve(out.trim().split('\n').at(-1) ?? '');
    });
    proc.on('exit', () => resolve(out.trim().split('\n').at(-1) ?? ''));
  });
  return { result, proc };
}

function rsOf(sport: number): { ns: string; addr: string } {
  const hit = received.rs1.some((l) => l.endsWith(`:${sport}`));
  return hit ? { ns: t0.rs1, addr: RS1 } : { ns: t0.rs2, addr: RS2 };
}

test.serial('NAT: an ICMP error from the real server reaches the client rewritten as from the VIP', async (t) => {
  const sport = 32000;
  const c = udpClient(9001, sport);
  for (let i = 0; i < 40 && !received.rs1.concat(received.rs2).some((l) => l.endsWith(`:${sport}`)); i++)
    await sleep(50);
  const rs = rsOf(sport);
  // the real server says port unreachable about the datagram the director handed it (CIP:sport → RIP:9001)
  const quoted = ip({
    src: CLIENT,
    dst: rs.addr,
    proto: UDP,
    payload: udp({ src: CLIENT, dst: rs.addr, sport, dport: 9001, data: Buffer.from('hello') }),
  });
  rawSend(rs.ns, [icmpError({ src: rs.addr, dst: CLIENT, type: 3, code: 3, quoted })]);
  await sleep(200);
  c.proc.stdin?.write('\n');
  // the client's kernel matched it to its connected socket: it came from the VIP quoting CIP → VIP:9001
  t.is(await c.result, 'refused');
  t.true((await stats()).forwarded.reply >= 1);
});

test.serial('PMTU: a frag-needed from the client side reaches the real server (NAT rewritten, DR as is)', async (t) => {
  for (const [port, sport] of [
    [9001, 33000],
    [9000, 34000],
  ]) {
    for (const ns of [t0.rs1, t0.rs2]) t0.set.exec(ns, 'ip', ['route', 'flush', 'cache']);
    t0.set.exec(t0.client, '/usr/bin/python3', [
      '-c',
      `import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', ${sport})); s.sendto(b'x', ('${VIP}', ${port}))`,
    ]);
    for (let i = 0; i < 40 && !received.rs1.concat(received.rs2).some((l) => l.endsWith(`:${sport}`)); i++)
      await sleep(50);
    const rs = rsOf(sport);
    // a router on the client's path cannot pass the (large) reply VIP:port → CIP:sport without fragmenting
    const reply = ip({
      src: VIP,
      dst: CLIENT,
      proto: UDP,
      df: true,
      payload: udp({ src: VIP, dst: CLIENT, sport: port, dport: sport, data: new Uint8Array(1472) }),
    });
    rawSend(t0.client, [icmpError({ src: CLIENT, dst: VIP, type: 3, code: 4, quoted: reply, mtu: 1280 })]);
    let route = '';
    for (let i = 0; i < 40 && !route.includes('mtu 1280'); i++) {
      await sleep(50);
      route = t0.set.exec(rs.ns, 'ip', ['route', 'get', CLIENT]);
    }
    t.regex(route, /mtu 1280/, `port ${port}: the real server's path MTU to the client`);
  }
});

test.serial('martian and own-address sources get no connection entry; they are counted', async (t) => {
  const before = (await stats()).bad.martian ?? 0;
  const sources = ['0.0.0.0', '0.1.2.3', '127.0.0.1', '224.0.0.1', '239.1.2.3', '255.255.255.255', VIP, DIRECTOR];
  // as frames: a raw IP socket would put the client's address in for 0.0.0.0
  frameSend(
    t0.client,
    t0.macs.client,
    t0.macs.director,
    sources.map((src, i) =>
      ip({ src, dst: VIP, proto: TCP, payload: tcp({ src, dst: VIP, sport: 45000 + i, dport: 80, flags: 0x02 }) }),
    ),
  );
  let n = before;
  for (let i = 0; i < 40 && n - before < sources.length; i++) {
    await sleep(50);
    n = (await stats()).bad.martian ?? 0;
  }
  t.is(n - before, sources.length);
  const conns = (await adm(t0, ['-L', '-n', '-c'])).stdout;
  for (const s of sources) t.false(conns.includes(`${s}:4500`), `${s} got an entry:\n${conns}`);
});

test.serial(
  'IPv6: fragmented UDP reaches DR and NAT real servers whole; a packet-too-big reaches the NAT real server rewritten',
  async (t) => {
    const t6 = buildTopo6();
    let d6: { child: ChildProcess } | null = null;
    try {
      const got: string[] = [];
      const rec = t6.set.spawn(t6.rs1, '/usr/bin/python3', [
        '-c',
        `import socket, selectors
sel = selectors.DefaultSelector()
for p in (9000, 9001):
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.bind(('::', p)); sel.register(s, selectors.EVENT_READ, p)
while True:
    for k, _ in sel.select():
        d, a = k.fileobj.recvfrom(65535); print(k.data, len(d), a[1], flush=True)`,
      ]);
      collectLines(rec, got);
      t6.set.exec(t6.rs1, 'ip', ['-6', 'route', 'replace', `${CLIENT6}/128`, 'via', DIRECTOR6]);
      d6 = await startDirector(t6, ['--fastpath', 'off']);
      for (const c of [
        ['-A', '-u', `[${VIP6}]:9000`, '-s', 'rr'],
        ['-a', '-u', `[${VIP6}]:9000`, '-r', `[${RS16}]:9000`, '-g'],
        ['-A', '-u', `[${VIP6}]:9001`, '-s', 'rr'],
        ['-a', '-u', `[${VIP6}]:9001`, '-r', `[${RS16}]:9001`, '-m'],
      ])
        t.is((await adm(t6, c)).code, 0, c.join(' '));
      const sizes = [100, 1400, 3000, 8000];
      t6.set.exec(t6.client, '/usr/bin/python3', [
        '-c',
        `import socket
for port in (9000, 9001):
    for i, n in enumerate((${sizes.join(',')})):
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.bind(('::', port * 4 + i))
        s.sendto(b'x' * n, ('${VIP6}', port))`,
      ]);
      for (let i = 0; i < 40 && got.length < 8; i++) await sleep(50);
      for (const port of [9000, 9001])
        t.deepEqual(
          got
            .filter((l) => l.startsWith(`${port} `))
            .map((l) => Number(l.split(' ')[1]))
            .sort((a, b) => a - b),
          sizes,
          `port ${port}: ${got.join(' | ')}`,
        );
      // (netfilter's IPv6 reassembly, nf_ct_frag6, does not count in /proc/net/snmp6 Ip6Reasm*: nothing to check)
      // packet too big from the client side about the NAT reply VIP6:9001 → CLIENT6:cport: rs1 learns the path MTU
      const cport = 9001 * 4 + 2;
      const reply = ip({
        src: VIP6,
        dst: CLIENT6,
        proto: UDP,
        payload: udp({ src: VIP6, dst: CLIENT6, sport: 9001, dport: cport, data: new Uint8Array(1400) }),
      });
      const ptb = icmpError({ src: CLIENT6, dst: VIP6, type: 2, code: 0, quoted: reply, mtu: 1280 });
      t6.set.exec(t6.client, '/usr/bin/python3', [
        '-c',
        `import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
s.sendto(bytes.fromhex('${Buffer.from(ptb).toString('hex')}'), ('${VIP6}', 0))`,
      ]);
      let route = '';
      for (let i = 0; i < 40 && !route.includes('mtu 1280'); i++) {
        await sleep(50);
        route = t6.set.exec(t6.rs1, 'ip', ['-6', 'route', 'get', CLIENT6]);
      }
      t.regex(route, /mtu 1280/);
    } finally {
      if (d6) await stopDirector(d6.child);
      t6.dispose();
    }
  },
);
