import test from 'ava';
import type { NlMessage, QueuedPacket } from '../src/l4/datapath/nfqmsg.js';
import { type PacketSource, pump } from '../src/l4/datapath/pump.js';

/** A queue socket stand-in: a list of datagrams (packet ids), verdicts counted until flushed. */
class FakeQueue implements PacketSource {
  pos = 0;
  receives = 0;
  sends: number[][] = [];
  private pending: number[] = [];

  constructor(private readonly datagrams: number[][]) {}

  get pendingVerdicts(): number {
    return this.pending.length;
  }

  receive(_wait: boolean, out: NlMessage[]): NlMessage[] {
    out.length = 0;
    this.receives++;
    if (this.pos >= this.datagrams.length) return out;
    for (const id of this.datagrams[this.pos++])
      out.push({
        kind: 'packet',
        pkt: { id, hwProtocol: 0x800, hook: 0, mark: 0, indev: 0, outdev: 0, payload: new Uint8Array(0) },
      });
    // netlink errors (e.g. for a bad verdict) arrive on the same socket and are skipped
    if (this.pos % 7 === 0) out.push({ kind: 'error', errno: 2, seq: 0 });
    return out;
  }

  verdict(id: number): void {
    this.pending.push(id);
  }

  flush(): void {
    if (this.pending.length) this.sends.push(this.pending);
    this.pending = [];
  }
}

function run(datagrams: number[][], o?: Parameters<typeof pump>[3]) {
  const q = new FakeQueue(datagrams);
  const seen: number[] = [];
  const handle = (p: QueuedPacket) => {
    seen.push(p.id);
    q.verdict(p.id);
  };
  const passes: number[] = [];
  const msgs: NlMessage[] = [];
  for (let i = 0; i < 100 && q.pos < datagrams.length; i++) passes.push(pump(q, msgs, handle, o));
  passes.push(pump(q, msgs, handle, o));
  return { q, seen, passes };
}

test('every received packet gets exactly one verdict, also when a pass hits its round limit', (t) => {
  // a continuous burst longer than one pass: the old loop lost the datagram it received in its last round
  const datagrams = Array.from({ length: 300 }, (_, i) => [i]);
  const { q, seen, passes } = run(datagrams);
  t.deepEqual(seen, datagrams.flat());
  t.deepEqual(q.sends.flat(), datagrams.flat());
  t.is(q.pendingVerdicts, 0);
  // 64 datagrams a pass, the rest in the last ones; nothing received twice or skipped
  t.deepEqual(passes.slice(0, 4), [64, 64, 64, 64]);
  t.is(
    passes.reduce((a, b) => a + b, 0),
    300,
  );
});

test('a pass stops receiving at its round limit (the rest stays in the socket for the next pass)', (t) => {
  const q = new FakeQueue(Array.from({ length: 10 }, (_, i) => [i]));
  const msgs: NlMessage[] = [];
  const n = pump(q, msgs, (p) => q.verdict(p.id), { maxRounds: 4 });
  t.is(n, 4);
  t.is(q.pos, 4);
  t.is(q.receives, 4);
  t.deepEqual(q.sends, [[0, 1, 2, 3]]);
});

test('verdicts go out in batches of flushEvery and at the end of a pass; idle passes send nothing', (t) => {
  const datagrams = Array.from({ length: 10 }, (_, i) => [2 * i, 2 * i + 1]);
  const { q } = run(datagrams, { flushEvery: 8 });
  t.deepEqual(
    q.sends.map((s) => s.length),
    [8, 8, 4],
  );
  const idle = new FakeQueue([]);
  t.is(
    pump(idle, [], () => t.fail()),
    0,
  );
  t.deepEqual(idle.sends, []);
  t.is(idle.receives, 1);
});
