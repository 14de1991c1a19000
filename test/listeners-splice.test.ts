/**
 * TCP mode's in-kernel splice (src/listeners/splice/) through the real `tierlb listeners`: bulk bytes both ways arrive
 * byte-exact and the kernel carried them (its counters in the FRONTEND row), half-close both ways, a server RST
 * reaches the client, an idle spliced pair times out while a pair busy only in the kernel does not, the stats' bytes
 * are exactly what was sent, and `splice: off` keeps the Node relay. Needs root (CAP_BPF + CAP_NET_ADMIN) and
 * `npm run build` (the program in dist/listeners/splice/).
 */
import { createHash } from 'node:crypto';
import net from 'node:net';
import test from 'ava';
import { getSplicer, resetSplicer, SpliceError } from '../src/listeners/splice/splice.js';
import { freePort, type Running, startListeners } from './listeners-helpers.js';

const root = process.getuid?.() === 0;
const rootTest = root ? test.serial : test.skip;
if (!root) console.log('listeners-splice: skipped: the in-kernel splice needs root (CAP_BPF and CAP_NET_ADMIN)');

const MIB = 1024 * 1024;
const SIZE = 16 * MIB;
function pattern(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed + (i >> 13)) % 251;
  return b;
}
const sha = (b: Buffer | Buffer[]) => {
  const h = createHash('sha256');
  for (const x of Array.isArray(b) ? b : [b]) h.update(x);
  return h.digest('hex');
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Behaviour = (s: net.Socket) => void;
/** one backend whose behaviour each test sets (the first bytes it reads name it) */
let behave: Behaviour = () => {};
let backend: net.Server;
let run: Running;
let spliced: number;
let off: number;
let timed: number;

test.before(async () => {
  if (!root) return;
  backend = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {});
    behave(s);
  });
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', () => r()));
  const b = `127.0.0.1:${(backend.address() as net.AddressInfo).port}`;
  [spliced, off, timed] = [await freePort(), await freePort(), await freePort()];
  run = await startListeners(`listeners:
  workers: 1
  stats: { enabled: false }
  listen:
    - name: spliced
      bind: 127.0.0.1:${spliced}
      mode: tcp
      splice: on
      servers: [{ name: s, address: ${b} }]
    - name: off
      bind: 127.0.0.1:${off}
      mode: tcp
      splice: off
      servers: [{ name: s, address: ${b} }]
    - name: timed
      bind: 127.0.0.1:${timed}
      mode: tcp
      splice: on
      timeout: { client: 400ms, server: 400ms }
      servers: [{ name: s, address: ${b} }]
`);
});

test.after.always(async () => {
  await run?.stop();
  backend?.close();
});

async function frontend(name: string) {
  const rows = await run.statsJson();
  return rows.find((r) => r.pxname === name && r.svname === 'FRONTEND')!;
}
async function server(name: string) {
  const rows = await run.statsJson();
  return rows.find((r) => r.pxname === name && r.svname === 's')!;
}

/** a greeting each way (as a TLS handshake would), then 16 MiB each way at once; the server hashes what it gets and
 * sends its own, then both half-close */
async function bulk(port: number): Promise<{ up: string; down: string; upSeen: string }> {
  const up = pattern(SIZE, 3);
  const down = pattern(SIZE, 7);
  let upSeen = '';
  behave = (s) => {
    const h = createHash('sha256');
    let greeted = false;
    s.on('data', (d) => {
      if (greeted) h.update(d);
      else if (d.toString() === 'hello') {
        greeted = true;
        s.end(down);
      }
    });
    s.on('end', () => {
      upSeen = h.digest('hex');
    });
  };
  const got: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    const c = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    let first = true;
    c.on('data', (d) => {
      if (first) c.end(up);
      first = false;
      got.push(d);
    });
    c.on('error', reject);
    c.on('end', () => resolve());
    c.write('hello');
  });
  for (let i = 0; i < 100 && !upSeen; i++) await sleep(20);
  return { up: sha(up), down: sha(got), upSeen };
}

rootTest(
  '16 MiB each way through a spliced pair arrive byte-exact, carried by the kernel; the stats say so',
  async (t) => {
    const before = await frontend('spliced');
    const sBefore = await server('spliced');
    const r = await bulk(spliced);
    t.is(r.upSeen, r.up, 'client → server bytes');
    t.is(r.down, sha(pattern(SIZE, 7)), 'server → client bytes');
    let fe = await frontend('spliced');
    for (let i = 0; i < 50 && Number(fe.scur) !== 0; i++) {
      await sleep(20);
      fe = await frontend('spliced');
    }
    t.is(Number(fe.splice_tot) - Number(before.splice_tot), 1, 'the pair was spliced');
    const kernel = Number(fe.splice_bytes) - Number(before.splice_bytes);
    t.true(kernel >= 2 * SIZE * 0.99, `the kernel carried ${kernel} of ${2 * SIZE} bytes`);
    t.is(Number(fe.bin) - Number(before.bin), SIZE + 5, 'FRONTEND bin: the bytes the client sent (hello and 16 MiB)');
    t.is(Number(fe.bout) - Number(before.bout), SIZE, 'FRONTEND bout: the bytes the client got');
    const sv = await server('spliced');
    t.is(Number(sv.bin) - Number(sBefore.bin), SIZE + 5, 'server bin');
    t.is(Number(sv.bout) - Number(sBefore.bout), SIZE, 'server bout');
  },
);

rootTest('splice: off relays in Node: same bytes, nothing spliced', async (t) => {
  const r = await bulk(off);
  t.is(r.upSeen, r.up);
  t.is(r.down, sha(pattern(SIZE, 7)));
  const fe = await frontend('off');
  t.is(Number(fe.splice_tot), 0);
  t.is(Number(fe.splice_bytes), 0);
});

rootTest('half-close: the client FIN reaches the server, whose answer still comes back', async (t) => {
  const before = Number((await frontend('spliced')).splice_tot);
  behave = (s) => {
    let got = '';
    s.on('data', (d) => (got += d));
    s.on('end', () => s.end(`server got ${got}`));
  };
  const answer = await new Promise<string>((resolve, reject) => {
    const c = net.connect({ port: spliced, host: '127.0.0.1', allowHalfOpen: true });
    let a = '';
    c.on('data', (d) => (a += d));
    c.on('error', reject);
    c.on('end', () => resolve(a));
    c.write('ping-1;');
    setTimeout(() => c.end('ping-2'), 50);
  });
  t.is(answer, 'server got ping-1;ping-2');
  t.is(Number((await frontend('spliced')).splice_tot) - before, 1, 'the pair was spliced');
});

rootTest('half-close: the server FIN reaches the client, which still sends after it', async (t) => {
  const before = Number((await frontend('spliced')).splice_tot);
  let serverGot = '';
  const done = new Promise<void>((r) => {
    behave = (s) => {
      s.on('data', (d) => {
        serverGot += d;
        // (its FIN once the client says go, 50 ms after its first bytes: the pair is spliced by then; a socket that
        // has its FIN already cannot go into the kernel)
        if (serverGot === 'start;go;') s.end('hello, then no more');
      });
      s.on('end', () => r());
    };
  });
  const c = net.connect({ port: spliced, host: '127.0.0.1', allowHalfOpen: true });
  c.write('start;');
  setTimeout(() => c.write('go;'), 50);
  let a = '';
  c.on('data', (d) => (a += d));
  await new Promise<void>((r) => c.on('end', () => r()));
  t.is(a, 'hello, then no more');
  c.write('still here;');
  await sleep(30);
  c.end('bye');
  await done;
  t.is(serverGot, 'start;go;still here;bye');
  t.is(Number((await frontend('spliced')).splice_tot) - before, 1, 'the pair was spliced');
});

rootTest(
  'a server that answers and closes at once: its bytes and FIN arrive, whether the pair got into the kernel or not',
  async (t) => {
    // (a socket that has its FIN already cannot go into a sockmap: the pair stays in Node, or goes one way only)
    const answer = pattern(256 * 1024, 5);
    for (let i = 0; i < 5; i++) {
      behave = (s) => s.end(answer);
      const got = await new Promise<Buffer>((resolve, reject) => {
        const c = net.connect({ port: spliced, host: '127.0.0.1', allowHalfOpen: true });
        const parts: Buffer[] = [];
        c.on('data', (d) => parts.push(d));
        c.on('error', reject);
        c.on('end', () => {
          c.end();
          resolve(Buffer.concat(parts));
        });
        c.write('x');
      });
      t.is(sha(got), sha(answer));
    }
  },
);

rootTest('a server RST closes the client', async (t) => {
  const before = Number((await frontend('spliced')).splice_tot);
  behave = (s) => s.once('data', () => s.resetAndDestroy());
  const seen = await new Promise<string>((resolve) => {
    const c = net.connect({ port: spliced, host: '127.0.0.1', allowHalfOpen: true });
    c.on('error', (e) => resolve(`error ${(e as NodeJS.ErrnoException).code}`));
    c.on('end', () => resolve('end'));
    c.on('connect', () => setTimeout(() => c.write('x'), 50));
  });
  // (the proxy closes its side: a FIN, or an RST when it still had bytes of ours unread)
  t.regex(seen, /^(end|error ECONNRESET)$/);
  const sv = await server('spliced');
  t.true(Number(sv.eresp) >= 1, 'counted as a response error (eresp)');
  t.is(Number((await frontend('spliced')).splice_tot) - before, 1, 'the pair was spliced');
});

rootTest('timeouts: an idle spliced pair is closed, one busy only in the kernel is not', async (t) => {
  // echo: every byte goes back, both ways in the kernel
  behave = (s) => s.pipe(s);
  const open = (): Promise<net.Socket> =>
    new Promise((r) => {
      const c = net.connect({ port: timed, host: '127.0.0.1' }, () => r(c));
      c.on('error', () => {});
    });
  const idle = await open();
  const busy = await open();
  let idleClosedAt = 0;
  let busyClosed = false;
  const t0 = Date.now();
  idle.on('close', () => (idleClosedAt = Date.now() - t0));
  busy.on('close', () => (busyClosed = true));
  let echoed = 0;
  busy.on('data', (d) => (echoed += d.length));
  // 1.6 s of traffic, a write every 100 ms: 4 times timeout client/server (400 ms)
  for (let i = 0; i < 16; i++) {
    busy.write('tick');
    await sleep(100);
  }
  t.false(busyClosed, 'the busy pair stays open');
  t.is(echoed, 64, 'its bytes came back');
  t.true(idleClosedAt > 0, 'the idle pair was closed');
  t.true(idleClosedAt >= 350, `not before its timeout (${idleClosedAt} ms)`);
  const fe = await frontend('timed');
  t.true(Number(fe.splice_tot) >= 2, 'both pairs were spliced');
  // quiet now: it goes too
  await new Promise<void>((r) => (busyClosed ? r() : busy.once('close', () => r())));
  t.pass();
});

test('splice: on without the program refuses with ESPLICE_UNAVAILABLE, naming the fix', (t) => {
  const was = process.env.TIERLB_SPLICE_OBJECT;
  process.env.TIERLB_SPLICE_OBJECT = '/nonexistent/splice.bpf.o';
  resetSplicer();
  try {
    const e = t.throws(() => getSplicer('on', 'l1'), { instanceOf: SpliceError });
    t.is(e?.code, 'ESPLICE_UNAVAILABLE');
    t.regex(e?.message ?? '', /listener l1.*fix: .*npm run build.*splice: auto/);
    t.is(getSplicer('auto', 'l1'), undefined, 'auto falls back');
    t.is(getSplicer('off', 'l1'), undefined);
  } finally {
    if (was === undefined) delete process.env.TIERLB_SPLICE_OBJECT;
    else process.env.TIERLB_SPLICE_OBJECT = was;
    resetSplicer();
  }
});

rootTest(
  'without CAP_BPF and CAP_NET_ADMIN (an unprivileged user): on refuses with ESPLICE_UNAVAILABLE, auto relays in Node',
  async (t) => {
    const { execFile } = await import('node:child_process');
    const code = `import { getSplicer } from './src/listeners/splice/splice.ts';
try { getSplicer('on', 'l1'); console.log('on: loaded'); } catch (e) { console.log('on: ' + e.code); }
console.log(getSplicer('auto', 'l2') === undefined ? 'auto: relay' : 'auto: spliced');`;
    const r = await new Promise<string>((resolve) =>
      execFile(
        'setpriv',
        [
          '--reuid=65534',
          '--regid=65534',
          '--clear-groups',
          '--inh-caps=-all',
          '--bounding-set=-all',
          process.execPath,
          '--import',
          'tsx',
          '--input-type=module',
          '-e',
          code,
        ],
        { cwd: new URL('..', import.meta.url).pathname, timeout: 30_000 },
        (_e, stdout, stderr) => resolve(stdout + stderr),
      ),
    );
    t.regex(r, /on: ESPLICE_UNAVAILABLE/);
    t.regex(r, /auto: relay/);
    t.regex(r, /TCP splice unavailable: relaying in Node/, 'auto says so in one log line');
  },
);
