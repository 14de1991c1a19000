/** TCP mode through the real `tierlb listeners`: half-close, send-proxy v1, accept-proxy, leastconn. */
import net from 'node:net';
import test from 'ava';
import { encodeV2 } from '../src/listeners/proxy-protocol.js';
import { freePort, type Running, startListeners, type TcpBackend, tcpBackend, until } from './listeners-helpers.js';

let run: Running;
let plainPort: number;
let chainPort: number;
let a: TcpBackend;
let b: TcpBackend;

test.before(async () => {
  plainPort = await freePort();
  chainPort = await freePort();
  a = await tcpBackend('a');
  b = await tcpBackend('b');
  run = await startListeners(`listeners:
  workers: 2
  stats: { enabled: false }
  listen:
    - name: plain
      bind: 127.0.0.1:${plainPort}
      mode: tcp
      balance: leastconn
      servers:
        - { name: a, address: ${a.address} }
        - { name: b, address: ${b.address} }
    - name: chain
      bind: 127.0.0.1:${chainPort}
      mode: tcp
      accept_proxy: true
      send_proxy: v1
      servers:
        - { name: a, address: ${a.address} }
`);
});

test.after.always(async () => {
  await run?.stop();
  await a?.close();
  await b?.close();
});

/** Connect, send `data`, half-close, collect the answer until the server closes. */
function exchange(port: number, data: Buffer | string, localAddress?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', localAddress, allowHalfOpen: true });
    let got = '';
    s.on('data', (d) => (got += d));
    s.on('end', () => {
      s.end();
      resolve(got);
    });
    s.on('error', reject);
    s.on('connect', () => {
      s.write(data);
      s.end();
    });
  });
}

test.serial('half-close: the client FIN reaches the server, whose answer still comes back', async (t) => {
  const answer = await exchange(plainPort, 'x'.repeat(100_000));
  t.regex(answer, /^[ab] got 100000 bytes$/);
});

test.serial('leastconn spreads TCP connections over both servers', async (t) => {
  const answers = await Promise.all(Array.from({ length: 10 }, () => exchange(plainPort, 'hi')));
  const names = new Set(answers.map((x) => x[0]));
  t.deepEqual([...names].sort(), ['a', 'b']);
  t.true(
    await until(async () =>
      (await run.statsJson()).every((r) => r.pxname !== 'plain' || r.svname === 'FRONTEND' || r.scur === 0),
    ),
  );
});

test.serial('accept-proxy reads a PROXY v2 header; send-proxy v1 passes the client on', async (t) => {
  a.firstBytes.length = 0;
  const hdr = encodeV2({
    version: 2,
    command: 'PROXY',
    family: 'TCP4',
    src: '198.51.100.7',
    dst: '203.0.113.1',
    srcPort: 40000,
    dstPort: 443,
  });
  const answer = await exchange(chainPort, Buffer.concat([hdr, Buffer.from('payload')]));
  const line = 'PROXY TCP4 198.51.100.7 203.0.113.1 40000 443\r\n';
  // the server got our v1 line, then the payload, nothing else
  t.is(answer, `a got ${line.length + 'payload'.length} bytes`);
  t.true(Buffer.concat(a.firstBytes).toString('latin1').startsWith(line));
});

test.serial('accept-proxy: a connection without a PROXY header is refused and counted', async (t) => {
  const answer = await new Promise<string>((resolve) => {
    const s = net.connect(chainPort, '127.0.0.1');
    let got = '';
    s.on('data', (d) => (got += d));
    s.on('close', () => resolve(got));
    s.on('error', () => {});
    s.write('GET / HTTP/1.1\r\n\r\n');
  });
  t.is(answer, '');
  const fe = (await run.statsJson()).find((r) => r.pxname === 'chain' && r.svname === 'FRONTEND')!;
  t.true(Number(fe.ereq) >= 1);
});
