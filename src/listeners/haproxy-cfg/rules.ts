/**
 * The rules of a frontend: `http-request redirect|set-header|add-header|del-header|deny`, `redirect` (the proxy
 * keyword), `http-response set-header|add-header|del-header` → the listener's http_request / http_response rules.
 */
import type { Acls } from './acl.js';
import { type Ctx, headerFormat, literalFormat } from './ctx.js';
import { at, type Line } from './tokenize.js';

/** A rule of the listener schema (`http_request`, `http_response`), with its condition. */
export type Rule = Record<string, unknown>;

/** `redirect scheme|location|prefix VALUE [code N] [if|unless cond]` from l.words[from] (the type). */
export function redirectRule(c: Ctx, l: Line, from: number, acls: Acls): Rule | undefined {
  const type = l.words[from];
  if (type !== 'scheme' && type !== 'location' && type !== 'prefix') {
    c.error(at(l, from), `'redirect ${type ?? ''}': scheme, location or prefix`);
    return undefined;
  }
  const value = literalFormat(c, l, from + 1);
  if (value === undefined) return undefined;
  let code: number | undefined; // HAProxy's default, 302, is tierlb's
  let dropQuery = false;
  let i = from + 2;
  while (i < l.words.length && l.words[i] !== 'if' && l.words[i] !== 'unless') {
    const w = l.words[i];
    if (w === 'code') {
      const n = c.int(l, i + 1, 301, 308);
      if (n === undefined) return undefined;
      if (![301, 302, 303, 307, 308].includes(n)) {
        c.error(at(l, i + 1), `redirect code ${n}: 301, 302, 303, 307 or 308`);
        return undefined;
      }
      code = n;
      i += 2;
    } else if (w === 'drop-query') {
      dropQuery = true;
      i++;
    } else {
      c.refused(l, `redirect option '${w}'`, i);
      return undefined;
    }
  }
  const cond = acls.condition(l, i);
  if (!cond) return undefined;
  return {
    redirect: { [type]: value, ...(code ? { code } : {}), ...(dropQuery ? { drop_query: true } : {}) },
    ...cond,
  };
}

function headerName(c: Ctx, l: Line, i: number): string | undefined {
  const n = l.words[i];
  if (!n || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(n)) {
    c.error(at(l, Math.min(i, l.words.length - 1)), `'${l.words.slice(0, 2).join(' ')}' needs a header name`);
    return undefined;
  }
  return n;
}

function headerRule(c: Ctx, l: Line, acls: Acls, context: 'request' | 'response'): Rule | undefined {
  const act = l.words[1];
  const name = headerName(c, l, 2);
  if (!name) return undefined;
  if (act === 'del-header') {
    if (l.words[3] === '-m') {
      c.refused(l, 'del-header -m: tierlb deletes the header by its exact name', 3);
      return undefined;
    }
    const cond = acls.condition(l, 3, context);
    return cond && { del_header: name, ...cond };
  }
  const value = headerFormat(c, l, 3);
  if (value === undefined) return undefined;
  const cond = acls.condition(l, 4, context);
  return cond && { [act === 'set-header' ? 'set_header' : 'add_header']: { name, value }, ...cond };
}

export function httpRequestRule(c: Ctx, l: Line, acls: Acls): Rule | undefined {
  const act = l.words[1];
  switch (act) {
    case 'redirect':
      return redirectRule(c, l, 2, acls);
    case 'set-header':
    case 'add-header':
    case 'del-header':
      return headerRule(c, l, acls, 'request');
    case 'deny': {
      let status: number | true = true;
      let i = 2;
      if (l.words[i] === 'deny_status' || l.words[i] === 'status') {
        const n = c.int(l, i + 1, 200, 599);
        if (n === undefined) return undefined;
        status = n;
        i += 2;
      }
      if (i < l.words.length && l.words[i] !== 'if' && l.words[i] !== 'unless') {
        c.refused(l, `deny option '${l.words[i]}': tierlb answers its own page with the status`, i);
        return undefined;
      }
      const cond = acls.condition(l, i);
      return cond && { deny: status, ...cond };
    }
    case 'capture':
    case 'set-log-level':
      c.ignored(l, 'about logging, which tierlb does its own way', 1);
      return undefined;
    case 'use-service':
      if (l.words[2] === 'prometheus-exporter') {
        c.refused(l, "the prometheus exporter: tierlb's own /metrics is on listeners.stats.bind", 1);
        return undefined;
      }
  }
  c.refused(l, `http-request ${act ?? ''}: tierlb runs redirect, set-header, add-header, del-header and deny`, 1);
  return undefined;
}

export function httpResponseRule(c: Ctx, l: Line, acls: Acls): Rule | undefined {
  const act = l.words[1];
  if (act === 'set-header' || act === 'add-header' || act === 'del-header') return headerRule(c, l, acls, 'response');
  c.refused(l, `http-response ${act ?? ''}: tierlb runs set-header, add-header and del-header`, 1);
  return undefined;
}
