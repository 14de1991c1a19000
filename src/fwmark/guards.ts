/**
 * The kernel rules that make the director see what IPVS sees, beside the divert chain of ./plan.ts:
 * - reassembly: the raw chain TIERLB_RAW (jumped to from raw PREROUTING) untracks the VIPs' packets and the NAT
 *   real servers' replies (`CT --notrack`) and holds one conntrack match. That match is what registers the namespace's defrag hooks
 *   (nf_defrag_ipv4/ipv6 run at priority -400, before raw and mangle), so the queue gets reassembled datagrams, as
 *   IPVS does (it registers defrag itself); the notrack keeps conntrack from keeping state for the flows. Checked on
 *   this kernel: a notrack rule alone does not register defrag (fragments reach mangle one by one), with the match
 *   a 3,000-byte UDP datagram arrives whole, IPv4 and IPv6. Reassembly is bounded by the kernel
 *   (net.ipv4.ipfrag_high_thresh, net.ipv6.ip6frag_high_thresh) and counted in /proc/net/snmp(6) (ReasmOKs,
 *   ReasmFails), which `tierlb director stats` shows.
 * - ICMP errors: the same chain queues ICMP/ICMPv6 errors to a VIP (ip_vs_in_icmp: destination unreachable, source
 *   quench, time exceeded; ICMPv6 types 1-4) with the divert mark and, when a NAT real server is in the table,
 *   forwarded ones (ip_vs_out_icmp) with the reply mark; the worker looks up the quoted flow.
 * The chain is replaced in one iptables-restore per family and removed on stop, as ./kernel.ts does for its own.
 */
import { type Runner, runChecked, run as runProgram } from '../sys/exec.js';
import { iptablesArgv, iptablesRestoreArgv } from '../sys/iptables.js';
import { DIVERT_MARK, type Fam, REPLY_MARK, type RulePlan } from './plan.js';

export const RAW_CHAIN = 'TIERLB_RAW';

const TIMEOUT_MS = 20000;
const hex = (n: number) => `0x${(n >>> 0).toString(16)}`;
const host = (f: Fam, a: string) => `${a}/${f === 4 ? 32 : 128}`;

/** ICMP error types IPVS handles: v4 ip_vs_in_icmp's three, v6 every error type below 128 that exists. */
const ICMP4_ERRORS = [3, 4, 11];
const ICMP6_ERRORS = [1, 2, 3, 4];

/** The addresses of the services of one family (their VIPs and the VIPs of fwmark services' listener ports). */
export function vipsOf(plan: RulePlan, family: Fam): string[] {
  const s = new Set<string>();
  for (const v of plan.services) if (v.kind !== 'fwm' && v.family === family) s.add(v.addr);
  const marks = new Set(plan.services.filter((v) => v.kind === 'fwm' && v.family === family).map((v) => v.fwmark));
  for (const m of plan.matches) if (m.family === family && marks.has(m.mark)) s.add(m.addr);
  return [...s];
}

function queueTarget(plan: RulePlan): string {
  return plan.queues > 1
    ? `-j NFQUEUE --queue-balance ${plan.queue}:${plan.queue + plan.queues - 1}`
    : `-j NFQUEUE --queue-num ${plan.queue}`;
}

/**
 * The raw chain of one family as iptables-restore input (--noflush): declared, flushed and refilled at once. The ICMP
 * rules live in the raw table too (MARK and NFQUEUE work there; raw PREROUTING runs after defrag), which keeps the
 * mangle table to the divert chain of ./plan.ts; a verdict for a queued error clears or replaces the mark, so the
 * divert chain's queue rule does not take it a second time.
 */
export function renderGuards(plan: RulePlan, family: Fam): string {
  const vips = vipsOf(plan, family);
  const nat = [...new Set(plan.natSources.filter((n) => n.family === family).map((n) => n.addr))];
  const c = RAW_CHAIN;
  const out = ['*raw', `:${c} - [0:0]`, `-F ${c}`];
  for (const a of vips) out.push(`-A ${c} -d ${host(family, a)} -j CT --notrack`);
  for (const a of nat) out.push(`-A ${c} -s ${host(family, a)} -j CT --notrack`);
  // the match that brings the defrag hooks (no target: it counts what was just untracked and does nothing with it)
  if (vips.length || nat.length) out.push(`-A ${c} -m conntrack --ctstate UNTRACKED`);
  const types =
    family === 4
      ? ICMP4_ERRORS.map((t) => `-p icmp -m icmp --icmp-type ${t}`)
      : ICMP6_ERRORS.map((t) => `-p ipv6-icmp -m icmp6 --icmpv6-type ${t}`);
  const q = queueTarget(plan);
  for (const a of vips)
    for (const t of types)
      out.push(`-A ${c} -d ${host(family, a)} ${t} -j MARK --set-xmark ${hex(DIVERT_MARK)}/0xffffffff`);
  if (vips.length) out.push(`-A ${c} -m mark --mark ${hex(DIVERT_MARK)} ${q}`);
  if (nat.length) {
    for (const t of types)
      out.push(`-A ${c} ${t} -m addrtype ! --dst-type LOCAL -j MARK --set-xmark ${hex(REPLY_MARK)}/0xffffffff`);
    out.push(`-A ${c} -m mark --mark ${hex(REPLY_MARK)} ${q}`);
  }
  out.push('COMMIT', '');
  return out.join('\n');
}

/** Applies renderGuards to the kernel (through src/sys's runner; a recording fake in tests). */
export class GuardRules {
  private installed = false;

  constructor(private readonly runner: Runner = runProgram) {}

  private must(argv: string[], input?: string): Promise<string> {
    return runChecked(argv, { input, timeoutMs: TIMEOUT_MS }, this.runner);
  }

  /** The chains (empty, then filled from the plan) and their PREROUTING jumps; idempotent. */
  async install(plan: RulePlan): Promise<void> {
    for (const f of [4, 6] as Fam[]) {
      await this.must(iptablesRestoreArgv(f, { noflush: true }), renderGuards({ ...plan, services: [] }, f));
      for (const [table, chain] of [['raw', RAW_CHAIN]]) {
        const c = await this.runner(iptablesArgv(f, ['-t', table, '-C', 'PREROUTING', '-j', chain]), {
          timeoutMs: TIMEOUT_MS,
        });
        if (c.code !== 0) await this.must(iptablesArgv(f, ['-t', table, '-A', 'PREROUTING', '-j', chain]));
      }
    }
    this.installed = true;
    await this.apply(plan);
  }

  async apply(plan: RulePlan): Promise<void> {
    if (!this.installed) return;
    for (const f of [4, 6] as Fam[]) await this.must(iptablesRestoreArgv(f, { noflush: true }), renderGuards(plan, f));
  }

  /** Remove the jumps and the chains (best effort: what is not there is fine). */
  async removeAll(): Promise<void> {
    for (const f of [4, 6] as Fam[]) {
      for (const [table, chain] of [['raw', RAW_CHAIN]]) {
        for (let i = 0; i < 16; i++) {
          const r = await this.runner(iptablesArgv(f, ['-t', table, '-D', 'PREROUTING', '-j', chain]), {
            timeoutMs: TIMEOUT_MS,
          });
          if (r.code !== 0) break;
        }
        await this.runner(iptablesArgv(f, ['-t', table, '-F', chain]), { timeoutMs: TIMEOUT_MS });
        await this.runner(iptablesArgv(f, ['-t', table, '-X', chain]), { timeoutMs: TIMEOUT_MS });
      }
    }
    this.installed = false;
  }
}
