/**
 * The director's side of `tierlb adm` over the admin socket: one JSON line in, `{"argv": [...], "stdin": "..."}`,
 * one JSON line out, `{"code": n, "stdout": "...", "stderr": "..."}`. The daemon reads a line, calls
 * handleAdmRequest against its engine and writes the answer followed by "\n".
 */
import { TierlbError } from '../../common/errors.js';
import { type AdmResult, runAdm } from './run.js';
import type { AdmTarget } from './target.js';

/** A request line that is not `{"argv": [strings], "stdin"?: string}`. */
export class AdmRequestError extends TierlbError {
  override readonly code = 'EADM_REQUEST';
  constructor(message: string) {
    super('EADM_REQUEST', message);
    this.name = 'AdmRequestError';
  }
}

export interface AdmRequest {
  argv: string[];
  stdin?: string;
}

export function parseAdmRequest(line: string): AdmRequest {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch (e) {
    throw new AdmRequestError(`not JSON: ${(e as Error).message}`);
  }
  if (typeof v !== 'object' || v === null) throw new AdmRequestError('request is not an object');
  const { argv, stdin } = v as Record<string, unknown>;
  if (!Array.isArray(argv) || !argv.every((a) => typeof a === 'string'))
    throw new AdmRequestError('argv must be an array of strings');
  if (stdin !== undefined && typeof stdin !== 'string') throw new AdmRequestError('stdin must be a string');
  return { argv, stdin };
}

/** Answer one request line (the JSON answer, without the trailing newline). */
export function handleAdmRequest(line: string, target: AdmTarget): string {
  let req: AdmRequest;
  try {
    req = parseAdmRequest(line);
  } catch (e) {
    return answer({ code: 2, stdout: '', stderr: `tierlb adm: bad request: ${(e as Error).message}\n` });
  }
  try {
    return answer(runAdm(req.argv, target, { stdin: req.stdin }));
  } catch (e) {
    return answer({ code: 1, stdout: '', stderr: `tierlb adm: internal error: ${(e as Error).message}\n` });
  }
}

function answer(res: AdmResult): string {
  return JSON.stringify(res);
}
