/**
 * `tierlb director [--config FILE | --keepalived FILE] [--metrics ADDR] [--socket PATH] [--queue N] [--max-queue-len N]`:
 * runs the L4 director daemon (src/director/daemon.ts: data path, HA, admin socket; SIGHUP reloads, SIGINT/SIGTERM
 * stop).
 *
 * `tierlb director reload|stats|rules [--socket PATH]` talk to a running daemon over its admin socket.
 */
import { DIRECTOR_SOCKET, request } from '../director/client.js';
import { type DirectorOptions, runDirector } from '../director/daemon.js';
import '../ha/config-schema.js'; // registers the vrrp section with the loader (director/config.js: the director's)
import { FASTPATH_MODES, type FastpathMode } from '../director/config-schema.js';
import { eachOption } from './args.js';

function usage(): string {
  return [
    'usage: tierlb director [--config FILE | --keepalived FILE] [--metrics ADDR] [--socket PATH] [--queue N]',
    '                       [--max-queue-len N] [--no-sysctl] [--fastpath auto|on|off]',
    '                       [--cluster FILE --node NAME]',
    '       tierlb director reload|stats|rules|bgp [--socket PATH]',
  ].join('\n');
}

function parseArgs(argv: string[]): DirectorOptions | string {
  const o: DirectorOptions = { socket: DIRECTOR_SOCKET, queue: 0, sysctl: true };
  const err = eachOption(argv, (a, val) => {
    if (a === '--config' || a === '-c') o.config = val();
    else if (a === '--keepalived' || a === '-k') o.keepalived = val();
    else if (a === '--cluster') o.cluster = val();
    else if (a === '--node') o.node = val();
    else if (a === '--metrics') o.metrics = val();
    else if (a === '--socket' || a === '-s') o.socket = val();
    else if (a === '--queue' || a === '-q') {
      o.queue = Number(val());
      if (!Number.isInteger(o.queue) || o.queue < 0 || o.queue > 65535) return `bad queue number`;
    } else if (a === '--max-queue-len') o.maxLen = Number(val());
    else if (a === '--no-sysctl') o.sysctl = false;
    else if (a === '--fastpath') {
      const m = val();
      if (!(FASTPATH_MODES as readonly string[]).includes(m)) return `bad --fastpath ${m} (auto, on or off)`;
      o.fastpath = m as FastpathMode;
    } else return `unknown option ${a}`;
    return undefined;
  });
  return err ?? o;
}

async function client(cmd: string, argv: string[]): Promise<number> {
  const o = parseArgs(argv);
  if (typeof o === 'string') {
    process.stderr.write(`tierlb director: ${o}\n${usage()}\n`);
    return 2;
  }
  try {
    const line = await request(o.socket, { op: cmd });
    const r = JSON.parse(line) as { code?: number; stdout?: string; stderr?: string };
    if (r.stdout !== undefined || r.stderr !== undefined) {
      process.stdout.write(r.stdout ?? '');
      process.stderr.write(r.stderr ?? '');
      return r.code ?? 0;
    }
    process.stdout.write(`${line}\n`);
    return 0;
  } catch (e) {
    process.stderr.write(`tierlb director: cannot reach ${o.socket}: ${(e as Error).message}\n`);
    return 1;
  }
}

export async function run(argv: string[]): Promise<number> {
  if (argv[0] === '-h' || argv[0] === '--help') {
    process.stdout.write(`${usage()}\n`);
    return 0;
  }
  if (argv[0] && ['reload', 'stats', 'rules', 'bgp'].includes(argv[0])) return client(argv[0], argv.slice(1));
  const o = parseArgs(argv);
  if (typeof o === 'string') {
    process.stderr.write(`tierlb director: ${o}\n${usage()}\n`);
    return 2;
  }
  if (o.config && o.keepalived) {
    process.stderr.write('tierlb director: --config and --keepalived exclude each other\n');
    return 2;
  }
  if (!!o.cluster !== !!o.node || (o.cluster && (o.config || o.keepalived))) {
    process.stderr.write('tierlb director: --cluster needs --node, and excludes --config and --keepalived\n');
    return 2;
  }
  try {
    return await runDirector(o);
  } catch (e) {
    // refused before anything started: a bad config, or another director on the socket
    process.stderr.write(`tierlb director: ${(e as Error).message}\n`);
    return 1;
  }
}
