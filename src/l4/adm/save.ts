/**
 * ipvsadm -S (print_service_entry with FMT_RULE) and the -R input reader (config_stream_read). -S writes the table as
 * the ipvsadm commands that rebuild it, sorted like the listing; -R feeds each line back through the parser.
 * Addresses are written numerically with or without -n (ipvsadm without -n writes host and service names).
 */
import { hostPort } from '../../common/addr.js';
import type { RealServer } from '../dest.js';
import { SVC_F_ONEPACKET, type VirtualService } from '../service.js';
import { netmaskText, orderDests, orderServices, protocolOption, SCHED_FLAGS_MASK, schedFlagWords } from './order.js';
import { FMT_NOSORT } from './parse.js';

/** The service as -S names it: `-t 10.0.0.1:80`, `-f 7`, `-f 7 -6`. */
export function ruleServiceName(svc: VirtualService): string {
  if (svc.kind === 'fwm') return svc.family === 6 ? `-f ${svc.fwmark} -6` : `-f ${svc.fwmark}`;
  return `${protocolOption(svc)} ${hostPort(svc.addr, svc.port, svc.family)}`;
}

export function serviceRule(svc: VirtualService): string {
  let s = `-A ${ruleServiceName(svc)} -s ${svc.schedName}`;
  if (svc.persistent) {
    s += ` -p ${svc.timeout}`;
    const mask = netmaskText(svc);
    if (mask) s += ` -M ${mask}`;
  }
  if (svc.flags & SVC_F_ONEPACKET) s += ' -o';
  if (svc.flags & SCHED_FLAGS_MASK) s += ` -b ${schedFlagWords(svc)}`;
  return `${s}\n`;
}

/** fwd_switch: a local real server is saved as -g, as the kernel reports it as LOCALNODE. */
function fwdSwitch(d: RealServer): string {
  if (d.local) return '-g';
  return d.fwd === 'masq' ? '-m' : d.fwd === 'tunnel' ? '-i' : '-g';
}

/**
 * One real server as an -a command. `thresholds` adds -x/-y when set: ipvsadm -S leaves them out (they are lost on
 * -S | -R), tierlb's rules file keeps them.
 */
export function destRule(svc: VirtualService, d: RealServer, thresholds = false): string {
  let s = `-a ${ruleServiceName(svc)} -r ${hostPort(d.addr, d.port, d.family)} ${fwdSwitch(d)} -w ${d.weight}`;
  // ipvsadm 1.31 names the tunnel type of tunnelled servers (only ipip exists here)
  if (d.fwd === 'tunnel' && !d.local) s += ' --tun-type ipip';
  if (thresholds && d.uThreshold) s += ` -x ${d.uThreshold}`;
  if (thresholds && d.lThreshold) s += ` -y ${d.lThreshold}`;
  return `${s}\n`;
}

/** list_all(FMT_RULE): every service and its real servers as ipvsadm commands. */
export function saveRules(services: readonly VirtualService[], format: number, thresholds = false): string {
  const sort = !(format & FMT_NOSORT);
  let out = '';
  for (const svc of orderServices(services, sort)) {
    out += serviceRule(svc);
    for (const d of orderDests(svc, sort)) out += destRule(svc, d, thresholds);
  }
  return out;
}

/**
 * config_stream_read over the whole input: one argv per line, words split on blanks, the word "ipvsadm" dropped (so
 * `ipvsadm -A ...` lines work), lines without words skipped. Unlike ipvsadm (whose comment handling never triggers),
 * a word starting with '#' ends the line, so rules files may carry comments.
 */
export function restoreLines(text: string): string[][] {
  const lines: string[][] = [];
  for (const line of text.split('\n')) {
    const words: string[] = [];
    for (const w of line.split(/[ \t\r]+/)) {
      if (w === '') continue;
      if (w.startsWith('#')) break;
      if (w !== 'ipvsadm') words.push(w);
    }
    if (words.length > 0) lines.push(words);
  }
  return lines;
}
