import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { DEFAULT_SYSCTL as DIRECTOR_DEFAULT_SYSCTL } from '../src/director/config.js';
import { kernelQueueStats } from '../src/director/datapath.js';
import { engineSysctl } from '../src/director/engine-sysctl.js';
import { parseQueueStats, readQueueStats } from '../src/l4/datapath/qstats.js';
import { DEFAULT_SYSCTL } from '../src/l4/engine.js';
import { ACK, addService, pkt, RST, SYN, setup } from './engine-fixture.js';

// nfqnl_seq_show: "%5u %6u %5u %1u %5u %5u %5u %8u %2d\n"
const PROC = [
  '    0  16137    46 2 65531     0     0     5160  1',
  '    3   4242     0 2 65535    17     2   123456  1',
  '    4   4243     1 2 65535     5     0       99  1',
  '',
].join('\n');

test('nfnetlink_queue lines: waiting, queue-full and socket drops, id sequence; only our queues', (t) => {
  const all = parseQueueStats(PROC);
  t.is(all.length, 3);
  t.deepEqual(all[0], {
    queue: 0,
    portid: 16137,
    waiting: 46,
    copyMode: 2,
    copyRange: 65531,
    queueDropped: 0,
    userDropped: 0,
    idSequence: 5160,
  });
  const ours = parseQueueStats(PROC, 3, 2);
  t.deepEqual(
    ours.map((q) => q.queue),
    [3, 4],
  );
  t.deepEqual(kernelQueueStats(ours), { queueDropped: 22, userDropped: 2, waiting: 1, queues: ours });
  t.deepEqual(parseQueueStats('garbage\n1 2 3\n'), []);
  t.deepEqual(kernelQueueStats([]), { queueDropped: 0, userDropped: 0, waiting: 0, queues: [] });
});

test('reading the proc file: a missing file is no queues, not an error', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tierlb-q-'));
  try {
    const f = join(dir, 'nfnetlink_queue');
    writeFileSync(f, PROC);
    t.is(readQueueStats(3, 1, f)[0].queueDropped, 17);
    t.deepEqual(readQueueStats(0, 1, join(dir, 'missing')), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('config sysctls map onto the engine; the defaults agree; a reload changes behaviour', (t) => {
  const fromDefaults = engineSysctl(DIRECTOR_DEFAULT_SYSCTL);
  for (const [k, v] of Object.entries(fromDefaults)) t.is(DEFAULT_SYSCTL[k as keyof typeof DEFAULT_SYSCTL], v, k);
  t.deepEqual(
    engineSysctl({
      expireNodestConn: true,
      expireQuiescentTemplate: true,
      sloppyTcp: true,
      sloppySctp: true,
      connReuseMode: 3,
    }),
    { expire_nodest_conn: 1, expire_quiescent_template: 1, sloppy_tcp: 1, conn_reuse_mode: 3 },
  );

  // as the worker applies a reloaded config: sloppy_tcp lets an ACK open a connection, conn_reuse_mode 0 keeps one
  const { eng } = setup();
  addService(eng);
  t.deepEqual(eng.process(pkt({ sport: 1, tcpFlags: ACK })), { kind: 'drop', reason: 'not-new' });
  eng.setSysctl(engineSysctl({ ...DIRECTOR_DEFAULT_SYSCTL, sloppyTcp: true, connReuseMode: 0 }));
  t.is(eng.process(pkt({ sport: 1, tcpFlags: ACK })).kind, 'forward');
  const a = eng.process(pkt({ sport: 2, tcpFlags: SYN }));
  eng.process(pkt({ sport: 2, tcpFlags: RST }));
  const b = eng.process(pkt({ sport: 2, tcpFlags: SYN }));
  if (a.kind !== 'forward' || b.kind !== 'forward') return t.fail();
  t.is(b.conn, a.conn);
  t.is(eng.stats().rescheduled, 0);
});
