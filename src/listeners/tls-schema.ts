/**
 * The `tls:` (TLS termination on a listener, HAProxy `bind ... ssl crt ...`) and `ssl:` (TLS to the servers, HAProxy
 * `server ... ssl verify ... ca-file ... sni ...`) parts of the `listeners` section: their JSON schema, raw shape,
 * checks (reported at file:line:col by ./config-schema.ts's validator) and resolution into the specs the workers
 * run. Reading the files (certificates, keys, CAs) is ./tls-files.ts.
 *
 *   tls:
 *     certs: [ { cert: /etc/tierlb/www.pem, key: /etc/tierlb/www.key } ]   # SNI picks by SAN/CN; the first is default
 *     cert_dir: /etc/tierlb/certs      # + every *.pem / *.crt there (key inside, or FILE.key / FILE.pem.key beside)
 *     min_version: TLSv1.2             # TLSv1.2 | TLSv1.3
 *     ciphers: "ECDHE+AESGCM"          # TLS <= 1.2 (OpenSSL syntax); ciphersuites: TLS 1.3 suites
 *     alpn: [h2, http/1.1]             # mode http default; mode tcp: none
 *     client_ca: /etc/tierlb/clients-ca.pem
 *     verify: required                 # client certificates: none | optional | required
 *   ssl: { verify: required, ca: /etc/tierlb/servers-ca.pem, sni: app.internal }   # on a server or its listener
 */
import type { SectionContext } from '../config/registry.js';
import type { TlsMaterial } from './tls-files.js';

export const TLS_VERSIONS = ['TLSv1.2', 'TLSv1.3'] as const;
export type TlsVersion = (typeof TLS_VERSIONS)[number];
export const ALPN_PROTOCOLS = ['h2', 'http/1.1'] as const;

export const tlsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    certs: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['cert'],
        properties: { cert: { type: 'string', minLength: 1 }, key: { type: 'string', minLength: 1 } },
      },
    },
    cert_dir: { type: 'string', minLength: 1 },
    min_version: { enum: TLS_VERSIONS },
    ciphers: { type: 'string', minLength: 1 },
    ciphersuites: { type: 'string', minLength: 1 },
    alpn: { type: 'array', items: { enum: ALPN_PROTOCOLS }, uniqueItems: true },
    client_ca: { type: 'string', minLength: 1 },
    verify: { enum: ['none', 'optional', 'required'] },
  },
} as const;

export const sslSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    verify: { enum: ['none', 'required'] },
    ca: { type: 'string', minLength: 1 },
    sni: { type: 'string', pattern: '^[A-Za-z0-9_.*-]+$' },
  },
} as const;

export interface RawTls {
  certs?: { cert: string; key?: string }[];
  cert_dir?: string;
  min_version?: TlsVersion;
  ciphers?: string;
  ciphersuites?: string;
  alpn?: ('h2' | 'http/1.1')[];
  client_ca?: string;
  verify?: 'none' | 'optional' | 'required';
}

export interface RawSsl {
  verify?: 'none' | 'required';
  ca?: string;
  sni?: string;
}

/** A listener's TLS termination, resolved (paths as written; ./tls-files.ts reads them). */
export interface TlsSpec {
  certs: { cert: string; key?: string }[];
  certDir?: string;
  minVersion: TlsVersion;
  ciphers?: string;
  ciphersuites?: string;
  alpn: string[];
  clientCa?: string;
  verify: 'none' | 'optional' | 'required';
  /** the files' contents, read by the primary when it loaded the config (./tls-files.ts) */
  material?: TlsMaterial;
}

/** TLS to a server (re-encryption). */
export interface SslSpec {
  verify: 'none' | 'required';
  /** a CA file (PEM); without one, Node's bundled roots verify */
  ca?: string;
  /** the server name sent (SNI) and checked in its certificate */
  sni?: string;
  /** the CA file's PEM, read with the config */
  caPem?: string;
}

export function resolveTls(raw: RawTls | undefined, mode: 'tcp' | 'http'): TlsSpec | undefined {
  if (!raw) return undefined;
  return {
    certs: (raw.certs ?? []).map((c) => ({ cert: c.cert, key: c.key })),
    certDir: raw.cert_dir,
    minVersion: raw.min_version ?? 'TLSv1.2',
    ciphers: raw.ciphers,
    ciphersuites: raw.ciphersuites,
    alpn: raw.alpn ?? (mode === 'http' ? ['h2', 'http/1.1'] : []),
    clientCa: raw.client_ca,
    verify: raw.verify ?? (raw.client_ca ? 'required' : 'none'),
  };
}

/** A server's `ssl`, else its group's or listener's (the first given wins). */
export function resolveSsl(...raws: (RawSsl | undefined)[]): SslSpec | undefined {
  const raw = raws.find((r) => r !== undefined);
  if (!raw) return undefined;
  return { verify: raw.verify ?? 'required', ca: raw.ca, sni: raw.sni };
}

/** The checks the schema cannot express, for the listener at `path` (['listen', i]). */
export function validateTls(l: { tls?: RawTls; mode?: string }, path: (string | number)[], ctx: SectionContext): void {
  const t = l.tls;
  if (!t || typeof t !== 'object') return;
  const at = [...path, 'tls'];
  if (!t.certs?.length && !t.cert_dir) ctx.report(at, 'tls needs certificates: certs (cert + key files) or cert_dir');
  if (t.alpn?.includes('h2') && l.mode !== 'http') ctx.report([...at, 'alpn'], 'alpn h2 needs mode: http');
  if (t.verify && t.verify !== 'none' && !t.client_ca)
    ctx.report([...at, 'verify'], `verify ${t.verify} needs client_ca (the CA file client certificates must chain to)`);
  if (t.ciphersuites?.split(':').some((s) => !/^TLS_[A-Z0-9_]+$/.test(s)))
    ctx.report([...at, 'ciphersuites'], 'ciphersuites are TLS 1.3 suite names (TLS_AES_128_GCM_SHA256:...)');
  if (t.ciphers?.split(':').some((s) => s.startsWith('TLS_')))
    ctx.report([...at, 'ciphers'], 'TLS 1.3 suites (TLS_...) go in ciphersuites; ciphers is the TLS <= 1.2 list');
}
