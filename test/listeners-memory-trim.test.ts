/** src/listeners/memory-trim.ts in this process: a quiet process that grew is trimmed once; a busy one is not. */
import test from 'ava';
import { loadListenersConfigString } from '../src/listeners/config.js';
import { startMemoryTrim } from '../src/listeners/memory-trim.js';
import { sleep, until } from './listeners-helpers.js';

/** grow the heap by ~`mib` MiB of objects, then drop them */
function garbage(mib: number): number {
  let keep: { a: number; s: string }[] | undefined = [];
  for (let i = 0; i < mib * 8000; i++) keep.push({ a: i, s: `garbage ${i} ${'x'.repeat(64)}` });
  const n = keep.length;
  keep = undefined;
  return n;
}

test.serial(
  'a quiet process whose memory grew is trimmed once (its heap shrinks); then not again without growth',
  async (t) => {
    const trim = startMemoryTrim({ everyMs: 50, quietMs: 200, growth: 2 * 1024 * 1024 });
    t.teardown(() => trim.stop());
    garbage(40);
    const grown = process.memoryUsage().heapTotal;
    t.true(await until(() => trim.trims() >= 1, 5000), 'trimmed after the quiet spell');
    const after = process.memoryUsage().heapTotal;
    t.true(after < grown, `V8's heap gave pages back: ${grown} → ${after} bytes`);
    const n = trim.trims();
    await sleep(600);
    t.is(trim.trims(), n, 'no growth since: no second trim');
  },
);

test.serial('a busy event loop is never trimmed, however much it grew', async (t) => {
  const trim = startMemoryTrim({ everyMs: 50, quietMs: 200, growth: 1 });
  t.teardown(() => trim.stop());
  // busy: the loop is kept running for 1 s (utilisation near 100%)
  const end = Date.now() + 1000;
  await new Promise<void>((resolve) => {
    const spin = () => {
      const stop = Date.now() + 20;
      while (Date.now() < stop) garbage(0.05);
      if (Date.now() < end) setImmediate(spin);
      else resolve();
    };
    spin();
  });
  t.is(trim.trims(), 0);
});

test('config: memory_trim is on unless set false (HAProxy: no-memory-trimming); not a boolean is refused', (t) => {
  const yaml = (extra: string) => `listeners:
${extra}  listen:
    - name: web
      bind: 127.0.0.1:8080
      servers: [ { name: w1, address: 127.0.0.1:2 } ]
`;
  t.true(loadListenersConfigString(yaml('')).memoryTrim);
  t.false(loadListenersConfigString(yaml('  memory_trim: false\n')).memoryTrim);
  t.throws(() => loadListenersConfigString(yaml('  memory_trim: sometimes\n'), 'l.yaml'), { message: /l\.yaml:2/ });
});
