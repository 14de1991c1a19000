/**
 * The request-smuggling corpus (./listeners-smuggling-corpus.ts) against every listener mode: HTTP/1.1 in clear,
 * HTTP/1.1 over TLS, and HTTP/2 (ALPN h2, frames written by hand: HPACK literals without indexing or Huffman, so
 * malformed requests a client library would refuse reach the listener). Behind the listeners, one strict recording
 * server: it parses exactly (CRLF lines, token names, one framing) and records each request it got, by the probe id
 * in its target; anything it cannot parse is recorded as garbage. Each probe asserts its outcome, that no smuggled
 * request reached the server, and (at the end) that the server never got bytes it could not parse.
 */
import net from 'node:net';
import tls from 'node:tls';
import test from 'ava';
import { freePort, type Running, startListeners } from './listeners-helpers.js';
import { H1_PROBES, H2_PROBES, type Outcome, type Seen } from './listeners-smuggling-corpus.js';
import { makePki, type Pki } from './listeners-tls-helpers.js';

// ---- the strict recording server ----

const seen = new Map<string, Seen[]>();
const garbage: string[] = [];
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Parse one request at the start of `buf`: the request and its length, 'more', or a complaint. */
function parseStrict(buf: string): { req: Seen; len: number } | 'more' | string {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return buf.length > 200_000 ? 'header block too long' : 'more';
  const lines = buf.slice(0, end).split('\r\n');
  const m = /^([A-Z]+) (\S+) (HTTP\/1\.[01])$/.exec(lines[0]!);
  if (!m) return `bad request line ${JSON.stringify(lines[0])}`;
  const fields: [string, string][] = [];
  for (const l of lines.slice(1)) {
    const c = l.indexOf(':');
    const name = l.slice(0, c);
    const value = l.slice(c + 1).replace(/^[ \t]+|[ \t]+$/g, '');
    if (c <= 0 || !TOKEN.test(name) || /[\0\r\n]/.test(value)) return `bad field line ${JSON.stringify(l)}`;
    fields.push([name.toLowerCase(), value]);
  }
  const cl = fields.filter(([n]) => n === 'content-length').map(([, v]) => v);
  const te = fields.filter(([n]) => n === 'transfer-encoding').map(([, v]) => v);
  let pos = end + 4;
  let body = '';
  if (te.length) {
    if (cl.length || te.length > 1 || te[0]!.toLowerCase() !== 'chunked') return `bad framing te=${te} cl=${cl}`;
    for (;;) {
      const eol = buf.indexOf('\r\n', pos);
      if (eol < 0) return 'more';
      const sizeLine = buf.slice(pos, eol);
      const sm = /^([0-9a-fA-F]{1,8})(;[^\r\n]*)?$/.exec(sizeLine);
      if (!sm) return `bad chunk size ${JSON.stringify(sizeLine)}`;
      const size = Number.parseInt(sm[1]!, 16);
      pos = eol + 2;
      if (size === 0) {
        // trailers: field lines up to an empty line
        for (;;) {
          const e = buf.indexOf('\r\n', pos);
          if (e < 0) return 'more';
          const tl = buf.slice(pos, e);
          pos = e + 2;
          if (tl === '') break;
        }
        break;
      }
      if (buf.length < pos + size + 2) return 'more';
      if (buf.slice(pos + size, pos + size + 2) !== '\r\n') return 'chunk data longer than its size';
      body += buf.slice(pos, pos + size);
      pos += size + 2;
    }
  } else if (cl.length) {
    if (cl.length > 1 || !/^[0-9]{1,15}$/.test(cl[0]!)) return `bad content-length ${cl}`;
    const n = Number(cl[0]);
    if (buf.length < pos + n) return 'more';
    body = buf.slice(pos, pos + n);
    pos += n;
  }
  const req: Seen = { method: m[1]!, target: m[2]!, version: m[3]!, fields, body, raw: buf.slice(0, pos) };
  return { req, len: pos };
}

function recordingServer(): net.Server {
  return net.createServer((s) => {
    let buf = '';
    let continued = false;
    s.on('error', () => {});
    s.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      for (;;) {
        const r = parseStrict(buf);
        if (r === 'more') {
          const head = buf.indexOf('\r\n\r\n');
          if (!continued && head > 0 && /\r\nexpect: *100-continue/i.test(buf.slice(0, head))) {
            continued = true;
            s.write('HTTP/1.1 100 Continue\r\n\r\n');
          }
          return;
        }
        if (typeof r === 'string') {
          garbage.push(`${r}: ${JSON.stringify(buf.slice(0, 300))}`);
          s.destroy();
          return;
        }
        buf = buf.slice(r.len);
        continued = false;
        const id = /\/p\/([a-z0-9]+)\//.exec(r.req.target)?.[1] ?? 'none';
        seen.set(id, [...(seen.get(id) ?? []), r.req]);
        s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
      }
    });
  });
}

// ---- the listeners ----

let pki: Pki;
let run: Running;
let backend: net.Server;
const P = { plain: 0, tls: 0, h2: 0 };

test.before(async () => {
  pki = await makePki([{ name: 'a', cn: 't', san: 'DNS:t' }]);
  backend = recordingServer();
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', () => r()));
  const bport = (backend.address() as net.AddressInfo).port;
  for (const k of ['plain', 'tls', 'h2'] as const) P[k] = await freePort();
  const cert = `{ cert: ${pki.leaf.a!.cert}, key: ${pki.leaf.a!.key} }`;
  const common = `mode: http
      timeout: { http_request: 1s, client: 5s, server: 5s }
      servers: [ { name: rec, address: 127.0.0.1:${bport} } ]`;
  run = await startListeners(`listeners:
  workers: 1
  stats: { enabled: false }
  listen:
    - name: plain
      bind: 127.0.0.1:${P.plain}
      ${common}
    - name: tls
      bind: 127.0.0.1:${P.tls}
      tls: { certs: [ ${cert} ], alpn: [http/1.1] }
      ${common}
    - name: h2
      bind: 127.0.0.1:${P.h2}
      tls: { certs: [ ${cert} ], alpn: [h2] }
      ${common}
`);
});

test.after.always(async () => {
  await run?.stop();
  backend?.close();
  pki?.cleanup();
});

/** at most a few probes in flight (ava starts every test of the file at once; the listener has one worker) */
let inFlight = 0;
const waiting: (() => void)[] = [];
async function limited<T>(fn: () => Promise<T>): Promise<T> {
  while (inFlight >= 6) await new Promise<void>((r) => waiting.push(r));
  inFlight++;
  try {
    return await fn();
  } finally {
    inFlight--;
    waiting.shift()?.();
  }
}

let nextId = 0;
const newId = (): string => `i${(nextId++).toString(36)}`;

/** What the server got of a probe, against its expected outcome; the complaint or undefined. */
function judgeServer(id: string, e: Outcome, refused: boolean): string | undefined {
  const got = seen.get(id) ?? [];
  const smuggled = got.filter((r) => r.target.includes('/smuggled'));
  if (smuggled.length) return `a smuggled request reached the server: ${JSON.stringify(smuggled[0]!.raw)}`;
  if (refused) return got.length ? `refused, yet the server got ${JSON.stringify(got[0]!.raw)}` : undefined;
  if (got.length !== 1) return `the server got ${got.length} requests: ${JSON.stringify(got.map((r) => r.raw))}`;
  return e.check?.(got[0]!);
}

// ---- HTTP/1.1, plain and over TLS ----

interface H1Result {
  statuses: number[];
  closed: boolean;
  text: string;
}

/** Send raw bytes; read until the listener closes, or nothing more comes for a while after an answer. */
function h1Exchange(port: number, secure: boolean, raw: string): Promise<H1Result> {
  return new Promise((resolve) => {
    const s: net.Socket = secure
      ? tls.connect({
          port,
          host: '127.0.0.1',
          servername: 't',
          rejectUnauthorized: false,
          ALPNProtocols: ['http/1.1'],
        })
      : net.connect(port, '127.0.0.1');
    let text = '';
    let done = false;
    let idle: NodeJS.Timeout | undefined;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(idle);
      clearTimeout(cap);
      s.destroy();
      const statuses = [...text.matchAll(/(?:^|\r\n)HTTP\/1\.[01] (\d{3}) /g)].map((m) => Number(m[1]));
      resolve({ statuses: statuses.filter((x) => x !== 100), closed, text });
    };
    // the answer may take timeout http-request (1 s) when the listener waits for more
    const cap = setTimeout(() => finish(false), 2500);
    s.on('error', () => {});
    s.on('close', () => finish(true));
    s.on('end', () => finish(true));
    s.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      clearTimeout(idle);
      if (/HTTP\/1\.[01] [2-5]\d\d /.test(text)) idle = setTimeout(() => finish(false), 300);
    });
    s.once(secure ? 'secureConnect' : 'connect', () => s.write(Buffer.from(raw, 'latin1')));
  });
}

for (const mode of ['plain', 'tls'] as const) {
  for (const p of H1_PROBES) {
    (p.known ? test.failing : test)(
      `HTTP/1.1 ${mode}: ${p.name}${p.known ? ` (known: ${p.known})` : ''}`,
      async (t) => {
        const id = newId();
        const r = await limited(() => h1Exchange(P[mode], mode === 'tls', p.raw(id)));
        const e = p.expect;
        const first = r.statuses[0];
        const refusedStatuses = e.status ?? [400];
        const refused = first !== undefined && first >= 400;
        const ctx = `answer: ${JSON.stringify(r.text.slice(0, 200))}`;
        if (e.kind === 'refuse') {
          t.true(refused && refusedStatuses.includes(first!), `want ${refusedStatuses}, ${ctx}`);
          t.true(r.closed, `the connection was left open after a refusal; ${ctx}`);
        } else if (e.kind === 'relay') {
          t.is(first, 200, ctx);
        } else if (refused) {
          t.true(refusedStatuses.includes(first!), `want 200 or ${refusedStatuses}, ${ctx}`);
        } else t.is(first, 200, ctx);
        if (e.close) t.true(r.closed, `the connection was left open; ${ctx}`);
        t.is(r.statuses.length <= 1 ? undefined : `${r.statuses.length} answers: ${r.statuses}`, undefined, ctx);
        t.is(judgeServer(id, e, refused), undefined);
      },
    );
  }
}

// ---- HTTP/2: frames and HPACK literals written by hand ----

const FRAME = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, GOAWAY: 7 } as const;

function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, payload]);
}

/** an HPACK integer with an n-bit prefix (RFC 7541 5.1) */
function hpackInt(value: number, bits: number, first: number): number[] {
  const max = (1 << bits) - 1;
  if (value < max) return [first | value];
  const out = [first | max];
  let v = value - max;
  while (v >= 128) {
    out.push((v % 128) + 128);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return out;
}

/** literal header field without indexing, new name, no Huffman (RFC 7541 6.2.2) */
function hpackLiteral(name: string, value: string): Buffer {
  const n = Buffer.from(name, 'latin1');
  const v = Buffer.from(value, 'latin1');
  return Buffer.concat([Buffer.from([0x00, ...hpackInt(n.length, 7, 0)]), n, Buffer.from(hpackInt(v.length, 7, 0)), v]);
}

/** the digits of a Huffman-coded :status (RFC 7541 Appendix B: '0'-'2' 5 bits, '3'-'9' 6 bits) */
function huffmanDigits(b: Buffer): string {
  const codes: [string, number, number][] = [
    ['0', 0b00000, 5],
    ['1', 0b00001, 5],
    ['2', 0b00010, 5],
    ['3', 0b011001, 6],
    ['4', 0b011010, 6],
    ['5', 0b011011, 6],
    ['6', 0b011100, 6],
    ['7', 0b011101, 6],
    ['8', 0b011110, 6],
    ['9', 0b011111, 6],
  ];
  const bits = [...b].map((x) => x.toString(2).padStart(8, '0')).join('');
  let out = '';
  let i = 0;
  while (out.length < 3) {
    const hit = codes.find(
      ([, code, len]) => Number.parseInt(bits.slice(i, i + len), 2) === code && i + len <= bits.length,
    );
    if (!hit) break;
    out += hit[0];
    i += hit[2];
  }
  return out;
}

const STATIC_STATUS: Record<number, number> = { 8: 200, 9: 204, 10: 206, 11: 304, 12: 400, 13: 404, 14: 500 };

/** :status of a response header block (the first field, as node:http2 sends it) */
function statusOf(block: Buffer): number | undefined {
  let i = 0;
  while (i < block.length && (block[i]! & 0xe0) === 0x20) i++; // dynamic table size updates
  const b = block[i]!;
  if (b & 0x80) return STATIC_STATUS[b & 0x7f];
  // a literal with the static name :status (index 8), incremental indexing (0x40) or not (0x00, 0x10)
  const nameIdx = b & 0x40 ? b & 0x3f : b & 0x0f;
  if (nameIdx !== 8) return undefined;
  const lenByte = block[i + 1]!;
  const len = lenByte & 0x7f;
  const v = block.subarray(i + 2, i + 2 + len);
  return Number(lenByte & 0x80 ? huffmanDigits(v) : v.toString('latin1'));
}

interface H2Result {
  status?: number;
  rst?: number;
  goaway?: number;
  closed: boolean;
}

function h2Exchange(fields: [string, string][], data: string[] | undefined): Promise<H2Result> {
  return new Promise((resolve) => {
    const s = tls.connect({
      port: P.h2,
      host: '127.0.0.1',
      servername: 't',
      rejectUnauthorized: false,
      ALPNProtocols: ['h2'],
    });
    const res: H2Result = { closed: false };
    let buf = Buffer.alloc(0);
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(cap);
      s.destroy();
      resolve(res);
    };
    const cap = setTimeout(finish, 2500);
    s.on('error', () => {});
    s.on('close', () => {
      res.closed = true;
      finish();
    });
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 9) {
        const len = buf.readUIntBE(0, 3);
        if (buf.length < 9 + len) break;
        const type = buf[3]!;
        const flags = buf[4]!;
        const stream = buf.readUInt32BE(5) & 0x7fffffff;
        const payload = buf.subarray(9, 9 + len);
        buf = buf.subarray(9 + len);
        if (type === FRAME.SETTINGS && !(flags & 1)) s.write(frame(FRAME.SETTINGS, 1, 0, Buffer.alloc(0)));
        if (type === FRAME.GOAWAY) {
          res.goaway = payload.readUInt32BE(4);
          finish();
        }
        if (stream !== 1) continue;
        if (type === FRAME.RST_STREAM) {
          res.rst = payload.readUInt32BE(0);
          finish();
        }
        if (type === FRAME.HEADERS) {
          const pad = flags & 0x8 ? payload[0]! + 1 : 0;
          const prio = flags & 0x20 ? 5 : 0;
          res.status ??= statusOf(payload.subarray((flags & 0x8 ? 1 : 0) + prio, payload.length - (pad ? pad - 1 : 0)));
        }
        if (flags & 1 && (type === FRAME.HEADERS || type === FRAME.DATA)) finish();
      }
    });
    s.once('secureConnect', () => {
      const block = Buffer.concat(fields.map(([n, v]) => hpackLiteral(n, v)));
      const out = [
        Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'),
        frame(FRAME.SETTINGS, 0, 0, Buffer.alloc(0)),
        // END_HEADERS, and END_STREAM when no DATA follows
        frame(FRAME.HEADERS, 0x4 | (data?.length ? 0 : 0x1), 1, block),
        ...(data ?? []).map((d, i, all) =>
          frame(FRAME.DATA, i === all.length - 1 ? 1 : 0, 1, Buffer.from(d, 'latin1')),
        ),
      ];
      s.write(Buffer.concat(out));
    });
  });
}

for (const p of H2_PROBES) {
  test(`HTTP/2: ${p.name}`, async (t) => {
    const id = newId();
    const r = await limited(() => h2Exchange(p.fields(id), p.data));
    const e = p.expect;
    // refused: the stream reset (or the connection with GOAWAY) as malformed, or a 4xx answer
    const refused = r.rst !== undefined || r.goaway !== undefined || (r.status !== undefined && r.status >= 400);
    const ctx = JSON.stringify(r);
    if (e.kind === 'refuse') t.true(refused, `not refused: ${ctx}`);
    else if (e.kind === 'relay') t.is(r.status, 200, ctx);
    else t.true(refused || r.status === 200, ctx);
    if (r.rst !== undefined) t.is(r.rst, 1, `RST_STREAM with ${r.rst}, not PROTOCOL_ERROR`);
    t.is(judgeServer(id, e, refused), undefined);
  });
}

test.after.always('the recording server never got bytes it could not parse', (t) => {
  t.deepEqual(garbage, []);
  t.deepEqual(seen.get('none') ?? [], []);
});
