/**
 * TCP mode's relay, client to server, through the real `tierlb listeners`: the client's socket is opened by the
 * listener with the relay's own read buffer (onread, reused while writes to the server complete at once), so a
 * server that reads slowly leaves writes pending, which must keep their bytes while the next reads come: an upload
 * in small pieces arrives byte-exact and in order.
 */
import { createHash } from 'node:crypto';
import net from 'node:net';
import test from 'ava';
import { oneListener, pattern, type Running, sha256 } from './listeners-helpers.js';

const SIZE = 8 * 1024 * 1024;
const up = pattern(SIZE, 5);

let run: Running;
let port: number;
let server: net.Server;
/** the server's hash of what it received, and its byte count, at the client's FIN */
let seen: { sha: string; bytes: number } | undefined;

test.before(async () => {
  // reads nothing for 500 ms, then 64 KiB every few ms: the relay's writes to it stay pending meanwhile
  server = net.createServer({ allowHalfOpen: true }, (s) => {
    const h = createHash('sha256');
    let bytes = 0;
    s.pause();
    const drip = () => {
      if (s.destroyed) return;
      let d: Buffer | null = s.read(64 * 1024);
      if (d === null && s.readableLength > 0) d = s.read();
      if (d) {
        h.update(d);
        bytes += d.length;
      }
      setTimeout(drip, 2);
    };
    setTimeout(drip, 500);
    s.on('end', () => {
      seen = { sha: h.digest('hex'), bytes };
      s.end('done');
    });
  });
  ({ port, run } = await oneListener(server, 'upload', 'tcp'));
});

test.after.always(async () => {
  await run?.stop();
  server?.close();
});

test('8 MiB up in 3000-byte pieces to a slow reader arrive byte-exact', async (t) => {
  const answer = await new Promise<string>((resolve, reject) => {
    const c = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    let got = '';
    c.on('data', (d) => {
      got += d;
    });
    c.on('end', () => resolve(got));
    c.on('error', reject);
    let at = 0;
    // one piece per turn while the socket takes it; on backpressure, wait for 'drain'
    const more = () => {
      while (at < up.length) {
        const ok = c.write(up.subarray(at, at + 3000));
        at += 3000;
        if (!ok) {
          c.once('drain', () => setImmediate(more));
          return;
        }
        if (at % (30 * 3000) === 0) {
          setImmediate(more);
          return;
        }
      }
      c.end();
    };
    c.on('connect', more);
  });
  t.is(answer, 'done');
  t.is(seen?.bytes, SIZE);
  t.is(seen?.sha, sha256(up));
});
