/**
 * The address-bearing lines of a proxy: `bind` (address:port, ssl crt FILE|DIR, alpn, accept-proxy, client
 * certificates, TLS versions and ciphers) and `server` / `default-server` (check, inter, rise, fall, weight,
 * maxconn, backup, slowstart, send-proxy[-v2], ssl verify none|required ca-file sni, agent-check, disabled).
 */
import { isAbsolute, join } from 'node:path';
import type { Ctx } from './ctx.js';
import { at, type Line, type Where } from './tokenize.js';

/** `addr:port` as HAProxy writes it (`:80`, `*:80`, `1.2.3.4:80`, `:::80`, `[::1]:80`, `ipv4@`/`ipv6@` prefixes). */
export function parseAddr(s: string): { host: string; port?: number; v6: boolean } | string {
  let a = s;
  const pfx = /^([a-z0-9]+)@/.exec(a);
  if (pfx) {
    if (pfx[1] !== 'ipv4' && pfx[1] !== 'ipv6') return `'${pfx[1]}@' addresses are not supported by tierlb`;
    a = a.slice(pfx[0].length);
  }
  let host: string;
  let port: string | undefined;
  const br = /^\[([0-9a-fA-F:.]+)\](?::(.*))?$/.exec(a);
  if (br) {
    host = br[1];
    port = br[2];
  } else {
    const k = a.lastIndexOf(':');
    if (k < 0) host = a;
    else {
      host = a.slice(0, k);
      port = a.slice(k + 1);
    }
  }
  if (host === '' || host === '*') host = host === '' && a.startsWith('::') ? '::' : '0.0.0.0';
  if (port !== undefined && port !== '') {
    if (!/^\d{1,5}$/.test(port)) return `'${port}' is not a port (ranges and offsets are not supported by tierlb)`;
    const n = Number(port);
    if (n < 1 || n > 65535) return `port ${n} out of range 1..65535`;
    return { host, port: n, v6: host.includes(':') };
  }
  return { host, v6: host.includes(':') };
}

export function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

export interface Bind {
  where: Where;
  address: string;
  acceptProxy: boolean;
  /** bind ... maxconn N / backlog N */
  maxconn?: number;
  backlog?: number;
  /** present when the bind line says `ssl` */
  tls?: Record<string, unknown>;
}

export interface TlsDefaults {
  crtBase?: string;
  caBase?: string;
  /** ssl-default-bind-options / -ciphers / -ciphersuites */
  bind: { min_version?: string; ciphers?: string; ciphersuites?: string };
}

const TLS_VERSIONS = ['SSLv3', 'TLSv1.0', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'];

/** `ssl-min-ver`, `no-sslv3`, `no-tlsv10`, ... on a bind line or in ssl-default-bind-options; true when handled. */
export function tlsOption(c: Ctx, l: Line, i: number, out: { min_version?: string }): number | false {
  const w = l.words[i];
  const no = /^no-(sslv3|tlsv1[0-3])$/.exec(w);
  if (no) {
    const v = { sslv3: 'SSLv3', tlsv10: 'TLSv1.0', tlsv11: 'TLSv1.1', tlsv12: 'TLSv1.2', tlsv13: 'TLSv1.3' }[no[1]];
    const next = TLS_VERSIONS[TLS_VERSIONS.indexOf(v as string) + 1];
    const cur = TLS_VERSIONS.indexOf(out.min_version ?? 'TLSv1.2');
    if (next && TLS_VERSIONS.indexOf(next) > cur) out.min_version = next;
    if (out.min_version === 'TLSv1.0' || out.min_version === 'TLSv1.1' || out.min_version === 'SSLv3')
      out.min_version = undefined;
    return i + 1;
  }
  if (w === 'ssl-min-ver') {
    const v = l.words[i + 1];
    if (v === 'TLSv1.2' || v === 'TLSv1.3') out.min_version = v;
    else c.error(at(l, i + 1), `'ssl-min-ver ${v ?? ''}': tierlb offers TLSv1.2 or TLSv1.3`);
    return i + 2;
  }
  return false;
}

/** `bind ADDR[,ADDR...] [options]` → one Bind per address. */
export function readBind(c: Ctx, l: Line, d: TlsDefaults): Bind[] {
  const spec = l.words[1];
  if (!spec) {
    c.error(at(l), `'bind' needs an address:port`);
    return [];
  }
  const addrs: string[] = [];
  for (const part of spec.split(',')) {
    const a = parseAddr(part);
    if (typeof a === 'string') c.error(at(l, 1), a);
    else if (a.port === undefined) c.error(at(l, 1), `'${part}': a bind address needs a port`);
    else addrs.push(hostPort(a.host, a.port));
  }
  let ssl = false;
  let acceptProxy = false;
  const limits: { maxconn?: number; backlog?: number } = {};
  const certs: { cert: string }[] = [];
  const dirs: string[] = [];
  const tls: Record<string, unknown> = { ...d.bind };
  let alpn: string[] | undefined;
  for (let i = 2; i < l.words.length; ) {
    const w = l.words[i];
    const val = () => {
      const v = l.words[i + 1];
      if (v === undefined) c.error(at(l, i), `'${w}' needs a value`);
      i += 2;
      return v;
    };
    const ver = tlsOption(c, l, i, tls as { min_version?: string });
    if (ver !== false) {
      i = ver;
      continue;
    }
    switch (w) {
      case 'ssl':
        ssl = true;
        i++;
        break;
      case 'accept-proxy':
        acceptProxy = true;
        i++;
        break;
      case 'crt': {
        const v = val();
        if (v === undefined) break;
        const p = d.crtBase && !isAbsolute(v) ? join(d.crtBase, v) : v;
        if (c.isDir(p)) dirs.push(p);
        else certs.push({ cert: p });
        break;
      }
      case 'alpn': {
        const v = val();
        if (v !== undefined) alpn = v.split(',').filter((x) => x !== '');
        break;
      }
      case 'ca-file': {
        const v = val();
        if (v !== undefined) tls.client_ca = d.caBase && !isAbsolute(v) ? join(d.caBase, v) : v;
        break;
      }
      case 'verify': {
        const v = val();
        if (v === 'none' || v === 'optional' || v === 'required') tls.verify = v;
        else c.error(at(l, i - 1), `'verify ${v ?? ''}': none, optional or required`);
        break;
      }
      case 'ciphers':
      case 'ciphersuites': {
        const v = val();
        if (v !== undefined) tls[w] = v;
        break;
      }
      case 'v4v6':
      case 'v6only':
      case 'defer-accept':
      case 'tfo':
      case 'no-tls-tickets':
      case 'prefer-client-ciphers':
      case 'strict-sni':
        if (w === 'strict-sni')
          c.error(at(l, i), `'strict-sni' is not supported by tierlb (it always falls back to the first certificate)`);
        else c.warn(at(l, i), `bind option '${w}' is not used by tierlb, ignored`);
        i++;
        break;
      case 'name':
      case 'id':
      case 'process':
      case 'thread':
      case 'maxconn': {
        const n = c.int(l, i + 1, 0, 10_000_000);
        if (n !== undefined) limits.maxconn = n;
        i += 2;
        break;
      }
      case 'backlog': {
        const n = c.int(l, i + 1, 1, 65535);
        if (n !== undefined) limits.backlog = n;
        i += 2;
        break;
      }
      case 'nice':
      case 'mss':
      case 'npn':
      case 'curves':
      case 'ecdhe':
        c.warn(at(l, i), `bind option '${w} ${l.words[i + 1] ?? ''}' is not used by tierlb, ignored`);
        i += 2;
        break;
      default:
        c.error(at(l, i), `bind option '${w}' is not supported by tierlb`);
        i = l.words.length;
    }
  }
  if (!ssl && (certs.length || dirs.length))
    c.error(at(l), `'crt' without 'ssl': HAProxy would not terminate TLS either; add 'ssl' or drop 'crt'`);
  let tlsOut: Record<string, unknown> | undefined;
  if (ssl) {
    if (certs.length === 0 && dirs.length === 0) c.error(at(l), `'ssl' needs at least one 'crt FILE|DIR'`);
    tlsOut = {
      ...(certs.length ? { certs } : {}),
      ...(dirs.length ? { cert_dir: dirs[0] } : {}),
      ...tls,
      // without alpn, ./plan.ts offers what HAProxy 2.6 does for the proxy's mode
      ...(alpn ? { alpn } : {}),
    };
    // HAProxy asks for no client certificate unless `verify` says so, ca-file or not
    if (tlsOut.client_ca && !tlsOut.verify) tlsOut.verify = 'none';
    if (dirs.length > 1) c.error(at(l), `tierlb takes one certificate directory per bind (got ${dirs.length})`);
  }
  return addrs.map((address) => ({
    where: at(l),
    address,
    acceptProxy,
    ...limits,
    ...(tlsOut ? { tls: tlsOut } : {}),
  }));
}

/** server options, as `server` and `default-server` set them (unset: not said). */
export interface SrvOpts {
  check?: boolean;
  inter?: string;
  rise?: number;
  fall?: number;
  weight?: number;
  maxconn?: number;
  backup?: boolean;
  slowstart?: string;
  sendProxy?: false | 'v1' | 'v2';
  ssl?: boolean;
  verify?: 'none' | 'required';
  ca?: string;
  sni?: string;
  agentCheck?: boolean;
  agentPort?: number;
  agentInter?: string;
  agentAddr?: string;
  agentSend?: string;
  disabled?: boolean;
}

export interface ServerLine {
  where: Where;
  name: string;
  address: string;
  opts: SrvOpts;
}

const IGNORED_SERVER_OPTS: Record<string, string> = {
  id: 'numeric ids are not used by tierlb',
  cookie: 'cookie persistence is not supported by tierlb (the backend `cookie` keyword is refused)',
  'init-addr': 'tierlb resolves server names when it connects',
  resolvers: 'tierlb resolves server names when it connects',
  'resolve-prefer': 'tierlb resolves server names when it connects',
  fastinter: 'tierlb checks at one interval (inter)',
  downinter: 'tierlb checks at one interval (inter)',
  maxqueue: "tierlb's queue limit is the listener's maxqueue",
  'pool-max-conn': 'tierlb keeps its own connection pools',
  'pool-purge-delay': 'tierlb keeps its own connection pools',
  'max-reuse': 'tierlb keeps its own connection pools',
  observe: 'traffic observation is not done by tierlb',
  'error-limit': 'traffic observation is not done by tierlb',
  'on-error': 'traffic observation is not done by tierlb',
  'check-reuse-pool': 'not used by tierlb',
  'log-proto': 'not used by tierlb',
};
const IGNORED_SERVER_FLAGS = new Set(['tfo', 'no-tls-tickets', 'check-sni', 'no-agent-check', 'no-sslv3']);

/** The options of a `server` line (from index `from`) or of a `default-server` line (from 1). */
export function readServerOpts(c: Ctx, l: Line, from: number, caBase?: string): SrvOpts {
  const o: SrvOpts = {};
  for (let i = from; i < l.words.length; ) {
    const w = l.words[i];
    const flag = (set: () => void) => {
      set();
      i++;
    };
    switch (w) {
      case 'check':
        flag(() => (o.check = true));
        continue;
      case 'no-check':
        flag(() => (o.check = false));
        continue;
      case 'backup':
        flag(() => (o.backup = true));
        continue;
      case 'no-backup':
        flag(() => (o.backup = false));
        continue;
      case 'send-proxy':
        flag(() => (o.sendProxy = 'v1'));
        continue;
      case 'send-proxy-v2':
        flag(() => (o.sendProxy = 'v2'));
        continue;
      case 'no-send-proxy':
      case 'no-send-proxy-v2':
        flag(() => (o.sendProxy = false));
        continue;
      case 'ssl':
        flag(() => (o.ssl = true));
        continue;
      case 'no-ssl':
        flag(() => (o.ssl = false));
        continue;
      case 'agent-check':
        flag(() => (o.agentCheck = true));
        continue;
      case 'disabled':
        flag(() => (o.disabled = true));
        continue;
      case 'enabled':
        flag(() => (o.disabled = false));
        continue;
      case 'inter':
        o.inter = c.time(l, i + 1);
        i += 2;
        continue;
      case 'slowstart':
        o.slowstart = c.time(l, i + 1);
        i += 2;
        continue;
      case 'agent-inter':
        o.agentInter = c.time(l, i + 1);
        i += 2;
        continue;
      case 'rise':
        o.rise = c.int(l, i + 1, 1, 1000);
        i += 2;
        continue;
      case 'fall':
        o.fall = c.int(l, i + 1, 1, 1000);
        i += 2;
        continue;
      case 'weight':
        o.weight = c.int(l, i + 1, 0, 256);
        i += 2;
        continue;
      case 'maxconn':
        o.maxconn = c.int(l, i + 1, 0, 10_000_000);
        i += 2;
        continue;
      case 'agent-port':
        o.agentPort = c.int(l, i + 1, 1, 65535);
        i += 2;
        continue;
      case 'agent-addr':
      case 'agent-send':
      case 'ca-file':
      case 'verify':
      case 'sni': {
        const v = l.words[i + 1];
        if (v === undefined) c.error(at(l, i), `'${w}' needs a value`);
        else if (w === 'agent-addr') o.agentAddr = v;
        else if (w === 'agent-send') o.agentSend = v;
        else if (w === 'ca-file') o.ca = caBase && !isAbsolute(v) ? join(caBase, v) : v;
        else if (w === 'verify') {
          if (v === 'none' || v === 'required') o.verify = v;
          else c.error(at(l, i + 1), `'verify ${v}': none or required`);
        } else {
          const m = /^str\(([^)]*)\)$/.exec(v);
          if (m) o.sni = m[1];
          else c.error(at(l, i + 1), `'sni ${v}': tierlb takes a fixed name, sni str(NAME)`);
        }
        i += 2;
        continue;
      }
    }
    if (Object.hasOwn(IGNORED_SERVER_OPTS, w)) {
      c.warn(at(l, i), `server option '${w} ${l.words[i + 1] ?? ''}': ${IGNORED_SERVER_OPTS[w]}, ignored`);
      i += 2;
    } else if (IGNORED_SERVER_FLAGS.has(w)) {
      c.warn(at(l, i), `server option '${w}' is not used by tierlb, ignored`);
      i++;
    } else {
      c.error(at(l, i), `server option '${w}' is not supported by tierlb`);
      return o;
    }
  }
  return o;
}

/** `server NAME ADDR:PORT [options]` (options merged over default-server's). */
export function readServer(c: Ctx, l: Line, defaults: SrvOpts, caBase?: string): ServerLine | undefined {
  const [, name, addr] = l.words;
  if (!name || !addr) {
    c.error(at(l), `'server' needs a name and an address:port`);
    return undefined;
  }
  if (!/^[A-Za-z0-9_.:-]+$/.test(name)) {
    c.error(at(l, 1), `server name '${name}': tierlb takes letters, digits, '_', '.', ':', '-'`);
    return undefined;
  }
  const a = parseAddr(addr);
  if (typeof a === 'string') {
    c.error(at(l, 2), a);
    return undefined;
  }
  if (a.port === undefined) {
    c.error(at(l, 2), `'${addr}': tierlb needs the server's port (HAProxy would reuse the client's destination port)`);
    return undefined;
  }
  const own = readServerOpts(c, l, 3, caBase);
  return { where: at(l), name, address: hostPort(a.host, a.port), opts: { ...defaults, ...own } };
}
