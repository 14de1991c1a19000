/**
 * Applying a RulePlan to the kernel, touching only what tierlb made:
 * - the mangle chain TIERLB_DIVERT (IPv4 and IPv6), jumped to from the end of PREROUTING, replaced atomically with
 *   iptables-nft-restore --noflush, removed on stop;
 * - `lookup local` moved from pref 0 to LOCAL_PREF while running (so marked packets for a local VIP are routed to
 *   the real server), restored on stop;
 * - one `ip rule pref MARK_PREF fwmark M lookup T` + `default via RIP dev IF onlink` in table T per DR real server.
 * list() reports exactly those; removeAll() deletes exactly those. The plan is pure (./plan.ts); every command
 * runs through src/sys's Runner (a recording fake in tests), with the program's stderr in the error when it fails.
 */
import { KernelStateError } from '../sys/errors.js';
import { type Runner, runChecked, run as runProgram } from '../sys/exec.js';
import { ipArgv, parseIpJson } from '../sys/ip.js';
import { iptablesArgv, iptablesRestoreArgv } from '../sys/iptables.js';
import {
  CHAIN,
  type Fam,
  LOCAL_PREF,
  MARK_PREF,
  MAX_DEST_MARKS,
  type RulePlan,
  renderChain,
  TABLE_BASE,
} from './plan.js';

/** Each command's timeout: a wedged iptables must not hang the director's rule chain. */
const TIMEOUT_MS = 20000;

const ipt = (f: Fam, ...args: string[]) => iptablesArgv(f, args);
const restore = (f: Fam) => iptablesRestoreArgv(f, { noflush: true });
const ip = (f: Fam, ...args: string[]) => ipArgv(args, { family: f });
const ipj = (f: Fam, ...args: string[]) => ipArgv(args, { family: f, json: true });
/** `ip rule add|del pref MARK_PREF fwmark M lookup T`: a DR real server's mark rule. */
const markRule = (f: Fam, verb: 'add' | 'del', mark: number, table: number) =>
  ip(f, 'rule', verb, 'pref', String(MARK_PREF), 'fwmark', String(mark), 'lookup', String(table));

interface IpRule {
  priority: number;
  table?: string;
  fwmark?: string;
  src?: string;
}

export interface KernelState {
  chains: Record<string, string[]>;
  jumps: Record<string, number>;
  rules: { family: Fam; pref: number; fwmark?: number; table: string }[];
  routes: { family: Fam; table: number; route: string }[];
  localPref: Record<string, number[]>;
}

export class KernelRules {
  private installed = false;
  /** families whose `lookup local` we moved (so stop moves it back) */
  private movedLocal = new Set<Fam>();
  private current: RulePlan | null = null;

  constructor(
    private readonly runner: Runner = runProgram,
    readonly chain = CHAIN,
  ) {}

  /** Run; how it went (a failure is no error: the best-effort steps look at the code). */
  private run(argv: string[]) {
    return this.runner(argv, { timeoutMs: TIMEOUT_MS });
  }

  /** Run; stdout, or the ExecError with the program's stderr. */
  private must(argv: string[], input?: string): Promise<string> {
    return runChecked(argv, { input, timeoutMs: TIMEOUT_MS }, this.runner);
  }

  /** Create the (empty) chains, the PREROUTING jumps and move `lookup local`; idempotent (no duplicates). */
  async install(plan: RulePlan): Promise<void> {
    for (const f of [4, 6] as Fam[]) {
      await this.must(restore(f), renderChain({ ...plan, services: [], matches: [], natSources: [] }, f, this.chain));
      const c = await this.run(ipt(f, '-t', 'mangle', '-C', 'PREROUTING', '-j', this.chain));
      if (c.code !== 0) await this.must(ipt(f, '-t', 'mangle', '-A', 'PREROUTING', '-j', this.chain));
      await this.moveLocal(f);
    }
    // leftovers of an earlier run that did not stop cleanly: our mark rules and tables
    await this.removePolicy();
    this.installed = true;
    await this.apply(plan);
  }

  private async rules(f: Fam): Promise<IpRule[]> {
    return parseIpJson<IpRule>(ipj(f, 'rule', 'show'), await this.must(ipj(f, 'rule', 'show')));
  }

  private async moveLocal(f: Fam): Promise<void> {
    const rules = await this.rules(f);
    const at0 = rules.some((r) => r.priority === 0 && r.table === 'local');
    const atOurs = rules.some((r) => r.priority === LOCAL_PREF && r.table === 'local');
    if (!atOurs) await this.must(ip(f, 'rule', 'add', 'pref', String(LOCAL_PREF), 'lookup', 'local'));
    if (at0) await this.must(ip(f, 'rule', 'del', 'pref', '0', 'lookup', 'local'));
    // moved by us now, or by an earlier run of ours that did not restore it
    if (at0 || atOurs) this.movedLocal.add(f);
  }

  /** Replace the chain's content and reconcile the policy routes with the plan. */
  async apply(plan: RulePlan): Promise<void> {
    if (!this.installed) throw new KernelStateError('EKERNEL_USAGE', 'KernelRules.apply before install');
    for (const f of [4, 6] as Fam[]) await this.must(restore(f), renderChain(plan, f, this.chain));
    const want = new Map(plan.routes.map((r) => [`${r.family}|${r.mark}`, r]));
    const have = new Map((this.current?.routes ?? []).map((r) => [`${r.family}|${r.mark}`, r]));
    for (const [k, r] of have) {
      const w = want.get(k);
      if (!w || w.rip !== r.rip) await this.delRoute(r.family, r.mark, r.table);
    }
    for (const [k, r] of want) {
      const h = have.get(k);
      if (h && h.rip === r.rip) continue;
      const dev = await this.devFor(r.family, r.rip);
      await this.must(
        ip(r.family, 'route', 'replace', 'default', 'via', r.rip, 'dev', dev, 'onlink', 'table', String(r.table)),
      );
      await this.run(markRule(r.family, 'del', r.mark, r.table));
      await this.must(markRule(r.family, 'add', r.mark, r.table));
    }
    this.current = plan;
  }

  private async devFor(f: Fam, addr: string): Promise<string> {
    const argv = ipj(f, 'route', 'get', addr);
    const r = parseIpJson<{ dev?: string }>(argv, await this.must(argv));
    if (!r[0]?.dev)
      throw new KernelStateError('EKERNEL_NO_ROUTE', `no route to real server ${addr}: add a route to its network`);
    return r[0].dev;
  }

  private async delRoute(f: Fam, mark: number, table: number): Promise<void> {
    await this.run(markRule(f, 'del', mark, table));
    await this.run(ip(f, 'route', 'flush', 'table', String(table)));
  }

  /** Our mark rules (pref MARK_PREF, table in our range) and their tables. */
  private async removePolicy(): Promise<void> {
    for (const f of [4, 6] as Fam[]) {
      for (const r of await this.rules(f)) {
        const t = Number(r.table);
        if (r.priority === MARK_PREF && t >= TABLE_BASE && t < TABLE_BASE + MAX_DEST_MARKS) {
          await this.run(ip(f, 'rule', 'del', 'pref', String(MARK_PREF), 'lookup', String(t)));
          await this.run(ip(f, 'route', 'flush', 'table', String(t)));
        }
      }
    }
  }

  /** Remove everything tierlb made and put `lookup local` back at pref 0. */
  async removeAll(): Promise<void> {
    for (const f of [4, 6] as Fam[]) {
      for (let i = 0; i < 16; i++) {
        const r = await this.run(ipt(f, '-t', 'mangle', '-D', 'PREROUTING', '-j', this.chain));
        if (r.code !== 0) break;
      }
      await this.run(ipt(f, '-t', 'mangle', '-F', this.chain));
      await this.run(ipt(f, '-t', 'mangle', '-X', this.chain));
    }
    await this.removePolicy();
    for (const f of [4, 6] as Fam[]) {
      const rules = await this.rules(f);
      const at0 = rules.some((r) => r.priority === 0 && r.table === 'local');
      const atOurs = rules.some((r) => r.priority === LOCAL_PREF && r.table === 'local');
      if ((this.movedLocal.has(f) || atOurs) && !at0)
        await this.run(ip(f, 'rule', 'add', 'pref', '0', 'lookup', 'local'));
      if (atOurs) await this.run(ip(f, 'rule', 'del', 'pref', String(LOCAL_PREF), 'lookup', 'local'));
    }
    this.movedLocal.clear();
    this.installed = false;
    this.current = null;
  }

  /** What tierlb has in the kernel right now (for tests and `doctor`). */
  async list(): Promise<KernelState> {
    const st: KernelState = { chains: {}, jumps: {}, rules: [], routes: [], localPref: {} };
    for (const f of [4, 6] as Fam[]) {
      const s = await this.run(ipt(f, '-t', 'mangle', '-S', this.chain));
      st.chains[`v${f}`] =
        s.code === 0
          ? s.stdout
              .trim()
              .split('\n')
              .filter((l) => l.startsWith('-A'))
          : [];
      const p = await this.run(ipt(f, '-t', 'mangle', '-S', 'PREROUTING'));
      st.jumps[`v${f}`] = p.stdout.split('\n').filter((l) => l.trim() === `-A PREROUTING -j ${this.chain}`).length;
      const rules = await this.rules(f);
      st.localPref[`v${f}`] = rules.filter((r) => r.table === 'local').map((r) => r.priority);
      for (const r of rules) {
        const t = Number(r.table);
        if (r.priority === MARK_PREF && t >= TABLE_BASE && t < TABLE_BASE + MAX_DEST_MARKS) {
          st.rules.push({
            family: f,
            pref: r.priority,
            fwmark: r.fwmark ? Number(r.fwmark) : undefined,
            table: String(t),
          });
          const rt = await this.run(ip(f, 'route', 'show', 'table', String(t)));
          for (const l of rt.stdout.trim().split('\n').filter(Boolean))
            st.routes.push({ family: f, table: t, route: l });
        }
      }
    }
    return st;
  }
}
