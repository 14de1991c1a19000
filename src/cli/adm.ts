/**
 * `tierlb adm [--rules FILE | --socket PATH] <ipvsadm arguments>`: ipvsadm for tierlb.
 *
 * - `--rules FILE`: offline. FILE (ipvsadm -S format; a missing file is an empty table) is loaded into a service
 *   table, the command runs against it, and FILE is rewritten (temp file + rename) when the rules changed.
 * - otherwise: the command is sent to the running director over its admin socket (default DIRECTOR_SOCKET,
 *   src/director/client.ts) as one JSON line `{"argv": [...], "stdin": "..."}`; the answer is one JSON line
 *   `{"code", "stdout", "stderr"}`.
 *
 * `--rules` / `--socket` must come before the ipvsadm arguments. -R reads the rules from standard input.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { DIRECTOR_SOCKET, requestDirector } from '../director/client.js';
import { dumpRules, loadRules } from '../l4/adm/rules-file.js';
import { type AdmResult, runAdm } from '../l4/adm/run.js';
import { TableTarget } from '../l4/adm/table-target.js';

export interface AdmCliOptions {
  rules?: string;
  socket: string;
  argv: string[];
}

/** Split tierlb's own leading options from the ipvsadm arguments. */
export function parseCliArgs(argv: readonly string[]): AdmCliOptions | string {
  const o: AdmCliOptions = { socket: DIRECTOR_SOCKET, argv: [] };
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i];
    const eq = a.indexOf('=');
    const name = a.startsWith('--') && eq > 0 ? a.slice(0, eq) : a;
    if (name !== '--rules' && name !== '--socket') break;
    const v = eq > 0 && name !== a ? a.slice(eq + 1) : argv[++i];
    if (v === undefined || v === '') return `${name} needs a value`;
    if (name === '--rules') o.rules = v;
    else o.socket = v;
  }
  o.argv = argv.slice(i);
  return o;
}

/** Does this ipvsadm command line read standard input (-R / --restore as its command)? */
export function readsStdin(argv: readonly string[]): boolean {
  const first = argv.find((a) => a.startsWith('-') && a !== '-');
  return first === '--restore' || (first !== undefined && !first.startsWith('--') && first[1] === 'R');
}

function readFileOrEmpty(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw e;
  }
}

function writeAtomic(path: string, text: string): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  writeFileSync(tmp, text, { mode: 0o644 });
  renameSync(tmp, path);
}

/** Offline mode: load FILE, run, write FILE back when the rules changed. */
export function runWithRulesFile(path: string, argv: string[], stdin: string | undefined): AdmResult {
  const target = new TableTarget();
  const loaded = loadRules(readFileOrEmpty(path), target);
  if (loaded.code !== 0)
    return { code: 1, stdout: '', stderr: `tierlb adm: ${path}: cannot load the rules:\n${loaded.stderr}` };
  const before = dumpRules(target);
  const res = runAdm(argv, target, { stdin });
  const after = dumpRules(target);
  if (after !== before) writeAtomic(path, after);
  return res;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export async function run(argv: string[]): Promise<number> {
  const o = parseCliArgs(argv);
  if (typeof o === 'string') {
    process.stderr.write(`tierlb adm: ${o}\nusage: tierlb adm [--rules FILE | --socket PATH] <ipvsadm arguments>\n`);
    return 2;
  }
  const stdin = readsStdin(o.argv) ? await readStdin() : undefined;
  let res: AdmResult;
  if (o.rules !== undefined) res = runWithRulesFile(o.rules, o.argv, stdin);
  else {
    try {
      res = await requestDirector(o.socket, o.argv, stdin);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ECONNREFUSED') {
        process.stderr.write(
          `tierlb adm: no director at ${o.socket} (start \`tierlb director\` or use --rules FILE)\n`,
        );
        return 1;
      }
      process.stderr.write(`tierlb adm: ${o.socket}: ${(e as Error).message}\n`);
      return 1;
    }
  }
  process.stdout.write(res.stdout);
  process.stderr.write(res.stderr);
  return res.code;
}
