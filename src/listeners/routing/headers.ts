/**
 * Header edits of the routing rules (set_header / add_header / del_header) and the RequestView the rules read,
 * built from a request as node:http (HTTP/1.1) or node:http2's compatibility API gives it: method, url, headers.
 *
 *  - set: every occurrence of the field is removed, then `name: value` added (HAProxy set-header);
 *  - add: `name: value` added after the others (add-header);
 *  - del: every occurrence removed (del-header); names compare case-insensitively.
 * Edits of the request apply to the fields the server gets (flat [name, value, ...], after the hop-by-hop fields
 * are dropped and forwardfor's are added), edits of the response to the server's answer before it is relayed.
 */
import { normalizeHost, targetPath } from './conditions.js';
import type { EditableView } from './rules.js';

export interface HeaderOp {
  op: 'set' | 'add' | 'del';
  /** as configured (the case the field is sent with) */
  name: string;
  /** lower case */
  lname: string;
  /** '' for del; the template as written when `dyn` makes the value */
  value: string;
  /** a value with %[fetch] parts: made per request (./rules.ts) */
  dyn?: (v: EditableView) => string;
}

/** Apply `ops` in order to flat fields; returns the fields (a new array when anything was removed). */
export function applyHeaderOps(fields: string[], ops: readonly HeaderOp[]): string[] {
  let out = fields;
  for (const o of ops) {
    if (o.op !== 'add') {
      const kept: string[] = [];
      for (let i = 0; i < out.length; i += 2)
        if (out[i]!.length !== o.lname.length || out[i]!.toLowerCase() !== o.lname) kept.push(out[i]!, out[i + 1]!);
      out = kept;
    }
    if (o.op !== 'del') out.push(o.name, o.value);
  }
  return out;
}

/** Apply `ops` to a node:http-style headers object (lower-case names), in place: an upgrade's request. */
export function applyHeaderOpsToObject(h: Record<string, string | string[] | undefined>, ops: readonly HeaderOp[]) {
  for (const o of ops) {
    const cur = h[o.lname];
    if (o.op === 'del') delete h[o.lname];
    else if (o.op === 'set' || cur === undefined) h[o.lname] = o.value;
    else h[o.lname] = Array.isArray(cur) ? [...cur, o.value] : `${cur}, ${o.value}`;
  }
}

/** What the view needs of a request (an http.IncomingMessage or an Http2ServerRequest). */
export interface RequestLike {
  readonly method?: string;
  readonly url?: string;
  readonly headers: Record<string, string | string[] | undefined>;
}

type Headers = Record<string, string | string[] | undefined>;

function hostField(h: Headers): string {
  const v = h.host ?? h[':authority'];
  return (Array.isArray(v) ? v[0] : v) ?? '';
}

/** The rules' view of a request; header edits copy the fields once (the request itself is not touched). */
export class HttpRequestView implements EditableView {
  readonly method: string;
  readonly path: string;
  readonly query: string;
  host: string;
  status: number | undefined = undefined;
  private h: Headers;
  private copied = false;

  constructor(
    req: RequestLike,
    readonly src: string,
    readonly tls: boolean,
  ) {
    this.method = req.method ?? 'GET';
    const url = req.url ?? '/';
    this.path = targetPath(url);
    const q = url.indexOf('?');
    this.query = q < 0 ? '' : url.slice(q);
    this.h = req.headers;
    this.host = normalizeHost(hostField(this.h));
  }

  header(name: string): string | string[] | undefined {
    return this.h[name];
  }

  rawHost(): string {
    return hostField(this.h);
  }

  edit(op: HeaderOp): void {
    if (!this.copied) {
      this.h = { ...this.h };
      this.copied = true;
    }
    applyHeaderOpsToObject(this.h, [op]);
    if (op.lname === 'host') this.host = normalizeHost(hostField(this.h));
  }
}
