/**
 * The main-thread side of the data path: starts the worker (engine + NFQUEUE), installs the kernel rules, forwards
 * admin requests and config diffs to the worker, and applies the rule plan each change produces before answering,
 * so when `tierlb adm -A ...` returns, the service's packets are already queued. stop() removes every rule.
 */
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MessageChannel, Worker } from 'node:worker_threads';
import type { Logger } from '../common/log.js';
import { GuardRules } from '../fwmark/guards.js';
import { KernelRules } from '../fwmark/kernel.js';
import type { RulePlan } from '../fwmark/plan.js';
import type { Counters } from '../l4/datapath/forward.js';
import { type QueueStats, readQueueStats } from '../l4/datapath/qstats.js';
import type { FastpathStart, FromWorker, ToWorker } from '../l4/datapath/types.js';
import type { EngineStats, EngineSysctl } from '../l4/engine.js';
import type { FastPathStats } from '../l4/fastpath/maps.js';
import { DirectorError } from './errors.js';

export interface DatapathOptions {
  queue?: number;
  queues?: number;
  maxLen?: number;
  log?: Logger;
  rules?: KernelRules;
  /** reassembly and ICMP-error rules (src/fwmark/guards.ts) */
  guards?: GuardRules;
  /** the kernel fast path: auto (used when BPF loads), on (required), off (the default here; the daemon's is auto) */
  fastpath?: 'auto' | 'on' | 'off';
  /** interfaces it goes on (default: every interface with an address but loopback) */
  fastpathInterfaces?: string[];
}

/** `tierlb director stats`: the worker's counters, the engine's, and what the kernel counted for our queues. */
export interface DatapathStats extends Counters {
  /** the engine's counters (table size, drops by reason, reschedules) and its live sysctls, when it keeps them */
  ipvs?: EngineStats & { sysctl: EngineSysctl };
  /**
   * /proc/net/netfilter/nfnetlink_queue for the director's queues: queue-full drops (queueDropped) and drops at
   * the socket (userDropped) never reach userspace; `waiting` is packets queued and still without a verdict
   */
  kernel: {
    queueDropped: number;
    userDropped: number;
    waiting: number;
    queues: QueueStats[];
    /** fragment reassembly in the director's namespace (/proc/net/snmp, snmp6), before the queue */
    reassembly?: Reassembly;
  };
  /**
   * the kernel fast path: how it started and, while active, its per-CPU counters summed (hits, misses by reason),
   * its map sizes and the connections the engine has in it
   */
  fastpath?: FastpathStart & Partial<FastPathStats> & { inKernel?: number };
}

/**
 * The kernel's reassembly counters: fragments that needed it, datagrams reassembled, failures (timeouts, memory).
 * IPv4's count what the defrag hook reassembled (ip_defrag updates them); netfilter's IPv6 reassembly (nf_ct_frag6)
 * does not update Ip6Reasm*, so v6 shows only what the director's own stack reassembled.
 */
export interface Reassembly {
  v4: { reqds: number; oks: number; fails: number };
  v6: { reqds: number; oks: number; fails: number };
}

/** Read /proc/net/snmp and /proc/net/snmp6 (zeros for what cannot be read). */
export function readReassembly(snmp = '/proc/net/snmp', snmp6 = '/proc/net/snmp6'): Reassembly {
  const r: Reassembly = { v4: { reqds: 0, oks: 0, fails: 0 }, v6: { reqds: 0, oks: 0, fails: 0 } };
  try {
    const ip = readFileSync(snmp, 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('Ip: '));
    if (ip.length >= 2) {
      const keys = ip[0].split(' ');
      const vals = ip[1].split(' ');
      const at = (k: string) => Number(vals[keys.indexOf(k)] ?? 0);
      r.v4 = { reqds: at('ReasmReqds'), oks: at('ReasmOKs'), fails: at('ReasmFails') };
    }
  } catch {}
  try {
    const m = new Map(
      readFileSync(snmp6, 'utf8')
        .split('\n')
        .map((l) => l.trim().split(/\s+/) as [string, string]),
    );
    r.v6 = {
      reqds: Number(m.get('Ip6ReasmReqds') ?? 0),
      oks: Number(m.get('Ip6ReasmOKs') ?? 0),
      fails: Number(m.get('Ip6ReasmFails') ?? 0),
    };
  } catch {}
  return r;
}

/** Totals over the director's queues. */
export function kernelQueueStats(queues: QueueStats[]): DatapathStats['kernel'] {
  let queueDropped = 0;
  let userDropped = 0;
  let waiting = 0;
  for (const q of queues) {
    queueDropped += q.queueDropped;
    userDropped += q.userDropped;
    waiting += q.waiting;
  }
  return { queueDropped, userDropped, waiting, queues };
}

export class Datapath {
  private worker: Worker | null = null;
  private readonly channel = new MessageChannel();
  private nextId = 1;
  private readonly pending = new Map<number, (m: Extract<FromWorker, { type: 'reply' }>) => void>();
  /** rule applications run one after the other, in the order the worker produced the plans */
  private ruleChain: Promise<void> = Promise.resolve();
  readonly rules: KernelRules;
  readonly guards: GuardRules;
  engineName = '';
  /** what became of the fast path at start */
  fastpath: FastpathStart | undefined;
  private stopped = false;
  /** set when the worker died; the daemon exits */
  onFatal: (msg: string) => void = () => {};

  constructor(private readonly o: DatapathOptions = {}) {
    this.rules = o.rules ?? new KernelRules();
    this.guards = o.guards ?? new GuardRules();
  }

  get queue(): number {
    return this.o.queue ?? 0;
  }

  async start(): Promise<void> {
    const ext = extname(fileURLToPath(import.meta.url));
    const url = new URL(`./worker${ext}`, import.meta.url);
    const port = this.channel.port2;
    const ready = new Promise<Extract<FromWorker, { type: 'ready' }>>((resolve, reject) => {
      this.channel.port1.on('message', (m: FromWorker) => {
        if (m.type === 'ready') resolve(m);
        else if (m.type === 'fatal') {
          reject(new DirectorError('EDIRECTOR_DATAPATH', m.message));
          if (!this.stopped) this.onFatal(m.message);
        } else if (m.type === 'reply') {
          const cb = this.pending.get(m.id);
          this.pending.delete(m.id);
          cb?.(m);
        } else if (m.type === 'stopped') {
          this.o.log?.info({ counters: m.counters }, 'data path stopped');
        }
      });
    });
    // under tsx (tests, development) the worker needs the TypeScript loader registered in its own thread
    const entry: string | URL =
      ext === '.ts'
        ? `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((m) => { m.register(); return import(${JSON.stringify(url.href)}); });`
        : url;
    this.worker = new Worker(entry, {
      eval: ext === '.ts',
      workerData: {
        queue: this.queue,
        queues: this.o.queues ?? 1,
        maxLen: this.o.maxLen,
        port,
        fastpath: this.o.fastpath ?? 'off',
        fastpathInterfaces: this.o.fastpathInterfaces,
      },
      transferList: [port],
    });
    this.worker.on('error', (e) => {
      this.o.log?.error({ err: e }, 'data path worker error');
      if (!this.stopped) this.onFatal(e.message);
    });
    const r = await ready;
    this.engineName = r.engine;
    this.fastpath = r.fastpath;
    const fp = r.fastpath;
    if (fp?.active) this.o.log?.info({ fastpath: fp.mode, attached: fp.attached }, 'kernel fast path attached');
    else if (fp?.mode === 'auto')
      this.o.log?.warn({ reason: fp.reason }, 'kernel fast path unavailable, every packet takes the NFQUEUE path');
    // the queue is bound before any packet is diverted to it
    await this.rules.install(r.plan);
    await this.guards.install(r.plan);
    this.o.log?.info({ queue: this.queue, engine: r.engine }, 'data path running');
  }

  private request(msg: ToWorker & { id: number }): Promise<Extract<FromWorker, { type: 'reply' }>> {
    return new Promise((resolve) => {
      this.pending.set(msg.id, resolve);
      this.channel.port1.postMessage(msg);
    });
  }

  private applyPlan(plan: RulePlan | undefined): Promise<void> {
    if (!plan) return this.ruleChain;
    this.ruleChain = this.ruleChain
      .then(() => this.rules.apply(plan))
      .then(() => this.guards.apply(plan))
      .catch((e: Error) => this.o.log?.error({ err: e.message }, 'applying kernel rules failed'));
    return this.ruleChain;
  }

  /** One admin request line (`{"argv":[...],"stdin":"..."}`) → one response line. */
  async adm(line: string): Promise<string> {
    const r = await this.request({ type: 'adm', id: this.nextId++, line });
    await this.applyPlan(r.plan);
    return r.response ?? JSON.stringify({ code: 1, stdout: '', stderr: `${r.error}\n` });
  }

  /** Apply a PlanDiff to the live table; throws with the reason when the worker refused it. */
  async applyDiff(diff: unknown): Promise<void> {
    const r = await this.request({ type: 'diff', id: this.nextId++, diff });
    await this.applyPlan(r.plan);
    if (r.error) throw new DirectorError('EDIRECTOR_DATAPATH', r.error);
  }

  /** An HA request to the worker (src/ha/worker-ha.ts); the rules it changes are applied before it resolves. */
  async ha(req: unknown): Promise<unknown> {
    const r = await this.request({ type: 'ha', id: this.nextId++, req });
    await this.applyPlan(r.plan);
    if (r.error) throw new DirectorError('EDIRECTOR_DATAPATH', r.error);
    return JSON.parse(r.response ?? 'null');
  }

  async stats(): Promise<DatapathStats> {
    const r = await this.request({ type: 'stats', id: this.nextId++ });
    const s = JSON.parse(r.response ?? '{}') as Omit<DatapathStats, 'kernel'>;
    const kernel = kernelQueueStats(readQueueStats(this.queue, this.o.queues ?? 1));
    return { ...s, kernel: { ...kernel, reassembly: readReassembly() } };
  }

  /** Remove the kernel rules first (packets stop coming), then stop the worker. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.ruleChain;
    await this.guards.removeAll();
    await this.rules.removeAll();
    if (this.worker) {
      const w = this.worker;
      const exited = new Promise<void>((resolve) => w.once('exit', () => resolve()));
      this.channel.port1.postMessage({ type: 'stop' } satisfies ToWorker);
      const t = setTimeout(() => void w.terminate(), 2000);
      await exited;
      clearTimeout(t);
    }
    this.channel.port1.close();
  }
}
