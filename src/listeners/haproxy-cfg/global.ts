/**
 * The `global` section (nbthread → workers, tune.maxaccept, no-memory-trimming, stats socket → the control socket,
 * crt-base / ca-base, the default TLS settings of bind and server lines) and the sections tierlb has no use for
 * (userlist, peers, resolvers, ...).
 */
import type { Ctx } from './ctx.js';
import { type TlsDefaults, tlsOption } from './servers.js';
import { at, type Section } from './tokenize.js';

export interface GlobalOut {
  workers?: number;
  maxaccept?: number;
  /** no-memory-trimming: false */
  memoryTrim?: boolean;
  control?: string;
  tls: TlsDefaults;
  /** ssl-server-verify (HAProxy's default: required) */
  serverVerify: 'none' | 'required';
}

const HARMLESS_GLOBAL: Record<string, string> = {
  daemon: 'tierlb runs in the foreground under systemd',
  'master-worker': 'tierlb has its own primary and workers',
  user: 'the systemd unit sets the user',
  group: 'the systemd unit sets the group',
  uid: 'the systemd unit sets the user',
  gid: 'the systemd unit sets the group',
  chroot: 'the systemd unit sandboxes tierlb',
  pidfile: 'not used by tierlb',
  log: 'logging is pino JSON on stderr in tierlb',
  'log-tag': 'logging is pino JSON on stderr in tierlb',
  'log-send-hostname': 'logging is pino JSON on stderr in tierlb',
  nbproc: 'tierlb runs one primary and its workers (nbthread)',
  'cpu-map': 'not used by tierlb',
  'hard-stop-after': 'tierlb drains workers its own way on reload',
  'spread-checks': 'not used by tierlb',
  'ssl-dh-param-file': "Node's TLS picks its own groups",
  'ssl-default-server-options': 'tierlb connects to servers with the default TLS settings',
  'ssl-default-server-ciphers': 'tierlb connects to servers with the default TLS settings',
  'ssl-default-server-ciphersuites': 'tierlb connects to servers with the default TLS settings',
  description: 'not used by tierlb',
  node: 'not used by tierlb',
  'server-state-file': 'not used by tierlb',
  'server-state-base': 'not used by tierlb',
  'ulimit-n': 'the systemd unit sets the limits',
  maxconn: 'not enforced by tierlb (server maxconn is)',
  maxconnrate: 'not enforced by tierlb',
  maxsessrate: 'not enforced by tierlb',
  maxsslconn: 'not enforced by tierlb',
  maxsslrate: 'not enforced by tierlb',
  'insecure-fork-wanted': 'not used by tierlb',
  'numa-cpu-mapping': 'not used by tierlb',
  'busy-polling': 'not used by tierlb',
  'expose-experimental-directives': 'not used by tierlb',
  'set-dumpable': 'not used by tierlb',
  quiet: 'not used by tierlb',
  'zero-warning': 'not used by tierlb',
  grace: 'not used by tierlb',
  'h1-case-adjust': 'not used by tierlb',
  'unix-bind': 'not used by tierlb',
  localpeer: 'not used by tierlb',
};

/** Keywords of `global` whose absence changes behaviour. */
const REFUSED_GLOBAL: Record<string, string> = {
  'lua-load': 'Lua scripts',
  'lua-load-per-thread': 'Lua scripts',
  'lua-prepend-path': 'Lua scripts',
  setenv: 'environment changes inside the file: set the variables in the unit instead',
  presetenv: 'environment changes inside the file: set the variables in the unit instead',
  resetenv: 'environment changes inside the file: set the variables in the unit instead',
  unsetenv: 'environment changes inside the file: set the variables in the unit instead',
  'external-check': 'external check programs',
  'ssl-engine': 'OpenSSL engines',
};

export function readGlobal(c: Ctx, sec: Section, g: GlobalOut): void {
  for (const l of sec.lines) {
    const kw = l.words[0];
    switch (kw) {
      case 'nbthread': {
        const n = c.int(l, 1, 1, 256);
        if (n !== undefined) g.workers = n;
        continue;
      }
      case 'tune.maxaccept': {
        // -1: no limit in HAProxy; tierlb's largest batch
        const n = l.words[1] === '-1' ? 1024 : c.int(l, 1, 1, 1024);
        if (n !== undefined) g.maxaccept = n;
        continue;
      }
      case 'no-memory-trimming':
        g.memoryTrim = false;
        continue;
      case 'stats': {
        if (l.words[1] !== 'socket') {
          c.ignored(l, 'not used by tierlb', 1);
          continue;
        }
        const path = l.words[2];
        if (!path || /^(ipv4|ipv6|abns|fd|sockpair)@/.test(path) || (!path.startsWith('/') && path.includes(':')))
          c.warn(at(l, 2), `'stats socket ${path ?? ''}': tierlb's control socket is a unix socket path, ignored`);
        else if (g.control)
          c.warn(at(l), `a second 'stats socket': tierlb has one control socket (${g.control}), ignored`);
        else {
          g.control = path.replace(/^unix@/, '');
          if (l.words.length > 3)
            c.warn(at(l, 3), `stats socket options '${l.words.slice(3).join(' ')}' are not used by tierlb, ignored`);
        }
        continue;
      }
      case 'crt-base':
      case 'ca-base':
        if (!l.words[1]) c.error(at(l), `'${kw}' needs a directory`);
        else if (kw === 'crt-base') g.tls.crtBase = l.words[1];
        else g.tls.caBase = l.words[1];
        continue;
      case 'ssl-default-bind-ciphers':
      case 'ssl-default-bind-ciphersuites':
        if (!l.words[1]) c.error(at(l), `'${kw}' needs a value`);
        else g.tls.bind[kw === 'ssl-default-bind-ciphers' ? 'ciphers' : 'ciphersuites'] = l.words[1];
        continue;
      case 'ssl-default-bind-options':
        for (let i = 1; i < l.words.length; ) {
          const next = tlsOption(c, l, i, g.tls.bind);
          if (next !== false) i = next;
          else {
            c.warn(at(l, i), `ssl-default-bind-options '${l.words[i]}' is not used by tierlb, ignored`);
            i++;
          }
        }
        continue;
      case 'ssl-server-verify': {
        const v = l.words[1];
        if (v === 'none' || v === 'required') g.serverVerify = v;
        else c.error(at(l, 1), `'ssl-server-verify ${v ?? ''}': none or required`);
        continue;
      }
    }
    if (Object.hasOwn(REFUSED_GLOBAL, kw)) c.refused(l, REFUSED_GLOBAL[kw]);
    else if (Object.hasOwn(HARMLESS_GLOBAL, kw)) c.ignored(l, HARMLESS_GLOBAL[kw]);
    else if (kw.startsWith('tune.') || kw.startsWith('profiling.') || kw.startsWith('ssl-'))
      c.ignored(l, 'a tuning tierlb does not have');
    else c.ignored(l, 'not a global setting tierlb knows');
  }
}

/** The sections tierlb reads nothing from: harmless when nothing uses them (their users are refused). */
export function otherSection(c: Ctx, sec: Section): void {
  const why: Record<string, string> = {
    userlist: 'authentication (http-request auth) is refused where it is used',
    peers: 'stick tables are refused where they are used',
    resolvers: 'tierlb resolves server names through the system resolver when it connects',
    mailers: 'use the listeners metrics for alerts',
    'http-errors': 'tierlb answers its own error pages',
    ring: 'logging is pino JSON on stderr in tierlb',
    cache: 'caching (http-request cache-use) is refused where it is used',
    'fcgi-app': 'FastCGI (use-fcgi-app) is refused where it is used',
  };
  if (Object.hasOwn(why, sec.kind))
    c.warn(at(sec.head), `section '${sec.kind}' is not used by tierlb (${why[sec.kind]}), ignored`);
  else c.error(at(sec.head), `section '${sec.kind}' is not supported by tierlb (it would run a service of its own)`);
}
