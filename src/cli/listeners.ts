/**
 * `tierlb listeners`: the L7 listeners of an LB node.
 *
 *   tierlb listeners [--config FILE | --haproxy FILE] [--socket PATH] [--workers N]   run the cluster primary (+ workers); SIGHUP reloads
 *   tierlb listeners stats [--socket PATH | --config FILE] [--csv | --json]
 *   tierlb listeners reload [--socket PATH | --config FILE]          exit 0 when reloaded, 1 (+ reasons) when refused
 *   tierlb listeners workers [--socket PATH | --config FILE]
 *   tierlb listeners server drain|ready|maint BACKEND/SERVER [--socket PATH | --config FILE]
 *   tierlb listeners server weight BACKEND/SERVER N|N% [--socket PATH | --config FILE]
 *                                     friendly aliases of the runtime API's `set server B/S state|weight …`
 *   tierlb listeners check [--config FILE | --haproxy FILE]           validate the config (file:line:col: reason)
 *
 * FILE defaults to config/listeners.yaml; PATH to the config's `listeners.control`, else /run/tierlb/listeners.sock.
 * `--haproxy FILE` runs a haproxy.cfg instead of the YAML (src/listeners/haproxy-cfg/, as `tierlb director
 * --keepalived` runs a keepalived.conf): its unsupported keywords are logged as warnings with file:line, and the
 * ones whose absence would change behaviour refuse the file; reload re-reads the same haproxy.cfg.
 */
import { ConfigError } from '../config/index.js';
import { DEFAULT_CONTROL, type ListenersConfig, loadListenersConfig } from '../listeners/config.js';
import '../listeners/config-schema.js'; // registers the listeners section with the loader
import { log } from '../common/log.js';
import { controlRequest } from '../listeners/control.js';
import { listenersConfigFromHaproxy } from '../listeners/haproxy-cfg/load.js';
import { eachOption } from './args.js';

const USAGE = `usage:
  tierlb listeners [--config FILE | --haproxy FILE] [--socket PATH] [--workers N]
  tierlb listeners stats [--socket PATH | --config FILE | --haproxy FILE] [--csv | --json]
  tierlb listeners reload [--socket PATH | --config FILE | --haproxy FILE]
  tierlb listeners workers [--socket PATH | --config FILE | --haproxy FILE]
  tierlb listeners server drain|ready|maint BACKEND/SERVER [--socket PATH | --config FILE | --haproxy FILE]
  tierlb listeners server weight BACKEND/SERVER N|N% [--socket PATH | --config FILE | --haproxy FILE]
  tierlb listeners check [--config FILE | --haproxy FILE]
The control socket also speaks HAProxy's runtime API: echo "show stat" | socat stdio unix-connect:PATH
`;

interface Opts {
  sub: string;
  config?: string;
  haproxy?: string;
  socket?: string;
  workers?: number;
  format: 'table' | 'csv' | 'json';
  /** \`server\`: its words (verb, B/S, weight) */
  args: string[];
}

function parse(argv: string[]): Opts | string {
  const hasSub = !!argv[0] && !argv[0].startsWith('-');
  const o: Opts = { sub: hasSub ? argv[0] : 'run', format: 'table', args: [] };
  const err = eachOption(hasSub ? argv.slice(1) : argv, (a, val) => {
    if (a === '--config' || a === '-f') o.config = val();
    else if (a.startsWith('--config=')) o.config = a.slice(9);
    else if (a === '--haproxy') o.haproxy = val();
    else if (a.startsWith('--haproxy=')) o.haproxy = a.slice(10);
    else if (a === '--socket' || a === '-S') o.socket = val();
    else if (a.startsWith('--socket=')) o.socket = a.slice(9);
    else if (a === '--workers') o.workers = Number(val());
    else if (a === '--csv') o.format = 'csv';
    else if (a === '--json') o.format = 'json';
    else if (a === '-h' || a === '--help') return 'help';
    else if (o.sub === 'server' && !a.startsWith('-')) o.args.push(a);
    else return `unknown option ${a}`;
    return undefined;
  });
  if (err !== undefined) return err;
  if (!['run', 'stats', 'reload', 'workers', 'check', 'server'].includes(o.sub)) return `unknown subcommand ${o.sub}`;
  if (o.sub === 'server') {
    const [verb, target, w] = o.args;
    if (!verb || !['drain', 'ready', 'maint', 'weight'].includes(verb)) return 'server needs drain|ready|maint|weight';
    if (!target || !/^[^/\s;]+\/[^/\s;]+$/.test(target)) return 'server needs BACKEND/SERVER';
    if (verb === 'weight' ? !w || !/^\d+%?$/.test(w) || o.args.length !== 3 : o.args.length !== 2)
      return verb === 'weight'
        ? 'server weight needs BACKEND/SERVER N or N%'
        : `server ${verb} takes BACKEND/SERVER only`;
  }
  if (o.config && o.haproxy) return '--config and --haproxy exclude each other';
  if (o.workers !== undefined && !(Number.isInteger(o.workers) && o.workers > 0))
    return '--workers needs a positive integer';
  return o;
}

/** The plan of the file given (--haproxy: a haproxy.cfg, its warnings logged with file:line). */
function loadPlan(o: Opts): Promise<ListenersConfig> {
  if (o.haproxy) return listenersConfigFromHaproxy(o.haproxy, (w) => log.warn(w));
  return loadListenersConfig(o.config ?? 'config/listeners.yaml');
}

async function socketOf(o: Opts): Promise<string> {
  if (o.socket) return o.socket;
  if (o.config || o.haproxy) return (await loadPlan(o)).control;
  return DEFAULT_CONTROL;
}

export async function run(argv: string[]): Promise<number> {
  const o = parse(argv);
  if (o === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  if (typeof o === 'string') {
    process.stderr.write(`tierlb listeners: ${o}\n${USAGE}`);
    return 2;
  }
  try {
    switch (o.sub) {
      case 'check': {
        const cfg = await loadPlan(o);
        process.stdout.write(`${cfg.file}: ok (${cfg.listeners.length} listeners, ${cfg.workers} workers)\n`);
        return 0;
      }
      case 'stats': {
        const out = await controlRequest(await socketOf(o), o.format === 'table' ? 'stats' : `stats ${o.format}`);
        process.stdout.write(out);
        return out.startsWith('error') ? 1 : 0;
      }
      case 'workers': {
        process.stdout.write(await controlRequest(await socketOf(o), 'workers'));
        return 0;
      }
      case 'server': {
        const [verb, target, w] = o.args;
        const cmd = verb === 'weight' ? `set server ${target} weight ${w}` : `set server ${target} state ${verb}`;
        const out = await controlRequest(await socketOf(o), cmd);
        // the runtime API answers an empty line when done, HAProxy's words when not
        if (out.trim() === '') {
          process.stdout.write(`${target}: ${verb === 'weight' ? `weight ${w}` : verb}\n`);
          return 0;
        }
        process.stderr.write(`tierlb listeners: ${target}: ${out.trim()}\n`);
        return 1;
      }
      case 'reload': {
        const out = await controlRequest(await socketOf(o), 'reload');
        if (out.startsWith('ok')) {
          process.stdout.write(out);
          return 0;
        }
        process.stderr.write(out.replace(/^error\n/, ''));
        return 1;
      }
      default: {
        const cfg = await loadPlan(o);
        if (o.workers) cfg.workers = o.workers;
        if (o.socket) cfg.control = o.socket;
        const { Primary } = await import('../listeners/primary.js');
        // the primary's own memory (config loads, stats) is trimmed as the workers' are (the first config says)
        if (cfg.memoryTrim) (await import('../listeners/memory-trim.js')).startMemoryTrim();
        const haproxy = o.haproxy;
        const load = haproxy ? () => listenersConfigFromHaproxy(haproxy, (w) => log.warn(w)) : undefined;
        return await new Primary(cfg, { load }).run();
      }
    }
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`${e.format()}\n`);
      return 1;
    }
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') {
      process.stderr.write(`tierlb listeners: no primary answering on the control socket (${err.message})\n`);
      return 1;
    }
    throw e;
  }
}
