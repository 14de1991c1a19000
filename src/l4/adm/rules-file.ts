/**
 * The rules file of `tierlb adm --rules FILE`, without the file I/O: its text is ipvsadm -S -n output, restored with
 * -R. Two additions keep what -S would lose: -x/-y on the -a lines, and a `--set tcp tcpfin udp` line when the
 * timeouts differ from the defaults. ipvsadm -R accepts both, so the file stays valid ipvsadm-restore input.
 */
import { FMT_NUMERIC } from './parse.js';
import { type AdmResult, runAdm } from './run.js';
import { saveRules } from './save.js';
import { DEFAULT_TIMEOUTS } from './table-target.js';
import type { AdmTarget } from './target.js';

/** Load rules text into the target (ipvsadm -R). A non-zero code means the file has a bad line. */
export function loadRules(text: string, target: AdmTarget): AdmResult {
  return runAdm(['-R'], target, { stdin: text });
}

/** The text to write back. */
export function dumpRules(target: AdmTarget): string {
  let text = saveRules(target.table.list(), FMT_NUMERIC, true);
  const t = target.getTimeouts();
  if (t.tcp !== DEFAULT_TIMEOUTS.tcp || t.tcpfin !== DEFAULT_TIMEOUTS.tcpfin || t.udp !== DEFAULT_TIMEOUTS.udp)
    text += `--set ${t.tcp} ${t.tcpfin} ${t.udp}\n`;
  return text;
}
