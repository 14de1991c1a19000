/**
 * TLS termination on a listener: one tls.Server (never listening itself: ./listener.ts hands it each accepted
 * socket once the PROXY header, if any, is read) with one secure context per certificate, chosen by SNI against the
 * certificates' names (exact, then `*.` wildcards of one label), the first certificate when nothing matches or no
 * name is sent. Session tickets are encrypted with keys the cluster primary made, the same in every worker, so a
 * session resumes on whichever worker the next connection lands on. Client certificates: `verify: required`
 * refuses a handshake without a valid one; `optional` asks, accepts none, refuses an invalid one (as HAProxy).
 */
import tls from 'node:tls';
import type { ListenerSpec } from '../config.js';
import { ListenersError } from '../errors.js';
import { readTlsFiles, type TlsCert } from '../tls-files.js';
import type { TlsSpec } from '../tls-schema.js';

/** Node's default lists, split: TLS 1.3 suites (TLS_...) and the TLS <= 1.2 cipher string */
const DEFAULT_SUITES = tls.DEFAULT_CIPHERS.split(':').filter((c) => c.startsWith('TLS_'));
const DEFAULT_CIPHERS = tls.DEFAULT_CIPHERS.split(':').filter((c) => !c.startsWith('TLS_'));

/** Node's one `ciphers` option from the config's two lists (TLS 1.3 suites first). */
export function cipherString(spec: Pick<TlsSpec, 'ciphers' | 'ciphersuites'>): string | undefined {
  if (!spec.ciphers && !spec.ciphersuites) return undefined;
  return [spec.ciphersuites ?? DEFAULT_SUITES.join(':'), spec.ciphers ?? DEFAULT_CIPHERS.join(':')].join(':');
}

/** SNI → certificate: exact names, then wildcards (one label), then the default (the first). */
export class CertIndex<T> {
  private readonly exact = new Map<string, T>();
  private readonly wild = new Map<string, T>();

  constructor(
    entries: { names: string[]; value: T }[],
    readonly fallback: T,
  ) {
    for (const e of entries) {
      for (const n of e.names) {
        if (n.startsWith('*.')) {
          if (!this.wild.has(n.slice(2))) this.wild.set(n.slice(2), e.value);
        } else if (!this.exact.has(n)) this.exact.set(n, e.value);
      }
    }
  }

  /** the certificate for a client's server name (undefined or unknown: the default) */
  find(servername: string | undefined): T {
    if (!servername) return this.fallback;
    const n = servername.toLowerCase().replace(/\.$/, '');
    const hit = this.exact.get(n);
    if (hit !== undefined) return hit;
    const dot = n.indexOf('.');
    if (dot > 0) {
      const w = this.wild.get(n.slice(dot + 1));
      if (w !== undefined) return w;
    }
    return this.fallback;
  }
}

export interface TlsFront {
  readonly server: tls.Server;
  /** the server names of each certificate (logs) */
  readonly certs: readonly TlsCert[];
}

/**
 * The listener's tls.Server. `onSecure` gets each socket whose handshake passed (and whose client certificate, when
 * asked for, is acceptable); `onFailed` each one that did not.
 */
export function tlsFront(
  spec: ListenerSpec,
  ticketKeys: Buffer | undefined,
  onSecure: (s: tls.TLSSocket) => void,
  onFailed: (err: Error, s: tls.TLSSocket) => void,
): TlsFront {
  const t = spec.tls!;
  const material = t.material ?? readTlsFiles(t);
  const common: tls.SecureContextOptions = {
    minVersion: t.minVersion,
    ciphers: cipherString(t),
    ca: material.clientCa,
    // the session ID context: sessions of this listener only
    sessionIdContext: `tierlb:${spec.name}`.slice(0, 32),
    ...(ticketKeys ? { ticketKeys } : {}),
  };
  const contexts = material.certs.map((c) => tls.createSecureContext({ ...common, cert: c.cert, key: c.key }));
  const index = new CertIndex(
    material.certs.map((c, i) => ({ names: c.names, value: contexts[i]! })),
    contexts[0]!,
  );
  const verify = t.verify;
  const server = tls.createServer({
    ...common,
    cert: material.certs[0]!.cert,
    key: material.certs[0]!.key,
    SNICallback: (name, cb) => cb(null, index.find(name)),
    ALPNProtocols: t.alpn.length ? t.alpn : undefined,
    requestCert: verify !== 'none',
    rejectUnauthorized: verify === 'required',
    allowHalfOpen: spec.mode === 'tcp',
    // the handshake is timed by the listener (timeout http-request / client, on the injected timers)
    handshakeTimeout: 0,
  });
  server.on('secureConnection', (s: tls.TLSSocket) => {
    // verify optional: no certificate is fine, an invalid one is not
    if (verify === 'optional' && !s.authorized && Object.keys(s.getPeerCertificate() ?? {}).length > 0) {
      onFailed(new ListenersError('ETLS_CLIENT_CERT', `client certificate refused: ${s.authorizationError}`), s);
      s.destroy();
      return;
    }
    onSecure(s);
  });
  server.on('tlsClientError', (err, s) => onFailed(err, s));
  return { server, certs: material.certs };
}
