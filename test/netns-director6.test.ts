/**
 * The director's IPv6 path on a real kernel: client, director, rs1, rs2 on a bridge with IPv6 on (addresses in
 * fd00:77:1::/64, nodad), the VIP on the director's eth0 and on the real servers' lo; the daemon and its admin socket
 * as in netns-director.test.ts (whose helpers this file imports), traffic with curl -6.
 */
import type { ChildProcess } from 'node:child_process';
import test from 'ava';
import { request } from '../src/director/client.js';
import {
  adm,
  buildTopo6,
  CLIENT6,
  DIRECTOR6,
  RS16,
  RS26,
  startDirector,
  stopDirector,
  type Topo,
  VIP6,
  waitPort,
} from './netns-director-topo.js';

const VIP = VIP6;
const CLIENT = CLIENT6;
const DIRECTOR = DIRECTOR6;
const RS1 = RS16;
const RS2 = RS26;
const url = (port: number, path = '/') => `http://[${VIP}]:${port}${path}`;

/** HTTP/1.1 keep-alive server on [::]:port answering "<name> <client address> <client port>". */
function httpServer6(t: Topo, ns: string, name: string, port: number): ChildProcess {
  const code = `
import http.server, socketserver, socket
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    def do_GET(self):
        body = ('%s %s %d\\n' % (${JSON.stringify(name)}, self.client_address[0], self.client_address[1])).encode()
        self.send_response(200); self.send_header('Content-Length', str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    address_family = socket.AF_INET6
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 128
S(('::', ${port}), H).serve_forever()
`;
  return t.set.spawn(ns, '/usr/bin/python3', ['-c', code]);
}

/** Bodies of a curl run with `-w '%{num_connects}\n'`: server, client address, client port, new connections. */
function answers(out: string): { name: string; addr: string; port: string; connects: number }[] {
  return [...out.matchAll(/^(\S+) (\S+) (\d+)\n(\d+)$/gm)].map((m) => ({
    name: m[1],
    addr: m[2],
    port: m[3],
    connects: Number(m[4]),
  }));
}

/** curl -6 from the client with any number of URLs (one connection reused for all); '' on failure. */
function curl6(t: Topo, urls: string[], extra: string[] = []): string {
  return t.set.exec(t.client, 'curl', ['-6', '-s', '--max-time', '5', ...extra, ...urls], { allowFail: true }).trim();
}

let t0: Topo;
let director: { child: ChildProcess; stderr: () => string } | null = null;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test.before(async () => {
  t0 = buildTopo6();
  for (const [ns, name] of [
    [t0.rs1, 'rs1'],
    [t0.rs2, 'rs2'],
  ] as const) {
    for (const port of [80, 8000, 8080]) httpServer6(t0, ns, name, port);
    for (const port of [80, 8000, 8080]) await waitPort(t0, ns, port);
  }
  director = await startDirector(t0);
});

test.after.always(async () => {
  if (director) await stopDirector(director.child);
  t0?.dispose();
});

/** The service's real-server rows of `tierlb adm -L -n`: forward, weight, active, inactive by address. */
async function rows(port: number): Promise<Record<string, { fwd: string; active: number; inact: number }>> {
  const out = (await adm(t0, ['-L', '-n'])).stdout;
  const lines = out.split('\n');
  const start = lines.findIndex((l) => l.startsWith('TCP') && l.includes(`[${VIP}]:${port} `));
  const r: Record<string, { fwd: string; active: number; inact: number }> = {};
  for (const l of lines.slice(start + 1)) {
    const m = /^\s+-> (\S+)\s+(\S+)\s+\d+\s+(\d+)\s+(\d+)/.exec(l);
    if (!m) break;
    r[m[1]] = { fwd: m[2], active: Number(m[3]), inact: Number(m[4]) };
  }
  return r;
}

test.serial('DR, rr over IPv6: 10 requests alternate rs1/rs2 exactly, the real server sees the client', async (t) => {
  t.is((await adm(t0, ['-A', '-t', `[${VIP}]:80`, '-s', 'rr'])).code, 0);
  for (const rs of [RS1, RS2]) t.is((await adm(t0, ['-a', '-t', `[${VIP}]:80`, '-r', `[${rs}]:80`, '-g'])).code, 0);
  const bodies = Array.from({ length: 10 }, () => curl6(t0, [url(80)]));
  const names = bodies.map((b) => b.split(' ')[0] || 'FAIL');
  t.true(
    names.every((n, i) => (n === 'rs1' || n === 'rs2') && (i === 0 || n !== names[i - 1])),
    names.join(','),
  );
  t.deepEqual(
    bodies.map((b) => b.split(' ')[1]),
    Array(10).fill(CLIENT),
  );
  const list = (await adm(t0, ['-L', '-n'])).stdout;
  t.regex(list, /^TCP\s+\[fd00:77:1::100\]:80 rr/m, list);
  t.regex(list, /-> \[fd00:77:1::11\]:80\s+Route\s+1/, list);
  t.regex(list, /-> \[fd00:77:1::12\]:80\s+Route\s+1/, list);
});

test.serial(
  'DR over IPv6: a keep-alive connection stays on one real server for all its requests (established-flow lookup)',
  async (t) => {
    await adm(t0, ['-Z', '-t', `[${VIP}]:80`]);
    // two clients at once, 12 requests each on one connection, paced so their packets interleave at the director
    const paths = (c: string) => Array.from({ length: 12 }, (_, i) => url(80, `/${c}${i}`));
    const run = (c: string) =>
      new Promise<string>((resolve) => {
        const p = t0.set.spawn(t0.client, 'curl', [
          '-6',
          '-s',
          '--max-time',
          '10',
          '--rate',
          '20/s',
          '-w',
          '%{num_connects}\n',
          ...paths(c),
        ]);
        let out = '';
        p.stdout?.on('data', (d) => {
          out += d.toString();
        });
        p.on('exit', () => resolve(out));
      });
    const outs = await Promise.all([run('a'), run('b')]);
    const servers: string[] = [];
    for (const out of outs) {
      const ms = answers(out);
      t.is(ms.length, 12, out);
      // one TCP connection (curl connected once, the server saw one source port), one real server, the client's address
      t.is(
        ms.reduce((a, m) => a + m.connects, 0),
        1,
        out,
      );
      t.is(new Set(ms.map((m) => m.port)).size, 1, out);
      t.is(new Set(ms.map((m) => m.name)).size, 1, out);
      t.true(
        ms.every((m) => m.addr === CLIENT),
        out,
      );
      servers.push(ms[0].name);
    }
    // rr gave the two connections different servers: each of them was kept there by its flow, not by chance
    t.deepEqual(servers.sort(), ['rs1', 'rs2']);
    const st = (await adm(t0, ['-L', '-n', '-t', `[${VIP}]:80`, '--stats'])).stdout;
    const svc = /^TCP\s+\S+\s+(\d+)\s+(\d+)/m.exec(st);
    t.truthy(svc, st);
    t.is(Number(svc![1]), 2, st);
    // 12 requests and their ACKs per connection went through the director without a new connection
    t.true(Number(svc![2]) >= 2 * 12, st);
    const conns = (await adm(t0, ['-L', '-n', '-c'])).stdout;
    t.regex(conns, /\[fd00:77:1::10\]:\d+\s+\[fd00:77:1::100\]:80\s+\[fd00:77:1::1[12]\]:80/, conns);
  },
);

test.serial('NAT over IPv6 with port mapping: RS on 8080, replies come back through the director', async (t) => {
  for (const rs of [t0.rs1, t0.rs2])
    t0.set.exec(rs, 'ip', ['-6', 'route', 'replace', `${CLIENT}/128`, 'via', DIRECTOR, 'dev', 'eth0']);
  try {
    t.is((await adm(t0, ['-A', '-t', `[${VIP}]:81`, '-s', 'rr'])).code, 0);
    for (const rs of [RS1, RS2]) t.is((await adm(t0, ['-a', '-t', `[${VIP}]:81`, '-r', `[${rs}]:8080`, '-m'])).code, 0);
    const before = JSON.parse(await request(t0.socket, { op: 'stats' }));
    const bodies = Array.from({ length: 4 }, () => curl6(t0, [url(81)]));
    const names = bodies.map((b) => b.split(' ')[0] || 'FAIL');
    t.deepEqual([...names].sort(), ['rs1', 'rs1', 'rs2', 'rs2'], JSON.stringify(bodies));
    t.true(
      bodies.every((b) => b.split(' ')[1] === CLIENT),
      JSON.stringify(bodies),
    );
    // keep-alive through NAT: every reply of one connection rewritten back on the same flow
    const ka = curl6(
      t0,
      Array.from({ length: 8 }, (_, i) => url(81, `/${i}`)),
      ['-w', '%{num_connects}\n'],
    );
    const kaAnswers = answers(ka);
    t.is(kaAnswers.length, 8, ka);
    t.is(new Set(kaAnswers.map((a) => `${a.name} ${a.addr} ${a.port}`)).size, 1, ka);
    t.is(
      kaAnswers.reduce((a, m) => a + m.connects, 0),
      1,
      ka,
    );
    const st = JSON.parse(await request(t0.socket, { op: 'stats' }));
    t.true(st.forwarded.masq - before.forwarded.masq > 0, JSON.stringify(st.forwarded));
    t.true(st.forwarded.reply - before.forwarded.reply > 0, JSON.stringify(st.forwarded));
    const r = await rows(81);
    t.deepEqual(Object.keys(r).sort(), [`[${RS1}]:8080`, `[${RS2}]:8080`]);
    t.true(
      Object.values(r).every((x) => x.fwd === 'Masq'),
      JSON.stringify(r),
    );
  } finally {
    for (const rs of [t0.rs1, t0.rs2]) t0.set.exec(rs, 'ip', ['-6', 'route', 'del', `${CLIENT}/128`]);
    await adm(t0, ['-D', '-t', `[${VIP}]:81`]);
  }
});

test.serial('adm -L -n: ActiveConn / InActConn of an IPv6 service follow open and closed connections', async (t) => {
  t.is((await adm(t0, ['-A', '-t', `[${VIP}]:8000`, '-s', 'rr'])).code, 0);
  for (const rs of [RS1, RS2]) t.is((await adm(t0, ['-a', '-t', `[${VIP}]:8000`, '-r', `[${rs}]:8000`, '-g'])).code, 0);
  t.deepEqual(await rows(8000), {
    [`[${RS1}]:8000`]: { fwd: 'Route', active: 0, inact: 0 },
    [`[${RS2}]:8000`]: { fwd: 'Route', active: 0, inact: 0 },
  });
  // 4 connections, each through one request and answer (ESTABLISHED at the director), closed when stdin closes
  const hold = t0.set.spawn(t0.client, '/usr/bin/python3', [
    '-c',
    `import socket, sys, time
conns = []
for _ in range(4):
    c = socket.create_connection(('${VIP}', 8000))
    c.sendall(b'GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n')
    c.recv(4096)
    conns.append(c)
print('open', flush=True)
sys.stdin.read()
for c in conns:
    c.close()
print('closed', flush=True)
time.sleep(1)`,
  ]);
  let said = '';
  for (const s of [hold.stdout, hold.stderr]) s?.on('data', (d) => (said += d.toString()));
  const saying = async (word: string) => {
    for (let i = 0; i < 50 && !said.includes(word); i++) await sleep(100);
    t.true(said.includes(word), said);
  };
  await saying('open');
  t.deepEqual(await rows(8000), {
    [`[${RS1}]:8000`]: { fwd: 'Route', active: 2, inact: 0 },
    [`[${RS2}]:8000`]: { fwd: 'Route', active: 2, inact: 0 },
  });
  hold.stdin?.end();
  await saying('closed');
  await sleep(500);
  // after the FINs: nothing active; the closed flows stay inactive until their FIN_WAIT/TIME_WAIT timeouts (minutes)
  t.deepEqual(await rows(8000), {
    [`[${RS1}]:8000`]: { fwd: 'Route', active: 0, inact: 2 },
    [`[${RS2}]:8000`]: { fwd: 'Route', active: 0, inact: 2 },
  });
  await adm(t0, ['-D', '-t', `[${VIP}]:8000`]);
});
