/**
 * Helpers for the TLS listener tests: a throw-away PKI made with openssl at test time (a CA, leaf certificates with
 * SANs, a client certificate, one from a foreign CA), and the real clients: curl and openssl s_client.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run a program (argv), with stdin; never rejects. */
export function run(cmd: string, args: string[], opts: { input?: string; timeout?: number } = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(
      cmd,
      args,
      { timeout: opts.timeout ?? 20_000, maxBuffer: 4 << 20 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
    // (a program that exits without reading its input: EPIPE on our side, not an error of the test)
    child.stdin?.on('error', () => {});
    child.stdin?.end(opts.input ?? '');
  });
}

async function openssl(dir: string, args: string[]): Promise<void> {
  const r = await run('openssl', args);
  if (r.code !== 0) throw new Error(`openssl ${args.join(' ')} (in ${dir}): ${r.stderr}`);
}

export interface Pki {
  dir: string;
  ca: string;
  /** name → { cert, key } files */
  leaf: Record<string, { cert: string; key: string }>;
  cleanup(): void;
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

/** A CA `ca` (and a foreign one `other-ca`) and leaf certificates signed by them. */
export async function makePki(
  leaves: { name: string; cn: string; san?: string; client?: boolean; ca?: 'ca' | 'other-ca' }[],
): Promise<Pki> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tierlb-pki-'));
  const p = (f: string) => path.join(dir, f);
  for (const ca of ['ca', 'other-ca'])
    await openssl(dir, [
      'req',
      '-x509',
      ...EC,
      '-keyout',
      p(`${ca}.key`),
      '-out',
      p(`${ca}.pem`),
      '-days',
      '2',
      '-subj',
      `/CN=tierlb test ${ca}`,
    ]);
  const leaf: Pki['leaf'] = {};
  await Promise.all(
    leaves.map(async (l) => {
      const ext = p(`${l.name}.ext`);
      fs.writeFileSync(
        ext,
        `basicConstraints=CA:FALSE\nextendedKeyUsage=${l.client ? 'clientAuth' : 'serverAuth'}\n${l.san ? `subjectAltName=${l.san}\n` : ''}`,
      );
      await openssl(dir, [
        'req',
        ...EC,
        '-keyout',
        p(`${l.name}.key`),
        '-out',
        p(`${l.name}.csr`),
        '-subj',
        `/CN=${l.cn}`,
      ]);
      const ca = l.ca ?? 'ca';
      await openssl(dir, [
        'x509',
        '-req',
        '-in',
        p(`${l.name}.csr`),
        '-CA',
        p(`${ca}.pem`),
        '-CAkey',
        p(`${ca}.key`),
        '-set_serial',
        String(Math.floor(Math.random() * 1e9)),
        '-out',
        p(`${l.name}.pem`),
        '-days',
        '2',
        '-extfile',
        ext,
      ]);
      leaf[l.name] = { cert: p(`${l.name}.pem`), key: p(`${l.name}.key`) };
    }),
  );
  return { dir, ca: p('ca.pem'), leaf, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

export interface Handshake {
  ok: boolean;
  /** the server certificate's subject CN */
  cn?: string;
  protocol?: string;
  alpn?: string;
  reused: boolean;
  out: string;
}

/**
 * `openssl s_client` to 127.0.0.1:port: who answered, with which protocol and ALPN. With `send`, that is written
 * and s_client reads until the server closes (-ign_eof); without, it closes once the handshake is done.
 */
export async function sClient(port: number, args: string[], send?: string): Promise<Handshake> {
  const more = send === undefined ? [] : ['-ign_eof'];
  const r = await run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, ...more, ...args], {
    input: send ?? '',
    timeout: 10_000,
  });
  const out = r.stdout + r.stderr;
  return {
    ok: /^(New|Reused), TLSv/m.test(r.stdout) && !/Cipher is \(NONE\)/.test(r.stdout),
    cn: /^subject=.*?CN ?= ?([^,\n]+)/m.exec(r.stdout)?.[1]?.trim(),
    protocol: /^\s*Protocol\s*: (\S+)/m.exec(r.stdout)?.[1] ?? /^(?:New|Reused), (TLSv[\d.]+)/m.exec(r.stdout)?.[1],
    alpn: /^ALPN protocol: (\S+)/m.exec(r.stdout)?.[1],
    reused: /^Reused, /m.test(r.stdout),
    out,
  };
}

export interface CurlReply {
  code: number;
  status: number;
  version: string;
  body: string;
  stderr: string;
}

/** curl https://NAME:port/path resolved to 127.0.0.1 (so SNI is NAME), trusting `ca`. */
export async function curl(name: string, port: number, urlPath: string, args: string[] = []): Promise<CurlReply> {
  const r = await run('curl', [
    '-sS',
    '--max-time',
    '15',
    '--resolve',
    `${name}:${port}:127.0.0.1`,
    '-w',
    '\n%{http_code} %{http_version}',
    ...args,
    `https://${name}:${port}${urlPath}`,
  ]);
  const nl = r.stdout.lastIndexOf('\n');
  const [status, version] = r.stdout.slice(nl + 1).split(' ');
  return {
    code: r.code,
    status: Number(status),
    version: version ?? '',
    body: r.stdout.slice(0, nl),
    stderr: r.stderr,
  };
}

/** Wait until something accepts connections on 127.0.0.1:port. */
export async function waitPort(port: number, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > end) throw new Error(`nothing listens on 127.0.0.1:${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
