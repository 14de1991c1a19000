// The idle client of bench/l7.ts's memory row: opens N keep-alive connections to 127.0.0.1:PORT, sends one GET on
// each and reads its whole answer (so the proxy has served one request and holds an idle keep-alive connection),
// prints "ready N" (N connections answered), then holds them until stdin closes or a signal.
// usage: node bench/l7-idle-client.mjs PORT N
import net from 'node:net';

const [port, count] = process.argv.slice(2).map(Number);
const socks = [];
let answered = 0;
let failed = 0;
const REQ = 'GET / HTTP/1.1\r\nHost: bench\r\n\r\n';

function open(i) {
  const s = net.connect(port, '127.0.0.1');
  socks.push(s);
  let got = '';
  let done = false;
  s.setNoDelay(true);
  s.once('connect', () => s.write(REQ));
  s.on('data', (d) => {
    if (done) return;
    got += d.toString('latin1');
    const end = got.indexOf('\r\n\r\n');
    if (end < 0) return;
    const m = /content-length:\s*(\d+)/i.exec(got.slice(0, end));
    if (m && got.length - end - 4 < Number(m[1])) return;
    done = true;
    got = '';
    answered++;
    next();
  });
  s.on('error', () => {
    if (!done) {
      done = true;
      failed++;
      next();
    }
  });
  s.on('close', () => {
    if (!done) {
      done = true;
      failed++;
      next();
    }
  });
  void i;
}

// at most 200 connections opening at a time (the listen backlogs stay short)
let started = 0;
function next() {
  if (started < count) open(started++);
  else if (answered + failed === count) process.stdout.write(`ready ${answered} ${failed}\n`);
}
for (let i = 0; i < Math.min(200, count); i++) next();
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
for (const sig of ['SIGINT', 'SIGTERM']) process.once(sig, () => process.exit(0));
