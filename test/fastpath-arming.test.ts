/**
 * Ordering between the NFQUEUE and the kernel fast path, the engine's bookkeeping (src/l4/fastpath/arming.ts): tags
 * read from queued packets become the arm value of their entry after the batch's verdicts, only when it grew; stale
 * and foreign tags are ignored; receive timestamps are not tags.
 */
import test from 'ava';
import { Arming, parseTag, TAG_EPOCH, TAG_MAX } from '../src/l4/fastpath/arming.js';

test('the count of tagged packets read becomes the arm value once it covers the highest tag read', (t) => {
  const a = new Arming<string>();
  const tok = a.add('flow');
  t.true(tok > 0);
  t.deepEqual(a.flush(), [], 'nothing read: nothing to write (untagged packets may still be queued)');
  a.read(tok, 0, 1);
  a.read(tok, 0, 3); // two packets on the way on two CPUs: 3 came before 2
  t.deepEqual(a.flush(), [], 'tag 2 not read yet');
  a.read(tok, 0, 2);
  t.deepEqual(a.flush(), [{ item: 'flow', token: tok, armAt: [3, 0] }]);
  t.deepEqual(a.flush(), [], 'unchanged: not written again');
  // a GSO skb of three segments, all tagged 6 (the count at its last segment)
  a.read(tok, 0, 6);
  a.read(tok, 0, 6);
  t.deepEqual(a.flush(), [], 'one segment of the skb still queued');
  a.read(tok, 0, 6);
  a.read(tok, 1, 1); // the replies count apart
  t.deepEqual(a.flush(), [{ item: 'flow', token: tok, armAt: [6, 1] }]);
  // a tagged packet lost before the socket: the count never catches up, the direction stays in userspace
  a.read(tok, 0, 8);
  t.deepEqual(a.flush(), []);
  a.read(tok, 1, 2);
  t.deepEqual(a.flush(), [{ item: 'flow', token: tok, armAt: [6, 2] }]);
  t.is(a.size, 1);
  a.remove(tok);
  t.is(a.size, 0);
  a.read(tok, 0, 9);
  t.deepEqual(a.flush(), [], 'a removed entry: its late tags are ignored');
});

test('tokens are unique among the waiting entries and never 0', (t) => {
  const a = new Arming<number>();
  const seen = new Set<number>();
  for (let i = 0; i < 100; i++) {
    const tok = a.add(i);
    t.false(seen.has(tok));
    t.not(tok, 0);
    seen.add(tok);
  }
  a.read(12345, 0, 1);
  t.deepEqual(a.flush(), [], 'an unknown token is ignored');
});

test('parseTag: 2^32 + token seconds, direction * 500000 + n microseconds; real times are not tags', (t) => {
  t.deepEqual(parseTag(TAG_EPOCH + 7, 42), { token: 7, dir: 0, n: 42 });
  t.deepEqual(parseTag(TAG_EPOCH + 7, TAG_MAX + 1 + 42), { token: 7, dir: 1, n: 42 });
  t.deepEqual(parseTag(TAG_EPOCH + 0xffffffff, TAG_MAX), { token: 0xffffffff, dir: 0, n: TAG_MAX });
  t.is(parseTag(TAG_EPOCH + 7, TAG_MAX + 1), null, 'reply tags start at 1 too');
  t.is(parseTag(1_764_720_000, 123456), null, 'a receive timestamp (2025)');
  t.is(parseTag(TAG_EPOCH + 1, 0), null, 'tags start at 1');
  t.is(parseTag(0, 0), null);
});

test('clear forgets every entry', (t) => {
  const a = new Arming<string>();
  const tok = a.add('a');
  a.read(tok, 0, 1);
  a.clear();
  t.is(a.size, 0);
  t.deepEqual(a.flush(), []);
});
