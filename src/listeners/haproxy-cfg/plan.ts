/**
 * haproxy.cfg's proxies → the `listeners` section as the YAML would hold it (the shapes of
 * src/listeners/config-schema.ts), with the haproxy.cfg line behind every part of it so the loader's checks can be
 * reported where the user wrote the thing.
 *
 *   backend NAME                             → a file-level group NAME (listeners.groups: any listener may use it,
 *                                              as several frontends share a backend in HAProxy)
 *   listen NAME (servers, one bind)          → a listener with its own servers (the group named NAME)
 *   frontend NAME / listen with backends     → a listener: use_backend → use_group, default_backend → default_group
 *                                              (a listen's own servers stay its own group)
 *   several binds (or `bind A,B`)            → one listener per address (NAME, NAME-2, ...); a listen's servers
 *                                              then become a file-level group they share
 *   a frontend without any backend           → its rules, then `deny: 503` (HAProxy's answer), and a default group
 *                                              it never reaches
 *   `stats enable` / `stats uri` and no servers → tierlb's stats endpoint (listeners.stats.bind)
 *
 * Client-side timeouts (client, http-request, http-keep-alive) are the listener's, from the frontend; server-side
 * ones (connect, server, queue, tunnel, check), retries and redispatch (HAProxy's default: off) each group's, from
 * its backend, as HAProxy takes them.
 */
import type { Cond } from './acl.js';
import type { Ctx } from './ctx.js';
import type { GlobalOut } from './global.js';
import type { HaProxy, TimeoutKey } from './proxy.js';
import type { ServerLine } from './servers.js';
import type { Where } from './tokenize.js';

type Obj = Record<string, unknown>;

/** Where each emitted part came from: `listeners.listen[0].groups[1]` → the backend line. */
export type WhereMap = Map<string, Where>;

const CLIENT_SIDE: TimeoutKey[] = ['client', 'http_request', 'http_keep_alive'];
const SERVER_SIDE: TimeoutKey[] = ['connect', 'server', 'queue', 'tunnel', 'check'];

function pickTimeouts(p: HaProxy, keys: TimeoutKey[]): Obj {
  const o: Obj = {};
  for (const k of keys) if (p.timeout[k] !== undefined) o[k] = p.timeout[k];
  return o;
}

/** A backend's (or listen's) balance, check and servers, as group or listener keys. */
function backendPart(c: Ctx, b: HaProxy, g: GlobalOut, path: string, wm: WhereMap): Obj {
  const out: Obj = {};
  if (b.balance) out.balance = b.balance.value;
  const checked = b.servers.filter((s) => s.opts.check);
  if (checked.length > 0) {
    const first = checked[0].opts;
    for (const s of checked.slice(1))
      if (s.opts.inter !== first.inter || s.opts.rise !== first.rise || s.opts.fall !== first.fall)
        c.warn(
          s.where,
          `server ${s.name}: inter/rise/fall differ from server ${checked[0].name}'s; tierlb checks a group's servers alike (${checked[0].name}'s are used)`,
        );
    const type = b.checkType ?? 'tcp';
    const hc = b.httpCheck;
    out.check = {
      type,
      ...(type === 'http' && hc.method ? { method: hc.method } : {}),
      ...(type === 'http' && hc.uri ? { uri: hc.uri } : {}),
      ...(type === 'http' && hc.host ? { host: hc.host } : {}),
      ...(type === 'http' && hc.expect ? { expect: hc.expect } : {}),
      ...(first.inter ? { inter: first.inter } : {}),
      ...(first.rise ? { rise: first.rise } : {}),
      ...(first.fall ? { fall: first.fall } : {}),
    };
  }
  const backups = b.servers.filter((s) => s.opts.backup);
  if (backups.length > 1 && !b.allbackups)
    c.warn(
      backups[1].where,
      `${b.kind} ${b.name} has several backup servers without 'option allbackups': tierlb spreads over all of them (HAProxy would use the first)`,
    );
  out.servers = b.servers.map((s, j) => {
    wm.set(`${path}.servers[${j}]`, s.where);
    return server(c, s, checked.length > 0, g);
  });
  return out;
}

function server(c: Ctx, s: ServerLine, groupChecked: boolean, g: GlobalOut): Obj {
  const o = s.opts;
  const out: Obj = { name: s.name, address: s.address };
  if (o.weight !== undefined) out.weight = o.weight;
  if (o.maxconn !== undefined) out.maxconn = o.maxconn;
  if (o.backup) out.backup = true;
  if (o.slowstart !== undefined) out.slowstart = o.slowstart;
  if (groupChecked && !o.check) out.check = false;
  if (o.sendProxy) out.send_proxy = o.sendProxy;
  if (o.agentCheck) {
    if (o.agentPort === undefined) c.error(s.where, `server ${s.name}: 'agent-check' needs 'agent-port'`);
    else
      out.agent = {
        port: o.agentPort,
        ...(o.agentAddr ? { address: o.agentAddr } : {}),
        ...(o.agentInter ? { inter: o.agentInter } : {}),
        ...(o.agentSend ? { send: o.agentSend } : {}),
      };
  }
  if (o.disabled) out.disabled = true;
  if (o.ssl) {
    const verify = o.verify ?? g.serverVerify;
    if (verify === 'required' && !o.ca)
      c.error(
        s.where,
        `server ${s.name}: 'ssl' verifies the server's certificate by default but no 'ca-file' is given (add 'ca-file FILE', or 'verify none' where the network is trusted)`,
      );
    out.ssl = { verify, ...(o.ca ? { ca: o.ca } : {}), ...(o.sni ? { sni: o.sni } : {}) };
  }
  return out;
}

export interface Emitted {
  section: Obj;
  where: WhereMap;
}

/** A backend's own settings as a group: server-side timeouts, retries, redispatch (HAProxy's default: off). */
function groupSettings(b: HaProxy): Obj {
  const out: Obj = {};
  const t = pickTimeouts(b, SERVER_SIDE);
  if (Object.keys(t).length) out.timeout = t;
  if (b.retries !== undefined) out.retries = b.retries;
  out.redispatch = b.redispatch ?? false;
  return out;
}

/** Build the `listeners` section from the global settings and the proxies (defaults excluded). */
export function emit(c: Ctx, g: GlobalOut, proxies: HaProxy[]): Emitted {
  const wm: WhereMap = new Map();
  const section: Obj = {};
  if (g.workers !== undefined) section.workers = g.workers;
  if (g.maxaccept !== undefined) section.maxaccept = g.maxaccept;
  if (g.memoryTrim !== undefined) section.memory_trim = g.memoryTrim;
  if (g.control !== undefined) section.control = g.control;
  // names: a backend and a frontend may share one (HAProxy keeps them apart), a listen is both
  const backNames = new Map<string, HaProxy>();
  const frontNames = new Map<string, HaProxy>();
  for (const p of proxies) {
    for (const [names, is] of [
      [backNames, p.kind !== 'frontend'],
      [frontNames, p.kind !== 'backend'],
    ] as const) {
      if (!is) continue;
      const prev = names.get(p.name);
      if (prev)
        c.error(p.where, `proxy name '${p.name}' is already used by the ${prev.kind} at line ${prev.where.line}`);
      else names.set(p.name, p);
    }
  }
  // every backend is a file-level group (any listener may use it, as several frontends share a backend)
  const fileGroups: Obj[] = [];
  const addFileGroup = (b: HaProxy) => {
    const path = `listeners.groups[${fileGroups.length}]`;
    wm.set(path, b.where);
    fileGroups.push({ name: b.name, ...groupSettings(b), ...backendPart(c, b, g, path, wm) });
  };
  for (const p of proxies) {
    if (p.kind !== 'backend') continue;
    if (p.disabled) c.warn(p.disabled, `backend ${p.name} is disabled: tierlb leaves it out`);
    else if (p.servers.length === 0)
      c.error(p.where, `backend ${p.name} has no server (HAProxy would answer 503): tierlb's groups need one`);
    else addFileGroup(p);
  }
  const listen: Obj[] = [];
  for (const p of proxies) {
    if (p.kind !== 'frontend' && p.kind !== 'listen') continue;
    if (p.disabled) {
      c.warn(p.disabled, `${p.kind} ${p.name} is disabled: no listener`);
      continue;
    }
    const hasBackends = p.useBackends.length > 0 || p.defaultBackend !== undefined;
    if (p.stats && p.servers.length === 0 && !hasBackends) {
      if (p.binds.length === 0) continue;
      if (section.stats) c.error(p.stats, 'a second stats page: tierlb has one stats endpoint');
      else {
        section.stats = { bind: p.binds[0].address };
        wm.set('listeners.stats', p.binds[0].where);
        c.warn(
          p.stats,
          `${p.kind} ${p.name}: tierlb's stats endpoint (/metrics, /stats.json) serves ${p.binds[0].address} instead of HAProxy's stats page`,
        );
      }
      continue;
    }
    if (p.binds.length === 0) {
      if (p.bindLines === 0) c.error(p.where, `${p.kind} ${p.name} has no 'bind': nothing would listen`);
      continue;
    }
    if (p.stats)
      c.warn(p.stats, `'stats' on ${p.kind} ${p.name}: tierlb's stats endpoint is listeners.stats.bind, ignored`);
    const mode = p.mode ?? 'tcp';
    const used: HaProxy[] = [];
    const useOf = (name: string, w: Where): boolean => {
      const b = backNames.get(name);
      if (!b) c.error(w, `no backend named '${name}'`);
      else if (b.kind === 'listen') c.error(w, `'${name}' is a listen section: use_backend names a backend`);
      else if (b.disabled) c.error(w, `backend ${name} is disabled`);
      else if ((b.mode ?? 'tcp') !== mode)
        c.error(w, `backend ${name} is mode ${b.mode ?? 'tcp'} but ${p.kind} ${p.name} is mode ${mode}`);
      else {
        if (!used.includes(b)) used.push(b);
        return true;
      }
      return false;
    };
    const useGroup = p.useBackends.filter((u) => useOf(u.backend, u.where));
    const dflt =
      p.defaultBackend && useOf(p.defaultBackend.name, p.defaultBackend.where) ? p.defaultBackend : undefined;
    const own = p.kind === 'listen' && p.servers.length > 0;
    // no backend at all (a frontend that only redirects): HAProxy answers 503 to what its rules leave; tierlb's
    // listener needs a default group, which a final `deny: 503` keeps it from ever reaching
    let answer503: string | undefined;
    if (!own && !dflt && useGroup.length === 0) {
      const stand = proxies.find(
        (b) => b.kind === 'backend' && !b.disabled && b.servers.length > 0 && (b.mode ?? 'tcp') === mode,
      );
      if (mode !== 'http' || !stand || p.useBackends.length > 0 || p.defaultBackend) {
        if (p.useBackends.length === 0 && !p.defaultBackend)
          c.error(
            p.where,
            `${p.kind} ${p.name} has no server and no backend: tierlb needs somewhere to send requests (add default_backend)`,
          );
        continue;
      }
      answer503 = stand.name;
      c.warn(
        p.where,
        `${p.kind} ${p.name} has no backend: what its rules do not answer gets 503, as in HAProxy (tierlb's listener names backend ${stand.name} as its default group, never reached)`,
      );
    }
    // a listen with several binds: its servers become a file-level group all its listeners use
    const shared = own && p.binds.length > 1;
    if (shared) addFileGroup(p);
    const fwd = p.forwardfor || used.some((b) => b.forwardfor);
    const without = used.filter((b) => !b.forwardfor);
    if (fwd && !p.forwardfor && without.length > 0)
      c.warn(
        without[0].where,
        `backend ${without[0].name} has no 'option forwardfor' but ${p.kind} ${p.name} adds X-Forwarded-For for all its backends`,
      );
    p.binds.forEach((bind, bi) => {
      const name = bi === 0 ? p.name : `${p.name}-${bi + 1}`;
      const path = `listeners.listen[${listen.length}]`;
      wm.set(path, p.where);
      wm.set(`${path}.name`, p.where);
      wm.set(`${path}.bind`, bind.where);
      const l: Obj = { name, bind: bind.address, mode };
      if (bind.acceptProxy) l.accept_proxy = true;
      // bind maxconn/backlog over the frontend's (HAProxy applies both; the smaller maxconn is what binds first)
      const maxconn = [bind.maxconn, p.maxconn?.value].filter((n): n is number => n !== undefined && n > 0);
      if (maxconn.length) l.maxconn = Math.min(...maxconn);
      const backlog = bind.backlog ?? p.backlog?.value;
      if (backlog !== undefined) l.backlog = backlog;
      if (bind.tls) {
        // HAProxy 2.6 offers no ALPN unless the bind line names one: HTTP clients then speak HTTP/1.1
        l.tls = bind.tls.alpn || mode !== 'http' ? bind.tls : { ...bind.tls, alpn: ['http/1.1'] };
        wm.set(`${path}.tls`, bind.where);
      }
      if (fwd) l.forwardfor = true;
      if (own && !shared) {
        // the listen's own servers: one group named after it, with every timeout, retries and redispatch
        const timeout = { ...pickTimeouts(p, CLIENT_SIDE), ...pickTimeouts(p, SERVER_SIDE) };
        if (Object.keys(timeout).length) l.timeout = timeout;
        if (p.retries !== undefined) l.retries = p.retries;
        l.redispatch = p.redispatch ?? false;
        Object.assign(l, backendPart(c, p, g, path, wm));
      } else {
        const timeout = pickTimeouts(p, CLIENT_SIDE);
        if (Object.keys(timeout).length) l.timeout = timeout;
      }
      if (dflt) {
        l.default_group = dflt.name;
        wm.set(`${path}.default_group`, dflt.where);
      } else if (shared) l.default_group = p.name;
      else if (answer503) l.default_group = answer503;
      if (useGroup.length) {
        l.use_group = useGroup.map((u, ui) => {
          wm.set(`${path}.use_group[${ui}]`, u.where);
          return { group: u.backend, ...u.cond };
        });
      }
      const req = [...p.httpRequest, ...p.redirects];
      if (answer503) req.push({ rule: { deny: 503 }, where: p.where });
      if (req.length) {
        if (mode !== 'http') c.error(p.where, `${p.kind} ${p.name}: http-request rules need mode http`);
        l.http_request = req.map((r, ri) => {
          wm.set(`${path}.http_request[${ri}]`, r.where);
          return r.rule;
        });
      }
      if (p.httpResponse.length) {
        if (mode !== 'http') c.error(p.where, `${p.kind} ${p.name}: http-response rules need mode http`);
        l.http_response = p.httpResponse.map((r, ri) => {
          wm.set(`${path}.http_response[${ri}]`, r.where);
          return r.rule;
        });
      }
      listen.push(l);
    });
  }
  if (fileGroups.length) section.groups = fileGroups;
  if (listen.length) section.listen = listen;
  return { section, where: wm };
}

/** The haproxy.cfg line for a loader problem's path (the longest recorded prefix). */
export function whereOf(wm: WhereMap, path: string): Where | undefined {
  let p = path;
  for (;;) {
    const w = wm.get(p);
    if (w) return w;
    const cut = Math.max(p.lastIndexOf('.'), p.lastIndexOf('['));
    if (cut <= 0) return undefined;
    p = p.slice(0, cut);
  }
}

export type { Cond };
