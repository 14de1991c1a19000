/**
 * iptables through its nft backend, as argv: which program for which family (iptables-nft / ip6tables-nft and their
 * -restore / -save), so no caller spells the names itself.
 */
import type { IpFamily } from './ip.js';

export const iptablesProgram = (f: IpFamily): string => (f === 4 ? 'iptables-nft' : 'ip6tables-nft');

/** `iptables-nft ARGS...` (or ip6tables-nft) */
export function iptablesArgv(f: IpFamily, args: readonly string[]): string[] {
  return [iptablesProgram(f), ...args];
}

/** `iptables-nft-restore [--noflush]`: the rules come on stdin, applied in one transaction. */
export function iptablesRestoreArgv(f: IpFamily, o: { noflush?: boolean } = {}): string[] {
  return [`${iptablesProgram(f)}-restore`, ...(o.noflush ? ['--noflush'] : [])];
}

/** `iptables-nft-save [-t TABLE]` */
export function iptablesSaveArgv(f: IpFamily, table?: string): string[] {
  return [`${iptablesProgram(f)}-save`, ...(table ? ['-t', table] : [])];
}
