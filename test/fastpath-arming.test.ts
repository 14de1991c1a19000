/**
 * Ordering between the NFQUEUE and the kernel fast path (src/l4/fastpath/arming.ts): an entry written while packets
 * of its flow may still wait in the queue is armed only after every packet queued before it was read and had its
 * verdict; the queue's state is taken one flush after the write; ids wrap at 2^32.
 */
import test from 'ava';
import { Arming, type QueueState } from '../src/l4/fastpath/arming.js';

/** a queue whose state is read by the arming: counts the reads */
function queue(state: QueueState | null) {
  const q = {
    state,
    reads: 0,
    read: () => {
      q.reads++;
      return q.state;
    },
  };
  return q;
}

test('an entry written while the queue holds packets is armed once the last of them was read, not before', (t) => {
  const a = new Arming<string>();
  const q = queue({ waiting: 3, idSequence: 100 });
  a.read(97);
  t.deepEqual(a.flush(q.read), []);
  t.is(q.reads, 0, 'nothing waits: the queue is not read');
  // written at the end of a flush (after its batch's verdicts); its state is read at the next flush, when a packet
  // that missed the entry just before it was written has been queued: the queue's last id is 105 by then
  a.add('flow');
  q.state = { waiting: 8, idSequence: 105 };
  a.read(98);
  t.deepEqual(a.flush(q.read), [], 'marked with 105');
  t.is(q.reads, 1);
  t.is(a.size, 1);
  q.state = { waiting: 4, idSequence: 109 };
  a.read(104);
  t.deepEqual(a.flush(q.read), [], 'read up to 104: 105 still queued');
  a.read(105);
  t.deepEqual(a.flush(q.read), ['flow'], 'read 105: every packet queued before the mark had its verdict');
  t.is(a.size, 0);
});

test('an entry is never armed in the flush that wrote it', (t) => {
  const a = new Arming<string>();
  const q = queue({ waiting: 0, idSequence: 7 });
  // the order maps.ts keeps: arm what may be armed, then write this batch's entries
  t.deepEqual(a.flush(q.read), []);
  a.add('x');
  t.is(q.reads, 0);
  t.deepEqual(a.flush(q.read), ['x'], 'the next flush: queue empty, armed');
});

test('an empty queue arms at once, marked entries included', (t) => {
  const a = new Arming<string>();
  const q = queue({ waiting: 2, idSequence: 50 });
  a.add('a');
  t.deepEqual(a.flush(q.read), [], 'a is marked with 50');
  a.add('b');
  q.state = { waiting: 0, idSequence: 52 };
  a.read(49);
  t.deepEqual(a.flush(q.read).sort(), ['a', 'b'], 'nothing waits any more: both armed');
});

test('an idle queue re-reads its state for marked entries (packets lost before the socket never come)', (t) => {
  const a = new Arming<string>();
  const q = queue({ waiting: 1, idSequence: 10 });
  a.add('a');
  a.flush(q.read);
  t.is(q.reads, 1);
  a.read(5);
  t.deepEqual(a.flush(q.read), [], 'busy: the id decides');
  t.is(q.reads, 1, 'busy flushes with no fresh entry do not read the queue');
  q.state = { waiting: 0, idSequence: 10 };
  t.deepEqual(a.flush(q.read), ['a'], 'nothing read since the last flush: the queue is read, and empty');
  t.is(q.reads, 2);
});

test('the queue cannot be read: entries stay unarmed (a miss is always safe)', (t) => {
  const a = new Arming<string>();
  a.add('a');
  t.deepEqual(
    a.flush(() => null),
    [],
  );
  a.read(1000);
  t.deepEqual(
    a.flush(() => null),
    [],
  );
  t.is(a.size, 1);
});

test('ids wrap at 2^32', (t) => {
  const a = new Arming<string>();
  const q = queue({ waiting: 5, idSequence: 0xfffffffe });
  a.add('w');
  a.flush(q.read);
  a.read(0xfffffffd);
  t.deepEqual(a.flush(q.read), []);
  a.read(2); // wrapped: 0xffffffff, 0, 1, 2 came after 0xfffffffe
  t.deepEqual(a.flush(q.read), ['w']);
});

test('clear drops every waiting entry', (t) => {
  const a = new Arming<string>();
  a.add('a');
  a.clear();
  t.is(a.size, 0);
  t.deepEqual(
    a.flush(() => ({ waiting: 0, idSequence: 0 })),
    [],
  );
});
