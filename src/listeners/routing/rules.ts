/**
 * A listener's routing rules, compiled once per config (the worker compiles them when it builds its listeners, the
 * config check compiles them to report problems at file:line) and evaluated per request with no allocation beyond
 * the header edits it asks for:
 *
 *   http_request   in order, HAProxy `http-request` semantics: a matching redirect or deny ends the evaluation and
 *                  answers; set_header / add_header / del_header edit the request (later conditions, use_group and
 *                  the server see the edit)
 *   use_group      first match wins, else the listener's default group (HAProxy use_backend / default_backend)
 *   http_response  set_header / add_header / del_header on the server's answer; their conditions look at the
 *                  request (as it was after http_request) and at the answer's `status`
 *
 * Redirects follow HAProxy 2.6 (checked against it): `location` is sent as given; `prefix` is the prefix followed by
 * the request's path and query (a prefix of `/` gives the path and query alone; `drop_query: true` leaves the query
 * out); `scheme` is scheme://<Host as the client sent it, port included><path and query>. Codes 301, 302 (default),
 * 303, 307, 308; the answer has `content-length: 0`, `cache-control: no-cache` for 302/303.
 */
import { ListenersError } from '../errors.js';
import { type CompileOptions, compileGuard, type Predicate, type RequestView, type RuleProblem } from './conditions.js';
import type { HeaderOp } from './headers.js';

export type RawCondition = Record<string, unknown>;
interface Guarded {
  if?: RawCondition;
  unless?: RawCondition;
}
export interface RawHeaderSet {
  name: string;
  value: string;
}
export interface RawRedirect {
  scheme?: string;
  location?: string;
  prefix?: string;
  code?: 301 | 302 | 303 | 307 | 308;
  drop_query?: boolean;
}
export interface RawRequestRule extends Guarded {
  redirect?: RawRedirect;
  /** deny with this status (true = 403) */
  deny?: number | true;
  set_header?: RawHeaderSet;
  add_header?: RawHeaderSet;
  del_header?: string;
}
export interface RawUseGroup extends Guarded {
  group: string;
}
export interface RawResponseRule extends Guarded {
  set_header?: RawHeaderSet;
  add_header?: RawHeaderSet;
  del_header?: string;
}
/** What a listener carries of its rules (raw: it crosses to the workers as JSON and is compiled there). */
export interface RawRoutes {
  http_request?: RawRequestRule[];
  use_group?: RawUseGroup[];
  http_response?: RawResponseRule[];
}

export const REDIRECT_CODES = [301, 302, 303, 307, 308] as const;
const REQUEST_ACTIONS = ['redirect', 'deny', 'set_header', 'add_header', 'del_header'] as const;
const RESPONSE_ACTIONS = ['set_header', 'add_header', 'del_header'] as const;
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** fields the proxy owns (message framing, hop-by-hop): an edit would break the relay, so it is refused */
const MANAGED = new Set([
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'upgrade',
  'te',
  'trailer',
  'proxy-connection',
]);

/** What the rules decided for a request. */
export type Decision =
  | { kind: 'redirect'; status: number; location: string }
  | { kind: 'deny'; status: number }
  | {
      kind: 'forward';
      /** undefined: the default group */
      group: string | undefined;
      /** edits of the request's fields, in order (empty: none) */
      request: readonly HeaderOp[];
      /** edits of the response's fields for the server's status, in order (undefined: no http_response rules) */
      response: ((status: number) => readonly HeaderOp[]) | undefined;
    };

type RedirectSpec = { status: number; dropQuery: boolean } & (
  | { type: 'location'; value: string }
  | { type: 'prefix'; value: string }
  | { type: 'scheme'; value: string }
);
type RequestAction = { kind: 'redirect'; r: RedirectSpec } | { kind: 'deny'; status: number } | HeaderOp;
interface Compiled<A> {
  when: Predicate;
  action: A;
}

const NONE: readonly HeaderOp[] = Object.freeze([]);

function headerAction(
  rule: Record<string, unknown>,
  key: 'set_header' | 'add_header' | 'del_header',
  path: (string | number)[],
  out: RuleProblem[],
): HeaderOp | undefined {
  const v = rule[key];
  const managed = (name: string, at: (string | number)[]) => {
    if (!MANAGED.has(name.toLowerCase())) return false;
    out.push({ path: at, message: `'${name}' is the proxy's own (framing, hop-by-hop): it cannot be edited` });
    return true;
  };
  if (key === 'del_header') {
    if (typeof v !== 'string' || !TOKEN.test(v)) {
      out.push({ path: [...path, key], message: 'del_header: a field name' });
      return undefined;
    }
    if (managed(v, [...path, key])) return undefined;
    return { op: 'del', name: v, lname: v.toLowerCase(), value: '' };
  }
  const h = v as RawHeaderSet | undefined;
  if (!h || typeof h !== 'object' || typeof h.name !== 'string' || typeof h.value !== 'string') {
    out.push({ path: [...path, key], message: `${key}: { name: X-Field, value: "text" }` });
    return undefined;
  }
  if (!TOKEN.test(h.name)) {
    out.push({ path: [...path, key, 'name'], message: `'${h.name}' is not a field name` });
    return undefined;
  }
  if (managed(h.name, [...path, key, 'name'])) return undefined;
  if (/[\r\n\0]/.test(h.value)) {
    out.push({ path: [...path, key, 'value'], message: 'a field value cannot hold CR, LF or NUL' });
    return undefined;
  }
  const dyn = valueTemplate(h.value, [...path, key, 'value'], out);
  if (dyn === null) return undefined;
  const op: HeaderOp = {
    op: key === 'set_header' ? 'set' : 'add',
    name: h.name,
    lname: h.name.toLowerCase(),
    value: h.value,
  };
  if (dyn) op.dyn = dyn;
  return op;
}

/** the fetches a header value may name: `%[src]` (HAProxy's log-format sample syntax, a small part of it) */
const FETCHES: Record<string, (v: EditableView) => string> = {
  src: (v) => v.src,
  method: (v) => v.method,
  path: (v) => v.path,
  query: (v) => v.query.slice(1),
  host: (v) => v.rawHost(),
  ssl_fc: (v) => (v.tls ? '1' : '0'),
  status: (v) => (v.status === undefined ? '' : String(v.status)),
};

function fieldText(x: string | string[] | undefined): string {
  return x === undefined ? '' : typeof x === 'string' ? x : x.join(', ');
}

/**
 * A header value with `%[fetch]` parts (src, method, path, query, host, ssl_fc, status, hdr(name) / req.hdr(name);
 * `%%` is a literal %): the function that makes it for a request; undefined when the value is plain text, null
 * after a problem.
 */
function valueTemplate(
  value: string,
  path: (string | number)[],
  out: RuleProblem[],
): ((v: EditableView) => string) | undefined | null {
  if (!value.includes('%[') && !value.includes('%%')) return undefined;
  const parts: (string | ((v: EditableView) => string))[] = [];
  const re = /%%|%\[([^\]]*)\]/g;
  let last = 0;
  let bad = false;
  for (let m = re.exec(value); m; m = re.exec(value)) {
    if (m.index > last) parts.push(value.slice(last, m.index));
    last = m.index + m[0].length;
    if (m[0] === '%%') {
      parts.push('%');
      continue;
    }
    const f = m[1]!.trim();
    const hdr = /^(?:req\.)?hdr\(\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*\)$/.exec(f);
    if (hdr) {
      const name = hdr[1]!.toLowerCase();
      parts.push((v) => fieldText(v.header(name)));
    } else if (FETCHES[f]) parts.push(FETCHES[f]);
    else {
      bad = true;
      out.push({
        path,
        message: `unknown %[${f}] (value fetches: ${Object.keys(FETCHES).join(', ')}, hdr(name); %% for a %)`,
      });
    }
  }
  if (bad) return null;
  if (last < value.length) parts.push(value.slice(last));
  return (v) => {
    let s = '';
    for (const p of parts) s += typeof p === 'string' ? p : p(v);
    // a fetched value cannot break the field
    return s.replace(/[\r\n\0]/g, ' ');
  };
}

/** the one action key of a rule (problems when none or several) */
function actionOf<K extends string>(
  rule: Record<string, unknown>,
  keys: readonly K[],
  path: (string | number)[],
  out: RuleProblem[],
): K | undefined {
  const found = keys.filter((k) => rule[k] !== undefined);
  if (found.length !== 1) {
    out.push({
      path,
      message: found.length
        ? `one action per rule (found ${found.join(', ')}): split it into several rules`
        : `a rule needs one action: ${keys.join(', ')}`,
    });
    return undefined;
  }
  return found[0];
}

function redirectSpec(raw: unknown, path: (string | number)[], out: RuleProblem[]): RedirectSpec | undefined {
  const r = raw as RawRedirect | undefined;
  if (!r || typeof r !== 'object') {
    out.push({ path, message: 'redirect: { scheme|location|prefix: ..., code: 301|302|303|307|308 }' });
    return undefined;
  }
  const kinds = (['location', 'prefix', 'scheme'] as const).filter((k) => r[k] !== undefined);
  if (kinds.length !== 1) {
    out.push({ path, message: 'redirect: give exactly one of location, prefix, scheme' });
    return undefined;
  }
  const type = kinds[0]!;
  const value = r[type];
  if (typeof value !== 'string' || value === '' || /[\s\0]/.test(value)) {
    out.push({ path: [...path, type], message: `redirect ${type}: a non-empty string without spaces` });
    return undefined;
  }
  if (type === 'scheme' && !/^[a-zA-Z][a-zA-Z0-9+.-]*$/.test(value)) {
    out.push({ path: [...path, type], message: `'${value}' is not a URI scheme (e.g. https)` });
    return undefined;
  }
  const status = r.code ?? 302;
  if (!(REDIRECT_CODES as readonly number[]).includes(status)) {
    out.push({ path: [...path, 'code'], message: `redirect code ${status}: one of ${REDIRECT_CODES.join(', ')}` });
    return undefined;
  }
  return { type, value, status, dropQuery: r.drop_query === true };
}

/** The compiled rules of one listener. */
export class Router {
  private constructor(
    private readonly request: Compiled<RequestAction>[],
    private readonly groups: Compiled<string>[],
    private readonly response: Compiled<HeaderOp>[],
  ) {}

  /** true when the listener has any rule (else the worker skips building a RequestView) */
  get active(): boolean {
    return this.request.length + this.groups.length + this.response.length > 0;
  }

  /** the groups use_group may choose (the worker builds their hosts) */
  get targets(): string[] {
    return [...new Set(this.groups.map((g) => g.action))];
  }

  /**
   * Compile `routes` (problems into `out`, paths relative to the listener). `groups`: the names use_group may
   * name (unknown ones are problems).
   */
  static compile(
    routes: RawRoutes,
    opts: CompileOptions & { groups?: ReadonlySet<string> },
    out: RuleProblem[],
    at: (string | number)[] = [],
  ): Router {
    const req: Compiled<RequestAction>[] = [];
    const use: Compiled<string>[] = [];
    const res: Compiled<HeaderOp>[] = [];
    const lists = [
      ['http_request', routes.http_request],
      ['use_group', routes.use_group],
      ['http_response', routes.http_response],
    ] as const;
    for (const [key, list] of lists) {
      if (list === undefined) continue;
      if (!Array.isArray(list)) {
        out.push({ path: [...at, key], message: `${key}: a list of rules` });
        continue;
      }
      if (!opts.http && key !== 'use_group') {
        out.push({ path: [...at, key], message: `${key} needs mode: http` });
        continue;
      }
      list.forEach((rule: unknown, i: number) => {
        const p = [...at, key, i];
        if (!rule || typeof rule !== 'object') {
          out.push({ path: p, message: 'a rule is an object' });
          return;
        }
        const r = rule as Record<string, unknown>;
        const when = compileGuard(r, p, out, key === 'http_response' ? { ...opts, response: true } : opts);
        if (key === 'use_group') {
          const g = r.group;
          if (typeof g !== 'string') out.push({ path: [...p, 'group'], message: 'use_group: `group: NAME`' });
          else if (opts.groups && !opts.groups.has(g))
            out.push({
              path: [...p, 'group'],
              message: `no group '${g}' (groups: ${[...opts.groups].join(', ') || 'none'})`,
            });
          else use.push({ when, action: g });
          return;
        }
        if (key === 'http_response') {
          const a = actionOf(r, RESPONSE_ACTIONS, p, out);
          const op = a && headerAction(r, a, p, out);
          if (op) res.push({ when, action: op });
          return;
        }
        const a = actionOf(r, REQUEST_ACTIONS, p, out);
        if (a === 'redirect') {
          const spec = redirectSpec(r.redirect, [...p, 'redirect'], out);
          if (spec) req.push({ when, action: { kind: 'redirect', r: spec } });
        } else if (a === 'deny') {
          const d = r.deny;
          const status = d === true ? 403 : d;
          if (typeof status !== 'number' || !Number.isInteger(status) || status < 200 || status > 599)
            out.push({ path: [...p, 'deny'], message: 'deny: an HTTP status 200..599 (or true for 403)' });
          else req.push({ when, action: { kind: 'deny', status } });
        } else if (a) {
          const op = headerAction(r, a, p, out);
          if (op) req.push({ when, action: op });
        }
      });
    }
    return new Router(req, use, res);
  }

  /** Compile rules already checked by the config loader; throws on a problem (a bug: the loader let it through). */
  static of(routes: RawRoutes, opts: CompileOptions): Router {
    const out: RuleProblem[] = [];
    const r = Router.compile(routes, opts, out);
    if (out.length)
      throw new ListenersError(
        'EROUTES',
        `routing rules the config check let through: ${out.map((p) => `${p.path.join('.')}: ${p.message}`).join('; ')} (a bug: please report it with the config)`,
      );
    return r;
  }

  /** Decide for one request. `v` is edited by the header actions (later conditions see the edits). */
  decide(v: EditableView): Decision {
    let reqOps: HeaderOp[] | undefined;
    for (const { when, action } of this.request) {
      if (!when(v)) continue;
      if ('op' in action) {
        const op = action.dyn ? { ...action, value: action.dyn(v), dyn: undefined } : action;
        (reqOps ??= []).push(op);
        v.edit(op);
        continue;
      }
      if (action.kind === 'deny') return action;
      const r = action.r;
      const uri = r.dropQuery ? v.path : v.path + v.query;
      const location =
        r.type === 'location'
          ? r.value
          : r.type === 'prefix'
            ? r.value === '/'
              ? uri
              : r.value + uri
            : `${r.value}://${v.rawHost()}${uri}`;
      return { kind: 'redirect', status: r.status, location };
    }
    let group: string | undefined;
    for (const g of this.groups)
      if (g.when(v)) {
        group = g.action;
        break;
      }
    const response = this.response.length ? (status: number) => this.responseOps(v, status) : undefined;
    return { kind: 'forward', group, request: reqOps ?? NONE, response };
  }

  /** http_response: the edits for the server's answer with `status` to the request `v` (as http_request left it) */
  responseOps(v: EditableView, status: number): readonly HeaderOp[] {
    v.status = status;
    let ops: HeaderOp[] | undefined;
    for (const { when, action } of this.response)
      if (when(v)) (ops ??= []).push(action.dyn ? { ...action, value: action.dyn(v), dyn: undefined } : action);
    return ops ?? NONE;
  }
}

/** A RequestView the header actions can edit (./headers.ts makes one from a request). */
export interface EditableView extends RequestView {
  /** the target's query with its '?' ('' when none) */
  readonly query: string;
  /** the Host as the client sent it (after edits), port included: redirect scheme keeps it */
  rawHost(): string;
  edit(op: HeaderOp): void;
}
