/**
 * HAProxy ACLs and conditions → tierlb's condition language (the listener `if:` / `unless:` objects: keys ANDed,
 * lists ORed, `any`/`all`/`not`). An `acl NAME CRITERION [flags] VALUES...` line is one condition (its values ORed);
 * several lines with the same name are ORed (`any`). A rule's condition `A B || !C { path_beg /x }` is an OR of ANDs
 * of (possibly negated) named or anonymous ACLs, AND binding tighter than OR, as in HAProxy.
 *
 * Criteria: hdr(host) and hdr_beg/hdr_end/hdr_reg/hdr_sub/hdr_dom of any header (req.hdr too), path, path_beg,
 * path_end, path_reg, path_sub, src, method, ssl_fc, with -i, -m str|beg|end|reg|sub|found, -f FILE. Others are
 * refused with the line: ignoring a condition would send requests elsewhere.
 */
import type { Ctx } from './ctx.js';
import { at, type Line, type Where } from './tokenize.js';

/** A condition object of the listener schema. */
export type Cond = Record<string, unknown>;

/** Always true / always false, in the language's own terms (every address is in 0.0.0.0/0 or ::/0). */
export const TRUE: Cond = { src: ['0.0.0.0/0', '::/0'] };
export const FALSE: Cond = { not: TRUE };

/** HAProxy's predefined ACLs that tierlb can express. */
const PREDEFINED: Record<string, Cond> = {
  TRUE,
  FALSE,
  LOCALHOST: { src: ['127.0.0.1/8', '::1/128'] },
  METH_CONNECT: { method: ['CONNECT'] },
  METH_DELETE: { method: ['DELETE'] },
  METH_GET: { method: ['GET', 'HEAD'] },
  METH_HEAD: { method: ['HEAD'] },
  METH_OPTIONS: { method: ['OPTIONS'] },
  METH_POST: { method: ['POST'] },
  METH_PUT: { method: ['PUT'] },
  METH_TRACE: { method: ['TRACE'] },
};

export class Acls {
  private readonly named = new Map<string, Cond[]>();

  constructor(private readonly c: Ctx) {}

  /** `acl NAME CRITERION [flags] [VALUES...]` */
  define(l: Line): void {
    const name = l.words[1];
    if (!name || !/^[A-Za-z0-9_.:-]+$/.test(name)) {
      this.c.error(at(l, 1), `'acl' needs a name (letters, digits, '_', '.', ':', '-')`);
      return;
    }
    if (name in PREDEFINED) {
      this.c.error(at(l, 1), `acl '${name}' would redefine HAProxy's predefined ACL of that name`);
      return;
    }
    const cond = criterion(this.c, l, 2, l.words.length);
    if (!cond) return;
    const list = this.named.get(name) ?? [];
    list.push(cond);
    this.named.set(name, list);
  }

  private byName(name: string, w: Where): Cond | undefined {
    const list = this.named.get(name);
    if (list) return list.length === 1 ? list[0] : { any: list };
    if (Object.hasOwn(PREDEFINED, name)) return PREDEFINED[name];
    this.c.error(w, `no ACL named '${name}' is declared before this line`);
    return undefined;
  }

  /**
   * The condition after `if`/`unless` at l.words[from..]: `{ if: cond }` or `{ unless: cond }`; `{}` when there is
   * none; undefined after an error. `from` is the index of `if`/`unless` (or past the end).
   */
  condition(
    l: Line,
    from: number,
    context: 'request' | 'response' = 'request',
  ): { if?: Cond; unless?: Cond } | undefined {
    const kw = l.words[from];
    if (kw === undefined) return {};
    if (kw !== 'if' && kw !== 'unless') {
      this.c.error(at(l, from), `expected 'if' or 'unless', got '${kw}'`);
      return undefined;
    }
    const ors: Cond[][] = [[]];
    let i = from + 1;
    if (i >= l.words.length) {
      this.c.error(at(l, from), `'${kw}' needs a condition`);
      return undefined;
    }
    while (i < l.words.length) {
      let w = l.words[i];
      if (w === '||' || w === 'or') {
        if (ors[ors.length - 1].length === 0) {
          this.c.error(at(l, i), `'${w}' without a condition before it`);
          return undefined;
        }
        ors.push([]);
        i++;
        continue;
      }
      let neg = false;
      if (w === '!') {
        neg = true;
        i++;
        w = l.words[i];
        if (w === undefined) {
          this.c.error(at(l, i - 1), `'!' without a condition after it`);
          return undefined;
        }
      } else if (w.startsWith('!')) {
        neg = true;
        w = w.slice(1);
      }
      let cond: Cond | undefined;
      if (w === '{') {
        let close = i + 1;
        while (close < l.words.length && l.words[close] !== '}') close++;
        if (close >= l.words.length) {
          this.c.error(at(l, i), `anonymous ACL '{' without its '}'`);
          return undefined;
        }
        cond = criterion(this.c, l, i + 1, close);
        i = close + 1;
      } else {
        cond = this.byName(w, at(l, i));
        i++;
      }
      if (!cond) return undefined;
      ors[ors.length - 1].push(neg ? { not: cond } : cond);
    }
    if (ors[ors.length - 1].length === 0) {
      this.c.error(at(l, l.words.length - 1), `condition ends with '||'`);
      return undefined;
    }
    const ands = ors.map((a) => (a.length === 1 ? a[0] : { all: a }));
    const cond = ands.length === 1 ? ands[0] : { any: ands };
    // what each side of the exchange can look at: a request rule has no status yet; on the response HAProxy's
    // hdr() is the response's header, which tierlb's conditions do not see
    const keys = keysOf(cond);
    const bad =
      context === 'request'
        ? keys.filter((k) => k === 'status')
        : keys.filter((k) => !['status', 'src', 'tls', 'any', 'all', 'not', 'ignore_case'].includes(k));
    if (bad.length > 0) {
      this.c.error(
        at(l, from),
        context === 'request'
          ? 'a request rule cannot look at the response status'
          : `an http-response condition on ${[...new Set(bad)].join(', ')}: tierlb's response rules look at status, src and ssl_fc only (HAProxy would read the response's headers there)`,
      );
      return undefined;
    }
    return kw === 'if' ? { if: cond } : { unless: cond };
  }
}

/** Every key of a condition, nested ones included. */
function keysOf(c: Cond): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(c)) {
    out.push(k);
    if (k === 'not') out.push(...keysOf(v as Cond));
    if (k === 'any' || k === 'all') for (const x of v as Cond[]) out.push(...keysOf(x));
  }
  return out;
}

/** `status` values: N, N:M, and HAProxy's integer operators (eq, ge, gt, le, lt) → the schema's codes and ranges. */
function statusValues(values: string[]): (number | string)[] | string {
  const out: (number | string)[] = [];
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    const op = ['eq', 'ge', 'gt', 'le', 'lt'].includes(v) ? v : undefined;
    const n = op ? values[++i] : v;
    if (n === undefined || !/^\d{3}(:\d{3})?$/.test(n) || (op && n.includes(':')))
      return `'${op ? `${op} ` : ''}${n ?? ''}' is not a status (NNN, NNN:NNN, or eq|ge|gt|le|lt NNN)`;
    if (!op || op === 'eq') out.push(n.includes(':') ? n : Number(n));
    else {
      const x = Number(n);
      const [lo, hi] = op === 'ge' ? [x, 599] : op === 'gt' ? [x + 1, 599] : op === 'le' ? [100, x] : [100, x - 1];
      out.push(`${lo}:${hi}`);
    }
  }
  return out;
}

/** `10.0.0.1`, `10.0.0.0/8`, `10.0.0.0/255.0.0.0` (HAProxy takes netmasks), `::1`, `fd00::/8` → a CIDR. */
function srcCidr(v: string): string | undefined {
  const m = /^([0-9a-fA-F:.]+)(?:\/([0-9.]+))?$/.exec(v);
  if (!m) return undefined;
  const [, addr, mask] = m;
  if (addr.includes(':')) return mask === undefined ? `${addr}/128` : /^\d{1,3}$/.test(mask) ? v : undefined;
  if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(addr)) return undefined;
  if (mask === undefined) return `${addr}/32`;
  if (/^\d{1,2}$/.test(mask)) return v;
  const octets = mask.split('.').map(Number);
  if (octets.length !== 4 || octets.some((o) => !(o >= 0 && o <= 255))) return undefined;
  const bits = octets.map((o) => o.toString(2).padStart(8, '0')).join('');
  if (!/^1*0*$/.test(bits)) return undefined;
  return `${addr}/${bits.indexOf('0') < 0 ? 32 : bits.indexOf('0')}`;
}

type Match = 'str' | 'beg' | 'end' | 'reg' | 'sub' | 'dom' | 'found';

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/** `CRITERION [flags] VALUES` at l.words[from..to) → one condition, or undefined after an error. */
export function criterion(c: Ctx, l: Line, from: number, to: number): Cond | undefined {
  const crit = l.words[from];
  if (crit === undefined || from >= to) {
    c.error(at(l, Math.max(0, from - 1)), 'an ACL needs a criterion (hdr(host), path_beg, src, ...)');
    return undefined;
  }
  const m = /^(?:req\.)?([a-z_]+)(?:\(([^)]*)\))?$/.exec(crit);
  if (!m) {
    c.error(at(l, from), `'${crit}' is not an ACL criterion`);
    return undefined;
  }
  const [, fetch, arg] = m;
  let icase = false;
  let match: Match | undefined;
  const values: string[] = [];
  let i = from + 1;
  for (; i < to; i++) {
    const w = l.words[i];
    if (w === '--') {
      i++;
      break;
    }
    if (!w.startsWith('-') || w === '-') break;
    if (w === '-i') icase = true;
    else if (w === '-m') {
      const meth = l.words[++i];
      if (!['str', 'beg', 'end', 'reg', 'sub', 'dom', 'found'].includes(meth ?? '')) {
        c.error(at(l, i - 1), `'-m ${meth ?? ''}': tierlb matches with str, beg, end, reg, sub, dom or found`);
        return undefined;
      }
      match = meth as Match;
    } else if (w === '-f') {
      const file = l.words[++i];
      if (file === undefined) {
        c.error(at(l, i - 1), `'-f' needs a file`);
        return undefined;
      }
      try {
        for (const v of c.readFile(file).split('\n')) {
          const t = v.trim();
          if (t && !t.startsWith('#')) values.push(t);
        }
      } catch (e) {
        c.error(at(l, i), `cannot read ACL file ${file}: ${(e as NodeJS.ErrnoException).code ?? e}`);
        return undefined;
      }
    } else if (w === '-n') {
      // no DNS resolution: tierlb never resolves ACL values
    } else {
      c.error(at(l, i), `ACL flag '${w}' is not supported by tierlb (-i, -m, -f, -n, --)`);
      return undefined;
    }
  }
  values.push(...l.words.slice(i, to));
  const w = at(l, from);
  const str = (kind: Match, key: { exact: string; prefix: string; suffix: string; regex: string }) => {
    switch (kind) {
      case 'str':
        return { [key.exact]: values };
      case 'beg':
        return { [key.prefix]: values };
      case 'end':
        return { [key.suffix]: values };
      case 'reg':
        for (const v of values) {
          try {
            new RegExp(v);
          } catch (e) {
            c.error(w, `'${v}': not a regular expression tierlb can run (${(e as Error).message})`);
            return undefined;
          }
        }
        return { [key.regex]: values };
      case 'sub':
        return { [key.regex]: values.map(escapeRe) };
      case 'dom':
        return { [key.regex]: values.map((v) => `(^|[./?#:])${escapeRe(v)}($|[./?#:])`) };
      default:
        return undefined;
    }
  };
  const needValues = (what: string): boolean => {
    if (values.length > 0) return true;
    c.error(w, `ACL '${crit}' needs at least one ${what}`);
    return false;
  };
  const withCase = (o: Cond | undefined): Cond | undefined => (o && icase ? { ...o, ignore_case: true } : o);
  switch (fetch) {
    case 'hdr':
    case 'hdr_beg':
    case 'hdr_end':
    case 'hdr_reg':
    case 'hdr_sub':
    case 'hdr_dom': {
      const name = (arg ?? '').split(',')[0].trim();
      if (!name) {
        c.error(w, `'${crit}': tierlb needs the header name (hdr(host), hdr(x-foo))`);
        return undefined;
      }
      if ((arg ?? '').includes(',')) {
        c.error(w, `'${crit}': header occurrence positions are not supported by tierlb`);
        return undefined;
      }
      const kind: Match = fetch === 'hdr' ? (match ?? 'str') : (fetch.slice(4) as Match);
      if (kind === 'found') {
        if (values.length > 0) c.error(w, `'-m found' takes no values`);
        return { header: { name, present: true } };
      }
      if (!needValues('value')) return undefined;
      // the Host field, case-insensitively: tierlb's host matcher (it reads HTTP/2's :authority too, and leaves a
      // port out of the comparison); a name under a domain (hdr_end(host) -i .a.com) likewise
      const plain = (v: string) => /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(v);
      if (name.toLowerCase() === 'host' && icase) {
        if (kind === 'str' && values.every(plain)) return { host: values };
        if (kind === 'end' && values.every((v) => v.startsWith('.') && plain(v.slice(1)))) return { host: values };
      }
      const h = str(kind, { exact: 'exact', prefix: 'prefix', suffix: 'suffix', regex: 'regex' });
      return h && withCase({ header: { name, ...h } });
    }
    case 'path':
    case 'path_beg':
    case 'path_end':
    case 'path_reg':
    case 'path_sub': {
      if (arg !== undefined) break;
      const kind: Match = fetch === 'path' ? (match ?? 'str') : (fetch.slice(5) as Match);
      if (kind === 'found' || kind === 'dom') {
        c.error(w, `'${crit} -m ${kind}' is not supported by tierlb`);
        return undefined;
      }
      if (!needValues('path')) return undefined;
      return withCase(str(kind, { exact: 'path', prefix: 'path_prefix', suffix: 'path_suffix', regex: 'path_regex' }));
    }
    case 'src': {
      if (arg !== undefined || match) break;
      if (!needValues('address')) return undefined;
      const cidrs: string[] = [];
      for (const v of values) {
        const cidr = srcCidr(v);
        if (!cidr) {
          c.error(w, `'${v}' is not an address, a CIDR or an address/netmask`);
          return undefined;
        }
        cidrs.push(cidr);
      }
      return { src: cidrs };
    }
    case 'method': {
      if (arg !== undefined || match) break;
      if (!needValues('method')) return undefined;
      return { method: icase ? values.map((v) => v.toUpperCase()) : values };
    }
    case 'ssl_fc': {
      if (arg !== undefined || match) break;
      if (values.length > 0) {
        c.error(w, `'ssl_fc' is a boolean: it takes no values`);
        return undefined;
      }
      return { tls: true };
    }
    case 'status': {
      if (arg !== undefined || match) break;
      if (!needValues('status')) return undefined;
      const st = statusValues(values);
      if (typeof st === 'string') {
        c.error(w, st);
        return undefined;
      }
      return { status: st };
    }
    case 'always_true':
      return TRUE;
    case 'always_false':
      return FALSE;
  }
  c.error(
    w,
    `ACL criterion '${crit}' is not supported by tierlb (hdr(NAME), hdr_beg/end/reg/sub/dom, path, path_beg/end/reg/sub, src, method, ssl_fc)`,
  );
  return undefined;
}
