/**
 * HAProxy's runtime API on the listeners' control socket, in its text protocol: one line in (commands separated by
 * `;`), each command's output followed by an empty line, then the socket closes — so `echo "show stat" | socat
 * stdio unix-connect:PATH` and HAProxy's CSV consumers work as against haproxy 2.6. The backends are those of
 * `RuntimeHost.backends()`, addressed as BACKEND/SERVER; a change goes to the host, which publishes it to every
 * worker at once (the shared memory, or the primary's pools).
 */
import type { Pool, ServerState } from '../pool.js';
import { type AdminState, setAdminState, setWeight, showServersState } from './servers-state.js';
import { type FullRow, filterRows, formatShowStat } from './show-stat.js';

export interface RuntimeHost {
  /** every backend: each server group (a listener's own servers are the group named after it) */
  backends(): readonly Pool[];
  /** mode and addresses by proxy name (../config.ts proxyInfo) */
  proxies(): ReadonlyMap<string, { mode: string; binds: string[] }>;
  /** `show stat` rows, counters fresh from the workers */
  fullRows(): Promise<FullRow[]>;
  /** `show info` fields, in order */
  info(): Promise<[string, string | number][]>;
  now(): number;
  /** a server's admin state or weight changed: publish it */
  changed(backend: Pool, server: ServerState, why: string): void;
}

export const HELP: [string, string][] = [
  ['help', 'list the commands'],
  ['show info', 'report information about the running process'],
  ['show stat [<px> <type> <sid>] [up|no-maint]', 'report counters for each proxy and server (HAProxy 2.6 CSV)'],
  ['show servers state [<backend>]', 'dump the servers state (server-state-file format)'],
  ['set server <bk>/<srv> state <st>', 'ready | drain | maint'],
  ['set server <bk>/<srv> weight <w>', 'absolute 0..256, or N% of the configured weight'],
  ['get weight <bk>/<srv>', "report a server's current and configured weight"],
  ['enable server <bk>/<srv>', 'leave maintenance (same as set server … state ready)'],
  ['disable server <bk>/<srv>', 'put in maintenance (same as set server … state maint)'],
  ['stats [table|csv|json]', 'tierlb: the stats table'],
  ['reload', 'tierlb: re-read the config, replace the workers'],
  ['workers', 'tierlb: the worker processes'],
];

export function helpText(): string {
  const w = Math.max(...HELP.map(([c]) => c.length));
  return `The following commands are valid at this level:\n${HELP.map(([c, d]) => `  ${c.padEnd(w)} : ${d}`).join('\n')}\n`;
}

/** Find `B/S`; the second member is HAProxy's error message. */
function findServer(host: RuntimeHost, arg: string | undefined): [Pool, ServerState] | string {
  const slash = arg?.indexOf('/') ?? -1;
  if (!arg || slash <= 0) return "Require 'backend/server'.\n";
  const b = arg.slice(0, slash);
  const sname = arg.slice(slash + 1);
  const pool = host.backends().find((p) => p.spec.name === b);
  if (!pool) return 'No such backend.\n';
  const s = pool.servers.find((x) => x.name === sname);
  if (!s) return 'No such server.\n';
  return [pool, s];
}

const STATES = new Set(['ready', 'drain', 'maint']);

/** `set server`, `enable|disable server` */
function adminCommand(host: RuntimeHost, words: string[]): string {
  const verb = words[0];
  if (verb === 'enable' || verb === 'disable') {
    const found = findServer(host, words[2]);
    if (typeof found === 'string') return found;
    const [pool, s] = found;
    const st: AdminState = verb === 'enable' ? 'ready' : 'maint';
    if (setAdminState(s, st, host.now())) host.changed(pool, s, `runtime: ${verb} server`);
    return '';
  }
  const found = findServer(host, words[2]);
  if (typeof found === 'string') return found;
  const [pool, s] = found;
  const what = words[3];
  if (what === 'state') {
    const st = words[4] ?? '';
    if (!STATES.has(st)) return "'set server <srv> state' expects 'ready', 'drain' and 'maint'.\n";
    if (setAdminState(s, st as AdminState, host.now())) host.changed(pool, s, `runtime: state ${st}`);
    return '';
  }
  if (what === 'weight') {
    const err = setWeight(s, words[4] ?? '');
    if (err) return `${err}\n`;
    host.changed(pool, s, `runtime: weight ${words[4]}`);
    return '';
  }
  return "'set server <srv>' only supports 'state' and 'weight' in tierlb.\n";
}

/**
 * One admin action on `B/S` (the status page's): state ready|drain|maint, or weight N|N%. Returns HAProxy's error
 * words, or '' when done. No text is parsed, so nothing a form sends can become another command.
 */
export function adminAction(host: RuntimeHost, server: string, action: string, weight?: string): string {
  const found = findServer(host, server);
  if (typeof found === 'string') return found.trim();
  const [pool, s] = found;
  if (action === 'weight') {
    const err = setWeight(s, weight ?? '');
    if (err) return err;
    host.changed(pool, s, `status page: weight ${weight}`);
    return '';
  }
  if (!STATES.has(action)) return "'set server <srv> state' expects 'ready', 'drain' and 'maint'.";
  if (setAdminState(s, action as AdminState, host.now())) host.changed(pool, s, `status page: state ${action}`);
  return '';
}

/** One command's output (without the empty line that ends it); undefined = not a runtime API command. */
async function one(host: RuntimeHost, cmd: string): Promise<string | undefined> {
  const words = cmd.trim().split(/\s+/).filter(Boolean);
  const [a, b] = words;
  if (a === 'help') return helpText();
  if (a === 'show' && b === 'info') return `${(await host.info()).map(([k, v]) => `${k}: ${v}`).join('\n')}\n`;
  if (a === 'show' && b === 'stat') {
    const rows = filterRows(await host.fullRows(), words.slice(2));
    return typeof rows === 'string' ? `${rows}\n` : formatShowStat(rows).slice(0, -1);
  }
  if (a === 'show' && b === 'servers' && words[2] === 'state')
    return showServersState(host.backends(), host.now(), words[3]).slice(0, -1);
  if ((a === 'set' && b === 'server') || ((a === 'enable' || a === 'disable') && b === 'server'))
    return adminCommand(host, words);
  if (a === 'get' && b === 'weight') {
    const found = findServer(host, words[2]);
    if (typeof found === 'string') return found;
    const s = found[1];
    return `${Math.floor((s.baseWeight * s.agentPct) / 100)} (initial ${s.spec.weight})\n`;
  }
  return undefined;
}

/**
 * Run a line of runtime API commands; undefined when its first command is none of them (the caller's own
 * commands, e.g. tierlb's `stats`, `reload`, `workers`). An unknown command after a `;` answers HAProxy's words.
 */
export async function runtimeCommands(host: RuntimeHost, line: string): Promise<string | undefined> {
  const cmds = line
    .split(';')
    .map((c) => c.trim())
    .filter(Boolean);
  if (cmds.length === 0) return undefined;
  let out = '';
  for (let i = 0; i < cmds.length; i++) {
    const r = await one(host, cmds[i]!);
    if (r === undefined) {
      if (i === 0) return undefined;
      out += `Unknown command, but maybe one of the following ones is a better match:\n${helpText()}\n`;
      continue;
    }
    out += `${r}\n`;
  }
  return out;
}
