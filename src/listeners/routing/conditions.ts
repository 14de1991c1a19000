/**
 * The condition language of a listener's rules (`if:` / `unless:` of http_request, use_group and http_response),
 * compiled once per config into a predicate over a RequestView — the request as HTTP/1.1 and HTTP/2 both give it
 * (method, path, host, headers, the client's address after PROXY protocol, TLS or not), never a transport object.
 *
 *   { host: [api.example.com, .example.org, "*.example.net"],   # keys are ANDed, each list is ORed
 *     path_prefix: [/v1], method: [GET, HEAD],
 *     header: { name: X-Canary, exact: ["1"] },                  # or prefix/suffix/regex: [...], or present: true
 *     src: [10.0.0.0/8, "2001:db8::/32"], tls: true, ignore_case: true,
 *     any: [cond, ...], all: [cond, ...], not: cond }
 *
 * Matching (HAProxy's ACL fetches where they exist):
 *  - host: the Host field (HTTP/2 :authority), port and a trailing dot stripped, always case-insensitive. `a.com`
 *    is exact, `.a.com` matches every name under a.com (not a.com itself; HAProxy `hdr_end(host) -i .a.com`), and
 *    `*` matches within one label (`*.a.com` = x.a.com, not x.y.a.com, as in TLS certificates).
 *  - path / path_prefix / path_suffix / path_regex: the request target's path, query excluded, not decoded (HAProxy
 *    path, path_beg, path_end, path_reg; a prefix is a plain string prefix: /api matches /apis). A regex is
 *    unanchored (JavaScript syntax).
 *  - method: exact (methods are case-sensitive).
 *  - header: the name is case-insensitive; the value is each comma-separated element of every occurrence of the
 *    field (HAProxy hdr()); `present: true` = the field is there. A list of header objects is ANDed.
 *  - src: CIDRs or addresses (IPv4, IPv6; an IPv4-mapped IPv6 client matches IPv4 CIDRs).
 *  - tls: whether the client connection is TLS (HAProxy ssl_fc).
 *  - status (http_response rules only): the server's status, codes, ranges ("500:599") or classes ("5xx"). The
 *    other keys of an http_response condition read the request (as http_request left it), not the response.
 *  - ignore_case: the string matchers of this object compare case-insensitively (HAProxy -i); not inherited by
 *    nested any/all/not.
 * Problems are collected with the path of the offending key, so the config loader reports them at file:line.
 */
import net from 'node:net';

/** The request as the rules see it (built per request by the worker; the same for HTTP/1.1 and HTTP/2). */
export interface RequestView {
  method: string;
  /** the target's path, without the query */
  path: string;
  /** the Host (or :authority), lower case, without port or trailing dot ('' when absent) */
  host: string;
  /** a field by lower-case name (node:http's req.headers shape) */
  header(name: string): string | string[] | undefined;
  /** the client's address (after accept_proxy: the PROXY header's source) */
  src: string;
  tls: boolean;
  /** the server's status (http_response rules only; undefined while the request is routed) */
  status?: number;
}

export type Predicate = (v: RequestView) => boolean;
export type RulePath = (string | number)[];
export interface RuleProblem {
  path: RulePath;
  message: string;
}

/** condition keys that need an HTTP request (a tcp listener may use src, tls and the combinators only) */
export const HTTP_KEYS = ['host', 'path', 'path_prefix', 'path_suffix', 'path_regex', 'method', 'header'] as const;
const KEYS = [...HTTP_KEYS, 'src', 'tls', 'status', 'ignore_case', 'any', 'all', 'not'] as const;

export interface CompileOptions {
  /** false: a tcp listener (no request to look at) */
  http: boolean;
  /** http_response rules: `status` may be matched */
  response?: boolean;
}

const TRUE: Predicate = () => true;

/** `Host` value → what host conditions compare: lower case, no port, no trailing dot. */
export function normalizeHost(h: string | undefined): string {
  if (!h) return '';
  let s = h.trim().toLowerCase();
  if (s.startsWith('[')) {
    const end = s.indexOf(']');
    s = end > 0 ? s.slice(0, end + 1) : s;
  } else {
    const colon = s.indexOf(':');
    // one colon: host:port (a bare IPv6 address has several)
    if (colon >= 0 && s.indexOf(':', colon + 1) < 0) s = s.slice(0, colon);
  }
  if (s.endsWith('.')) s = s.slice(0, -1);
  return s;
}

/** The path of a request target (origin form `/a?b`, absolute form `http://h/a?b`, `*`). */
export function targetPath(url: string): string {
  let p = url;
  if (p.charCodeAt(0) !== 47 /* / */) {
    const m = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^/?#]*/.exec(p);
    if (m) p = p.slice(m[0].length) || '/';
  }
  const q = p.indexOf('?');
  return q < 0 ? p : p.slice(0, q);
}

function strings(raw: unknown, path: RulePath, out: RuleProblem[]): string[] | undefined {
  const list = typeof raw === 'string' ? [raw] : raw;
  if (!Array.isArray(list) || list.some((x) => typeof x !== 'string')) {
    out.push({ path, message: 'expected a string or a list of strings' });
    return undefined;
  }
  if (list.length === 0) {
    out.push({ path, message: 'an empty list matches nothing: give at least one value, or drop the key' });
    return undefined;
  }
  return list as string[];
}

function regexes(list: string[], flags: string, path: RulePath, out: RuleProblem[]): RegExp[] | undefined {
  const res: RegExp[] = [];
  let ok = true;
  list.forEach((src, i) => {
    try {
      res.push(new RegExp(src, flags));
    } catch (e) {
      ok = false;
      out.push({ path: [...path, i], message: `bad regex /${src}/: ${(e as Error).message}` });
    }
  });
  return ok ? res : undefined;
}

/** A string matcher (exact / prefix / suffix / regex) over one value. */
function stringMatcher(
  kind: 'exact' | 'prefix' | 'suffix' | 'regex',
  list: string[],
  icase: boolean,
  path: RulePath,
  out: RuleProblem[],
): ((s: string) => boolean) | undefined {
  if (kind === 'regex') {
    const rs = regexes(list, icase ? 'i' : '', path, out);
    return rs && ((s) => rs.some((r) => r.test(s)));
  }
  const pats = icase ? list.map((x) => x.toLowerCase()) : list;
  const norm = icase ? (s: string) => s.toLowerCase() : (s: string) => s;
  if (kind === 'exact') {
    const set = new Set(pats);
    return (s) => set.has(norm(s));
  }
  if (kind === 'prefix') return (s) => pats.some((p) => norm(s).startsWith(p));
  return (s) => pats.some((p) => norm(s).endsWith(p));
}

function hostMatcher(list: string[], path: RulePath, out: RuleProblem[]): (h: string) => boolean {
  const exact = new Set<string>();
  const suffixes: string[] = [];
  const wild: RegExp[] = [];
  list.forEach((raw, i) => {
    const p = raw.trim().toLowerCase();
    if (!p || /[\s/]/.test(p)) {
      out.push({ path: [...path, i], message: `'${raw}' is not a host name or pattern` });
      return;
    }
    if (p.includes('*')) {
      const esc = p.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^.]*');
      wild.push(new RegExp(`^${esc}$`));
    } else if (p.startsWith('.')) suffixes.push(p);
    else exact.add(normalizeHost(p));
  });
  return (h) => exact.has(h) || suffixes.some((s) => h.endsWith(s)) || wild.some((r) => r.test(h));
}

/** IPv4-mapped IPv6 (::ffff:10.0.0.1) → the IPv4 address */
function plainAddress(a: string): string {
  return a.startsWith('::ffff:') && net.isIPv4(a.slice(7)) ? a.slice(7) : a;
}

/** Parse `addr` or `addr/len`; a problem (with the fix) when it is neither. */
export function parseCidr(s: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | string {
  const [addr = '', len, extra] = s.trim().split('/');
  const v = net.isIP(addr);
  if (extra !== undefined || v === 0) return `'${s}' is not an address or CIDR (e.g. 10.0.0.0/8, 2001:db8::/32)`;
  const max = v === 4 ? 32 : 128;
  const prefix = len === undefined ? max : /^\d{1,3}$/.test(len) ? Number(len) : Number.NaN;
  if (!(prefix >= 0 && prefix <= max)) return `'${s}': prefix length must be 0..${max}`;
  return { address: addr, prefix, family: v === 4 ? 'ipv4' : 'ipv6' };
}

function srcMatcher(list: string[], path: RulePath, out: RuleProblem[]): ((a: string) => boolean) | undefined {
  const bl = new net.BlockList();
  let ok = true;
  list.forEach((s, i) => {
    const c = parseCidr(s);
    if (typeof c === 'string') {
      ok = false;
      out.push({ path: [...path, i], message: c });
    } else bl.addSubnet(c.address, c.prefix, c.family);
  });
  if (!ok) return undefined;
  return (a) => {
    const p = plainAddress(a);
    const v = net.isIP(p);
    return v !== 0 && bl.check(p, v === 4 ? 'ipv4' : 'ipv6');
  };
}

/** `status: [404, "500:599", 3xx]`: codes, inclusive ranges, classes */
function statusMatcher(raw: unknown, path: RulePath, out: RuleProblem[]): ((s: number) => boolean) | undefined {
  const list = Array.isArray(raw) ? raw : [raw];
  const ranges: [number, number][] = [];
  let ok = list.length > 0;
  list.forEach((x, i) => {
    const s = String(x).trim();
    const m = /^(\d{3})(?::(\d{3}))?$/.exec(s) ?? /^([1-5])xx$/i.exec(s);
    if (!m || (typeof x !== 'number' && typeof x !== 'string')) {
      ok = false;
      out.push({ path: [...path, i], message: `'${s}' is not a status, a range (500:599) or a class (5xx)` });
    } else if (s.length === 3 && /xx$/i.test(s)) ranges.push([Number(m[1]) * 100, Number(m[1]) * 100 + 99]);
    else ranges.push([Number(m[1]), Number(m[2] ?? m[1])]);
  });
  if (!ok) {
    if (list.length === 0) out.push({ path, message: 'status: at least one code' });
    return undefined;
  }
  return (s) => ranges.some(([a, b]) => s >= a && s <= b);
}

/** every comma-separated element of every occurrence of a field */
function elements(v: string | string[] | undefined): string[] {
  if (v === undefined) return [];
  const all = typeof v === 'string' ? [v] : v;
  const out: string[] = [];
  for (const x of all) for (const e of x.split(',')) out.push(e.trim());
  return out;
}

const HEADER_MATCH = ['exact', 'prefix', 'suffix', 'regex'] as const;

function headerCond(raw: unknown, icase: boolean, path: RulePath, out: RuleProblem[]): Predicate | undefined {
  if (Array.isArray(raw)) {
    const ps = raw.map((h, i) => headerCond(h, icase, [...path, i], out));
    if (ps.some((p) => !p)) return undefined;
    return (v) => ps.every((p) => p!(v));
  }
  if (!raw || typeof raw !== 'object') {
    out.push({ path, message: 'header: expected { name: X, exact|prefix|suffix|regex: [...] | present: true }' });
    return undefined;
  }
  const h = raw as Record<string, unknown>;
  for (const k of Object.keys(h))
    if (k !== 'name' && k !== 'present' && !(HEADER_MATCH as readonly string[]).includes(k))
      out.push({ path: [...path, k], message: `unknown key '${k}' (name, exact, prefix, suffix, regex, present)` });
  if (typeof h.name !== 'string' || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(h.name)) {
    out.push({ path: [...path, 'name'], message: 'header: `name` must be a field name' });
    return undefined;
  }
  const name = h.name.toLowerCase();
  const kinds = HEADER_MATCH.filter((k) => h[k] !== undefined);
  if (h.present !== undefined) {
    if (kinds.length || typeof h.present !== 'boolean') {
      out.push({ path: [...path, 'present'], message: 'present: true|false, without exact/prefix/suffix/regex' });
      return undefined;
    }
    const want = h.present;
    return (v) => (v.header(name) !== undefined) === want;
  }
  if (kinds.length !== 1) {
    out.push({ path, message: 'header: give exactly one of exact, prefix, suffix, regex (or present: true)' });
    return undefined;
  }
  const kind = kinds[0]!;
  const list = strings(h[kind], [...path, kind], out);
  const m = list && stringMatcher(kind, list, icase, [...path, kind], out);
  if (!m) return undefined;
  return (v) => elements(v.header(name)).some(m);
}

/**
 * Compile one condition. Problems go to `out` (with paths under `path`); the predicate returned is then
 * meaningless (the config is refused).
 */
export function compileCondition(raw: unknown, path: RulePath, out: RuleProblem[], opts: CompileOptions): Predicate {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) {
    out.push({ path, message: `a condition is an object of ${KEYS.join(', ')}` });
    return TRUE;
  }
  const c = raw as Record<string, unknown>;
  const icase = c.ignore_case === true;
  if (c.ignore_case !== undefined && typeof c.ignore_case !== 'boolean')
    out.push({ path: [...path, 'ignore_case'], message: 'ignore_case: true or false' });
  const parts: Predicate[] = [];
  for (const [k, v] of Object.entries(c)) {
    const p = [...path, k];
    if (!(KEYS as readonly string[]).includes(k)) {
      out.push({ path: p, message: `unknown condition '${k}' (${KEYS.join(', ')})` });
      continue;
    }
    if (!opts.http && (HTTP_KEYS as readonly string[]).includes(k)) {
      out.push({ path: p, message: `'${k}' needs mode: http (a tcp listener can match src and tls)` });
      continue;
    }
    switch (k) {
      case 'host': {
        const list = strings(v, p, out);
        if (list) {
          const m = hostMatcher(list, p, out);
          parts.push((r) => m(r.host));
        }
        break;
      }
      case 'path':
      case 'path_prefix':
      case 'path_suffix':
      case 'path_regex': {
        const kind = k === 'path' ? 'exact' : k === 'path_prefix' ? 'prefix' : k === 'path_suffix' ? 'suffix' : 'regex';
        const list = strings(v, p, out);
        const m = list && stringMatcher(kind, list, icase, p, out);
        if (m) parts.push((r) => m(r.path));
        break;
      }
      case 'method': {
        const list = strings(v, p, out);
        const m = list && stringMatcher('exact', list, icase, p, out);
        if (m) parts.push((r) => m(r.method));
        break;
      }
      case 'header': {
        const m = headerCond(v, icase, p, out);
        if (m) parts.push(m);
        break;
      }
      case 'src': {
        const list = strings(v, p, out);
        const m = list && srcMatcher(list, p, out);
        if (m) parts.push((r) => m(r.src));
        break;
      }
      case 'status': {
        if (!opts.response) {
          out.push({ path: p, message: 'status: only in http_response rules (the server has not answered yet)' });
          break;
        }
        const m = statusMatcher(v, p, out);
        if (m) parts.push((r) => r.status !== undefined && m(r.status));
        break;
      }
      case 'tls':
        if (typeof v !== 'boolean') out.push({ path: p, message: 'tls: true or false' });
        else parts.push((r) => r.tls === v);
        break;
      case 'any':
      case 'all': {
        if (!Array.isArray(v) || v.length === 0) {
          out.push({ path: p, message: `${k}: a non-empty list of conditions` });
          break;
        }
        const subs = v.map((x, i) => compileCondition(x, [...p, i], out, opts));
        parts.push(k === 'any' ? (r) => subs.some((s) => s(r)) : (r) => subs.every((s) => s(r)));
        break;
      }
      case 'not': {
        const sub = compileCondition(v, p, out, opts);
        parts.push((r) => !sub(r));
        break;
      }
    }
  }
  if (parts.length === 0) return TRUE;
  if (parts.length === 1) return parts[0]!;
  return (r) => {
    for (const p of parts) if (!p(r)) return false;
    return true;
  };
}

/** `if` and `unless` of a rule → one predicate (both absent: always). */
export function compileGuard(
  rule: { if?: unknown; unless?: unknown },
  path: RulePath,
  out: RuleProblem[],
  opts: CompileOptions,
): Predicate {
  const yes = rule.if === undefined ? undefined : compileCondition(rule.if, [...path, 'if'], out, opts);
  const no = rule.unless === undefined ? undefined : compileCondition(rule.unless, [...path, 'unless'], out, opts);
  if (yes && no) return (r) => yes(r) && !no(r);
  if (yes) return yes;
  if (no) return (r) => !no(r);
  return TRUE;
}
