/**
 * runAdm: one ipvsadm invocation against an AdmTarget (a rules-file table or the live engine), pure: argv and stdin
 * in, exit code and output out. process_options' dispatch, with ipvsadm's exit codes: 0; 2 from fail(); 1 when a
 * listing cannot be made (-L of an unknown service); 255 (return -1) when an operation fails, after ipvs_strerror's
 * message, or on popt errors and "Try `ipvsadm -h'". Under -R each line runs in turn; fail() on a line stops the
 * whole restore (lines before it stay applied), a failed operation prints its message and the restore goes on,
 * and the exit code is that of the last line, as ipvsadm's restore_table does.
 */
import { AdmError } from '../../common/errors.js';
import type { ServiceId } from '../service.js';
import type { DestSpec, ServiceSpec } from '../services.js';
import { listConnections } from './conns.js';
import { AdmExit, type AdmOutput } from './exit.js';
import { daemonLines, listAll, listService, timeoutLine } from './format.js';
import {
  type AdmCommand,
  CMD_ADD,
  CMD_ADDDEST,
  CMD_DEL,
  CMD_DELDEST,
  CMD_EDIT,
  CMD_EDITDEST,
  CMD_FLUSH,
  CMD_LIST,
  CMD_RESTORE,
  CMD_SAVE,
  CMD_STARTDAEMON,
  CMD_STOPDAEMON,
  CMD_TIMEOUT,
  CMD_ZERO,
  IPPROTO_SCTP,
  IPPROTO_TCP,
  OPTC,
  type ParsedService,
  parseCommand,
  tryHelpText,
} from './parse.js';
import { restoreLines, saveRules } from './save.js';
import type { AdmTarget } from './target.js';

export interface AdmResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface AdmIo {
  /** what -R reads */
  stdin?: string;
  /** the program name in "Try `ipvsadm -h'..." and -h (default "ipvsadm") */
  prog?: string;
}

const EINVAL_TEXT = 'Invalid operation.  Possibly wrong module version, address not unicast, ...';
const ENOENT_SCHED_TEXT = 'Scheduler or persistence engine not found';
const TUN_TYPE_NAMES = ['ipip', 'gue', 'gre'];

/** Run one ipvsadm command line (argv without the program name). With no arguments, lists the table like ipvsadm. */
export function runAdm(argv: readonly string[], target: AdmTarget, io: AdmIo = {}): AdmResult {
  let stdout = '';
  let stderr = '';
  const out: AdmOutput = {
    out: (s) => {
      stdout += s;
    },
    err: (s) => {
      stderr += s;
    },
  };
  let code: number;
  try {
    if (argv.length === 0) {
      out.out(listAll(target.table.list(), 0));
      code = 0;
    } else code = processOptions(argv, target, out, io, false);
  } catch (e) {
    if (!(e instanceof AdmExit)) throw e;
    stdout += e.stdout;
    stderr += e.stderr;
    code = e.status;
  }
  return { code: code & 0xff, stdout, stderr };
}

function processOptions(
  argv: readonly string[],
  target: AdmTarget,
  out: AdmOutput,
  io: AdmIo,
  reading: boolean,
): number {
  const prog = io.prog ?? 'ipvsadm';
  const ce = parseCommand(argv, out, prog);
  if (!ce) return -1;
  switch (ce.cmd) {
    case CMD_LIST:
      list(ce, target, out);
      return 0;
    case CMD_RESTORE: {
      // avoid infinite loop
      if (reading) throw new AdmExit(255, '', tryHelpText(prog));
      let result = 0;
      for (const line of restoreLines(io.stdin ?? '')) result = processOptions(line, target, out, io, true);
      return result;
    }
    case CMD_SAVE:
      out.out(saveRules(target.table.list(), ce.format));
      return 0;
  }
  try {
    execute(ce, target);
    return 0;
  } catch (e) {
    if (e instanceof AdmExit) throw e;
    out.err(`${errorText(e)}\n`);
    return -1;
  }
}

function list(ce: AdmCommand, target: AdmTarget, out: AdmOutput): void {
  const o = ce.options;
  if (o.has(OPTC.CONNECTION)) out.out(listConnections(target.connections(), ce.format));
  else if (o.has(OPTC.SERVICE)) {
    const svc = target.table.get(serviceId(ce.svc));
    if (!svc) throw new AdmExit(1, '', 'No such service\n');
    out.out(listService(svc, ce.format));
  } else if (o.has(OPTC.TIMEOUT)) out.out(timeoutLine(target.getTimeouts()));
  else if (o.has(OPTC.DAEMON)) out.out(daemonLines(target.daemons?.() ?? []));
  else out.out(listAll(target.table.list(), ce.format));
}

/** ipvsadm's service fields as the table's key. */
export function serviceId(s: ParsedService): ServiceId {
  const family = s.af === 6 ? 6 : 4;
  if (s.fwmark) return { kind: 'fwm', family, fwmark: s.fwmark };
  const kind = s.protocol === IPPROTO_TCP ? 'tcp' : s.protocol === IPPROTO_SCTP ? 'sctp' : 'udp';
  return { kind, family, addr: s.addr, port: s.port };
}

function serviceSpec(s: ParsedService): ServiceSpec {
  return { id: serviceId(s), sched: s.sched, flags: s.flags, timeout: s.timeout, netmask: s.netmask };
}

function destSpec(ce: AdmCommand): DestSpec {
  const d = ce.dest;
  return {
    addr: d.addr,
    port: d.port,
    fwd: d.fwd,
    weight: d.weight,
    uThreshold: d.uThreshold,
    lThreshold: d.lThreshold,
  };
}

/** The kernel's order of checks where the table does not make them itself. */
function kernelChecks(ce: AdmCommand, target: AdmTarget): void {
  const t = target.table;
  const id = serviceId(ce.svc);
  if ((ce.cmd === CMD_ADD || ce.cmd === CMD_EDIT) && ce.svc.pe) {
    // no persistence engine (sip) is implemented: ip_vs_pe_getbyname fails
    if (ce.cmd === CMD_ADD && t.get(id)) throw new AdmError('EEXIST_SERVICE', 'Service already exists');
    if (ce.cmd === CMD_EDIT && !t.get(id)) throw new AdmError('ESRCH_SERVICE', 'No such service');
    throw new AdmError('ENOENT_SCHED', ENOENT_SCHED_TEXT);
  }
  if (ce.cmd === CMD_ADDDEST || ce.cmd === CMD_EDITDEST) {
    if (!t.get(id)) throw new AdmError('ESRCH_SERVICE', 'Service not defined');
    // ip_vs_add_dest / ip_vs_edit_dest: -ERANGE when the lower threshold is above the upper one (even -x 0)
    if (ce.dest.lThreshold > ce.dest.uThreshold) throw new AdmError('ERANGE', 'Numerical result out of range');
    if (ce.dest.tunType !== 0)
      throw new AdmError('ENOTSUP', `Tunnel type ${TUN_TYPE_NAMES[ce.dest.tunType]} is not supported`);
  }
}

function execute(ce: AdmCommand, target: AdmTarget): void {
  const t = target.table;
  kernelChecks(ce, target);
  switch (ce.cmd) {
    case CMD_FLUSH:
      t.clear();
      return;
    case CMD_ADD:
      t.addService(serviceSpec(ce.svc));
      return;
    case CMD_EDIT:
      t.editService(serviceSpec(ce.svc));
      return;
    case CMD_DEL:
      t.delService(serviceId(ce.svc));
      return;
    case CMD_ZERO:
      // a zeroed service (no -t/-u/-f) means all services, as in the kernel
      t.zero(ce.options.has(OPTC.SERVICE) ? serviceId(ce.svc) : undefined);
      return;
    case CMD_ADDDEST:
      t.addDest(serviceId(ce.svc), destSpec(ce));
      return;
    case CMD_EDITDEST:
      t.editDest(serviceId(ce.svc), destSpec(ce));
      return;
    case CMD_DELDEST:
      t.delDest(serviceId(ce.svc), ce.dest.addr, ce.dest.port);
      return;
    case CMD_TIMEOUT:
      target.setTimeouts(ce.timeouts);
      return;
    case CMD_STARTDAEMON:
    case CMD_STOPDAEMON: {
      // the director answers these itself (src/ha/worker-ha.ts) before this runner: only --rules (offline) gets here
      const flag = ce.cmd === CMD_STARTDAEMON ? '--start-daemon' : '--stop-daemon';
      throw new AdmError(
        'ENOTSUP',
        `Connection sync daemon needs a running director (tierlb adm --socket PATH ${flag} ...)`,
      );
    }
  }
}

/** ipvs_strerror's text for what the table (or the engine) threw. */
function errorText(e: unknown): string {
  if (e instanceof AdmError) return e.code === 'EINVAL' ? EINVAL_TEXT : e.message;
  if (e instanceof Error) return e.message;
  return String(e);
}
