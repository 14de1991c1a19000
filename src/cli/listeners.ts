/**
 * `tierlb listeners`: the L7 listeners of an LB node.
 *
 *   tierlb listeners [--config FILE] [--socket PATH] [--workers N]   run the cluster primary (+ workers); SIGHUP reloads
 *   tierlb listeners stats [--socket PATH | --config FILE] [--csv | --json]
 *   tierlb listeners reload [--socket PATH | --config FILE]          exit 0 when reloaded, 1 (+ reasons) when refused
 *   tierlb listeners workers [--socket PATH | --config FILE]
 *   tierlb listeners check [--config FILE]                            validate the config (file:line:col: reason)
 *
 * FILE defaults to config/listeners.yaml; PATH to the config's `listeners.control`, else /run/tierlb/listeners.sock.
 */
import { ConfigError } from '../config/index.js';
import { DEFAULT_CONTROL, loadListenersConfig } from '../listeners/config.js';
import '../listeners/config-schema.js'; // registers the listeners section with the loader
import { controlRequest } from '../listeners/control.js';
import { eachOption } from './args.js';

const USAGE = `usage:
  tierlb listeners [--config FILE] [--socket PATH] [--workers N]
  tierlb listeners stats [--socket PATH | --config FILE] [--csv | --json]
  tierlb listeners reload [--socket PATH | --config FILE]
  tierlb listeners workers [--socket PATH | --config FILE]
  tierlb listeners check [--config FILE]
`;

interface Opts {
  sub: string;
  config?: string;
  socket?: string;
  workers?: number;
  format: 'table' | 'csv' | 'json';
}

function parse(argv: string[]): Opts | string {
  const hasSub = !!argv[0] && !argv[0].startsWith('-');
  const o: Opts = { sub: hasSub ? argv[0] : 'run', format: 'table' };
  const err = eachOption(hasSub ? argv.slice(1) : argv, (a, val) => {
    if (a === '--config' || a === '-f') o.config = val();
    else if (a.startsWith('--config=')) o.config = a.slice(9);
    else if (a === '--socket' || a === '-S') o.socket = val();
    else if (a.startsWith('--socket=')) o.socket = a.slice(9);
    else if (a === '--workers') o.workers = Number(val());
    else if (a === '--csv') o.format = 'csv';
    else if (a === '--json') o.format = 'json';
    else if (a === '-h' || a === '--help') return 'help';
    else return `unknown option ${a}`;
    return undefined;
  });
  if (err !== undefined) return err;
  if (!['run', 'stats', 'reload', 'workers', 'check'].includes(o.sub)) return `unknown subcommand ${o.sub}`;
  if (o.workers !== undefined && !(Number.isInteger(o.workers) && o.workers > 0))
    return '--workers needs a positive integer';
  return o;
}

async function socketOf(o: Opts): Promise<string> {
  if (o.socket) return o.socket;
  if (o.config) return (await loadListenersConfig(o.config)).control;
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
        const cfg = await loadListenersConfig(o.config ?? 'config/listeners.yaml');
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
        const cfg = await loadListenersConfig(o.config ?? 'config/listeners.yaml');
        if (o.workers) cfg.workers = o.workers;
        if (o.socket) cfg.control = o.socket;
        const { Primary } = await import('../listeners/primary.js');
        return await new Primary(cfg).run();
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
