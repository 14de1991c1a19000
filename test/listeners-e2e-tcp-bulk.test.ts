/**
 * TCP mode's relay through the real `tierlb listeners` with bulk data both ways and a client that reads slowly: the
 * server's bytes go through the relay's reused read buffer, and writes left pending under backpressure must keep
 * theirs, so every byte arrives exactly, in order.
 */
import { createHash } from 'node:crypto';
import net from 'node:net';
import test from 'ava';
import { oneListener, pattern, type Running, sha256 } from './listeners-helpers.js';

const SIZE = 8 * 1024 * 1024;
const down = pattern(SIZE, 7);
const up = pattern(SIZE / 2, 3);

let run: Running;
let port: number;
let server: net.Server;
let upSeen = '';

test.before(async () => {
  // sends `down`; hashes what it receives, answers nothing more, closes after the client's FIN
  server = net.createServer({ allowHalfOpen: true }, (s) => {
    const h = createHash('sha256');
    let at = 0;
    s.on('data', (d) => h.update(d));
    let finished = false;
    s.on('end', () => {
      upSeen = h.digest('hex');
      finished = true;
      if (at >= down.length) s.end();
    });
    // in small pieces, one per turn: the relay reads less than its buffer each time and keeps reading while a
    // write to the client is pending
    const more = () => {
      if (s.destroyed) return;
      if (at >= down.length) {
        if (finished) s.end();
        return;
      }
      s.write(down.subarray(at, at + 3000));
      at += 3000;
      setImmediate(more);
    };
    more();
  });
  ({ port, run } = await oneListener(server, 'bulk', 'tcp'));
});

test.after.always(async () => {
  await run?.stop();
  server?.close();
});

test('8 MiB down to a slow reader and 4 MiB up arrive byte-exact', async (t) => {
  const got: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    const c = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    c.on('data', (d) => got.push(d));
    // nothing read for a while: the kernel's buffers fill and the relay's writes to us stay pending
    c.pause();
    setTimeout(() => c.resume(), 500);
    c.on('end', () => resolve());
    c.on('error', reject);
    c.on('connect', () => c.end(up));
  });
  const all = Buffer.concat(got);
  t.is(all.length, SIZE);
  t.is(sha256(all), sha256(down));
  t.is(upSeen, sha256(up));
});
