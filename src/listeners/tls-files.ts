/**
 * The files of a listener's `tls:` and of a server's `ssl:`: certificates with their keys (and chains), cert_dir's
 * files, CAs. Read by the cluster primary when it loads a config (so a missing file or a key that does not match its
 * certificate refuses the start or the reload, at the config's file:line:col) and handed to the workers inside the
 * config; a worker given a spec without them (a config not loaded through loadListenersConfig) reads them itself.
 * Each certificate's names (DNS SANs, else its CN) are what SNI is matched against (./worker/tls.ts).
 */
import { X509Certificate } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { ListenersError } from './errors.js';
import type { SslSpec, TlsSpec } from './tls-schema.js';

export interface TlsCert {
  /** where it came from (logs, errors) */
  file: string;
  /** the certificate PEM: the leaf first, then its chain */
  cert: string;
  key: string;
  /** lower-case DNS names (SANs, else the CN); `*.example.com` for wildcards */
  names: string[];
}

export interface TlsMaterial {
  certs: TlsCert[];
  clientCa?: string;
}

/** which field of the spec a problem is about: ['certs', 0, 'cert'], ['cert_dir'], ['client_ca'] */
export type TlsField = (string | number)[];

function fail(field: TlsField, message: string): never {
  const e = new ListenersError('ETLS_FILE', message);
  (e as ListenersError & { field?: TlsField }).field = field;
  throw e;
}

/** the field a TLS file error is about (for the config's file:line:col) */
export function tlsFieldOf(e: unknown): TlsField | undefined {
  return (e as { field?: TlsField }).field;
}

function readText(file: string, field: TlsField, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    fail(field, `cannot read the ${what} ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

const KEY_RE = /-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----[\s\S]+?-----END (?:[A-Z]+ )?PRIVATE KEY-----/;
const CERT_RE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** The DNS names a certificate answers for: its DNS subjectAltNames, else its subject CN (lower case). */
export function certNames(pem: string): string[] {
  const x = new X509Certificate(pem);
  const sans = (x.subjectAltName ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.startsWith('DNS:'))
    .map((s) => s.slice(4).toLowerCase());
  if (sans.length) return sans;
  const cn = /^CN=(.+)$/m.exec(x.subject)?.[1];
  return cn ? [cn.trim().toLowerCase()] : [];
}

/** One certificate: its PEM (chain after the leaf), its key (a file, or inside the PEM), checked to match. */
export function loadCert(certFile: string, keyFile: string | undefined, field: TlsField): TlsCert {
  const pem = readText(certFile, field, 'certificate');
  const certs = pem.match(CERT_RE);
  if (!certs) fail(field, `${certFile} holds no PEM certificate`);
  const keyText = keyFile ? readText(keyFile, [...field.slice(0, -1), 'key'], 'key') : pem;
  const key = KEY_RE.exec(keyText)?.[0];
  if (!key)
    fail(
      keyFile ? [...field.slice(0, -1), 'key'] : field,
      keyFile
        ? `${keyFile} holds no PEM private key`
        : `${certFile} holds no private key: add key: FILE, or append the key to the PEM`,
    );
  const cert = certs.join('\n');
  let names: string[];
  try {
    names = certNames(certs[0]!);
    tls.createSecureContext({ cert, key });
  } catch (e) {
    fail(field, `${certFile}: ${(e as Error).message} (is ${keyFile ?? 'the key in it'} the key of this certificate?)`);
  }
  return { file: certFile, cert, key, names };
}

/** cert_dir: every *.pem / *.crt in name order (HAProxy `crt DIR`); its key inside, or FILE.key or NAME.key beside */
export function loadDir(dir: string): TlsCert[] {
  let entries: string[];
  try {
    entries = readdirSync(dir).sort();
  } catch (e) {
    fail(['cert_dir'], `cannot read cert_dir ${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const out: TlsCert[] = [];
  const have = new Set(entries);
  for (const f of entries) {
    if (!/\.(pem|crt)$/.test(f)) continue;
    const file = path.join(dir, f);
    const pem = readText(file, ['cert_dir'], 'certificate');
    if (!pem.includes('-----BEGIN CERTIFICATE-----')) continue; // a key kept beside the certificates
    const base = f.replace(/\.(pem|crt)$/, '');
    const key = KEY_RE.test(pem)
      ? undefined
      : have.has(`${f}.key`)
        ? path.join(dir, `${f}.key`)
        : have.has(`${base}.key`)
          ? path.join(dir, `${base}.key`)
          : undefined;
    out.push(loadCert(file, key, ['cert_dir']));
  }
  if (!out.length) fail(['cert_dir'], `cert_dir ${dir} has no certificate (*.pem or *.crt with its key)`);
  return out;
}

/** Everything a listener's TLS termination needs from files. Throws ListenersError ETLS_FILE naming the file. */
export function readTlsFiles(spec: TlsSpec): TlsMaterial {
  const certs = spec.certs.map((c, j) => loadCert(c.cert, c.key, ['certs', j, 'cert']));
  if (spec.certDir) certs.push(...loadDir(spec.certDir));
  const clientCa = spec.clientCa ? readCa(spec.clientCa, ['client_ca']) : undefined;
  return { certs, clientCa };
}

/** A CA file (one or more PEM certificates). */
export function readCa(file: string, field: TlsField = ['ca']): string {
  const pem = readText(file, field, 'CA file');
  if (!pem.match(CERT_RE)) fail(field, `${file} holds no PEM certificate`);
  return pem;
}

/** a server's ssl with its CA read */
export function readSslFiles(ssl: SslSpec): SslSpec {
  return ssl.ca && ssl.caPem === undefined ? { ...ssl, caPem: readCa(ssl.ca) } : ssl;
}
