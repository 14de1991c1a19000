/** The probes against real local servers: TCP listener, HTTP server with a known body digest, MISC scripts. */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import test from 'ava';
import { getSocketMark } from '../src/fwmark/somark.js';
import {
  bodyDigest,
  connectSocket,
  httpProbe,
  httpRequest,
  miscProbe,
  parseResponse,
  statusAccepted,
  tcpProbe,
} from '../src/ha/checks/probes.js';
import { splitCommand } from '../src/sys/split.js';

function listen(handler: (s: net.Socket) => void): Promise<{ port: number; close: () => Promise<void> }> {
  return new Promise((resolve) => {
    const srv = net.createServer(handler);
    srv.listen(0, '127.0.0.1', () => {
      resolve({
        port: (srv.address() as net.AddressInfo).port,
        close: () => new Promise((r) => srv.close(() => r())),
      });
    });
  });
}

/** A raw HTTP server answering every request with `response`; records the requests it got. */
async function rawHttp(response: string | Buffer) {
  const requests: string[] = [];
  const s = await listen((sock) => {
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      if (buf.includes('\r\n\r\n')) {
        requests.push(buf);
        sock.end(response);
      }
    });
    sock.on('error', () => {});
  });
  return { ...s, requests };
}

async function closedPort(): Promise<number> {
  const s = await listen(() => {});
  await s.close();
  return s.port;
}

test('tcp: a listening port passes, a closed one fails', async (t) => {
  const s = await listen((sock) => sock.destroy());
  t.deepEqual(await tcpProbe({ host: '127.0.0.1', port: s.port, timeoutMs: 2000 }), { ok: true });
  await s.close();
  const r = await tcpProbe({ host: '127.0.0.1', port: await closedPort(), timeoutMs: 2000 });
  t.false(r.ok);
  t.is(r.reason, 'ECONNREFUSED');
});

test('tcp with a mark: SO_MARK is on the socket before it connects, bindto is honoured', async (t) => {
  const s = await listen((sock) => sock.destroy());
  const sock = connectSocket({ host: '127.0.0.1', port: s.port, mark: 0x1001, bindTo: '127.0.0.1', timeoutMs: 1000 });
  t.is(getSocketMark(sock), 0x1001);
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', () => resolve());
    sock.once('error', reject);
  });
  t.is(sock.localAddress, '127.0.0.1');
  sock.destroy();
  t.deepEqual(await tcpProbe({ host: '127.0.0.1', port: s.port, mark: 7, timeoutMs: 2000 }), { ok: true });
  await s.close();
});

test('http: status and genhash digest of the body', async (t) => {
  const body = 'hello tierlb\n';
  const digest = createHash('md5').update(body).digest('hex');
  const s = await rawHttp(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\nX: y\r\n\r\n${body}`);
  const target = { host: '127.0.0.1', port: s.port, timeoutMs: 2000 };
  t.deepEqual(await httpProbe(target, { urls: [{ path: '/health', statusCodes: [], digest }] }), { ok: true });
  t.is(s.requests[0], `GET /health HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: 127.0.0.1:${s.port}\r\n\r\n`);
  const wrong = await httpProbe(target, { urls: [{ path: '/', statusCodes: [200], digest: '0'.repeat(32) }] });
  t.false(wrong.ok);
  t.regex(wrong.reason ?? '', /MD5 digest/);
  const st = await httpProbe(target, { urls: [{ path: '/', statusCodes: [204] }] });
  t.false(st.ok);
  t.regex(st.reason ?? '', /status code 200/);
  // virtualhost replaces addr:port in Host
  await httpProbe(target, { urls: [{ path: '/x', statusCodes: [] }], virtualhost: 'www.example.com' });
  t.regex(s.requests.at(-1) ?? '', /\r\nHost: www\.example\.com\r\n/);
  await s.close();
});

test('http: every URL must pass', async (t) => {
  const s = await rawHttp('HTTP/1.0 404 Not Found\r\n\r\nnope');
  const r = await httpProbe(
    { host: '127.0.0.1', port: s.port, timeoutMs: 2000 },
    {
      urls: [
        { path: '/a', statusCodes: [404] },
        { path: '/b', statusCodes: [200] },
      ],
    },
  );
  t.false(r.ok);
  t.regex(r.reason ?? '', /^\/b: HTTP status code 404/);
  await s.close();
});

test('http: refused and silent servers fail', async (t) => {
  const r = await httpProbe(
    { host: '127.0.0.1', port: await closedPort(), timeoutMs: 1000 },
    { urls: [{ path: '/', statusCodes: [] }] },
  );
  t.false(r.ok);
  const silent = await listen((sock) => sock.resume());
  const r2 = await httpProbe(
    { host: '127.0.0.1', port: silent.port, timeoutMs: 200 },
    { urls: [{ path: '/', statusCodes: [] }] },
  );
  t.false(r2.ok);
  t.regex(r2.reason ?? '', /timeout/);
  const closer = await listen((sock) => sock.resume().end());
  const r3 = await httpProbe(
    { host: '127.0.0.1', port: closer.port, timeoutMs: 1000 },
    { urls: [{ path: '/', statusCodes: [] }] },
  );
  t.regex(r3.reason ?? '', /no data/);
  await silent.close();
  await closer.close();
});

test('parseResponse: body after CRLFCRLF, cut at Content-Length, chunked framing kept (as genhash)', (t) => {
  const r = parseResponse(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcdef'));
  t.is(r.status, 200);
  t.is(r.body.toString(), 'abc');
  const chunked = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n';
  const c = parseResponse(Buffer.from(chunked));
  t.is(c.body.toString(), '3\r\nabc\r\n0\r\n\r\n');
  t.is(bodyDigest(c.body), createHash('md5').update('3\r\nabc\r\n0\r\n\r\n').digest('hex'));
  t.is(parseResponse(Buffer.from('garbage')).status, 0);
  t.is(parseResponse(Buffer.from('garbage')).headerEnd, undefined);
  t.is(bodyDigest(Buffer.alloc(0)), 'd41d8cd98f00b204e9800998ecf8427e');
});

test('statusAccepted: 200-299 by default, else the list', (t) => {
  t.true(statusAccepted(204, []));
  t.false(statusAccepted(301, []));
  t.true(statusAccepted(301, [301, 302]));
  t.false(statusAccepted(200, [301]));
});

test('httpRequest: IPv6 literal in brackets', (t) => {
  t.is(httpRequest('/', '::1', 8080), 'GET / HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: [::1]:8080\r\n\r\n');
});

test('splitCommand: quotes and escapes, no shell', (t) => {
  t.deepEqual(splitCommand(`/bin/check "a b" 'c d' e\\ f  g`), ['/bin/check', 'a b', 'c d', 'e f', 'g']);
  t.deepEqual(splitCommand(`x ""`), ['x', '']);
  t.deepEqual(splitCommand('   '), []);
});

test('misc: exit status is the outcome; a script past misc_timeout is killed', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tierlb-misc-'));
  try {
    const script = join(dir, 'check.sh');
    writeFileSync(script, '#!/bin/sh\nexit "$1"\n');
    chmodSync(script, 0o755);
    t.deepEqual(await miscProbe(`${script} 0`, 2000), { ok: true, exitCode: 0, reason: undefined });
    t.like(await miscProbe(`${script} 1`, 2000), { ok: false, exitCode: 1 });
    t.like(await miscProbe(`${script} 9`, 2000), { ok: false, exitCode: 9 });
    t.like(await miscProbe(`/bin/sh -c 'exit 4'`, 2000), { ok: false, exitCode: 4 });
    const slow = join(dir, 'slow.sh');
    writeFileSync(slow, '#!/bin/sh\nsleep 30\n');
    chmodSync(slow, 0o755);
    const started = Date.now();
    const r = await miscProbe(slow, 200);
    t.false(r.ok);
    t.is(r.exitCode, undefined);
    t.is(r.reason, 'timed out');
    t.true(Date.now() - started < 2500);
    t.like(await miscProbe(join(dir, 'missing'), 1000), { ok: false });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('SSL_GET: the digest of the body over TLS (certificate not verified, as keepalived)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tierlb-tls-'));
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-subj',
        '/CN=rs.test',
        '-days',
        '1',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
      ],
      { stdio: 'ignore' },
    );
    const body = 'secure hello\n';
    let sni: string | undefined;
    const srv = tls.createServer(
      { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) },
      (sock) => {
        sni = (sock as tls.TLSSocket & { servername?: string }).servername;
        sock.once('data', () => sock.end(`HTTP/1.0 200 OK\r\nContent-Length: ${body.length}\r\n\r\n${body}`));
        sock.on('error', () => {});
      },
    );
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as net.AddressInfo).port;
    const digest = createHash('md5').update(body).digest('hex');
    const r = await httpProbe(
      { host: '127.0.0.1', port, timeoutMs: 3000 },
      { tls: true, virtualhost: 'rs.test', urls: [{ path: '/', statusCodes: [], digest }] },
    );
    t.deepEqual(r, { ok: true });
    t.is(sni, 'rs.test');
    await new Promise((r2) => srv.close(r2));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
