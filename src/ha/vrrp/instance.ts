/**
 * The VRRP runner: a VrrpInstance drives one VrrpMachine on a real interface (raw socket, timers, addresses,
 * gratuitous ARP, notify scripts) and emits its state changes so a daemon can embed it; runVrrp() starts a whole
 * VrrpConfig (instances and their tracked scripts).
 */
import { EventEmitter } from 'node:events';
import { type Clock, systemClock } from '../../l4/clock.js';
import { type Logger, log as rootLog } from '../../log.js';
import { type InterfaceInfo, interfaceInfo, interfaceUp, runCommand, sendGarp, setVips, VrrpSocket } from './io.js';
import { DropCounters, type DropReason, decodePacket, encodeAdvert, ipv4Header, validate } from './packet.js';
import { ScriptStatus } from './script-status.js';
import { type VrrpAction, VrrpMachine } from './state.js';
import {
  VRRP_MCAST_GROUP,
  type VrrpConfig,
  type VrrpInstanceConfig,
  type VrrpNotify,
  type VrrpScriptConfig,
  type VrrpStateName,
} from './types.js';

export interface VrrpStateChange {
  instance: string;
  from: VrrpStateName;
  to: VrrpStateName;
  reason: string;
  priority: number;
  /** clock time of the change (ms) */
  at: number;
}

export interface VrrpInstanceEvents {
  state: [VrrpStateChange];
  'two-masters': [{ instance: string; masters: string[] }];
  error: [Error];
}

export interface VrrpInstanceOptions {
  clock?: Clock;
  logger?: Logger;
  /** the vrrp_script definitions the instance's track_script refer to */
  scripts?: VrrpScriptConfig[];
  /** how often tracked interfaces are polled (ms, default 1000) */
  interfacePollMs?: number;
}

/** Drop reasons that are normal on a shared segment and only logged at debug level. */
const QUIET_DROPS: ReadonlySet<DropReason> = new Set(['vrid', 'own']);

export class VrrpInstance extends EventEmitter<VrrpInstanceEvents> {
  readonly drops = new DropCounters();
  private machine: VrrpMachine | undefined;
  private ifc: InterfaceInfo | undefined;
  private sock: VrrpSocket | undefined;
  private srcIp = '';
  private timer: NodeJS.Timeout | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private garpTimer: NodeJS.Timeout | undefined;
  private queue: Promise<void> = Promise.resolve();
  private readonly clock: Clock;
  private readonly log: Logger;

  constructor(
    readonly cfg: VrrpInstanceConfig,
    private readonly opts: VrrpInstanceOptions = {},
  ) {
    super();
    this.clock = opts.clock ?? systemClock;
    this.log = (opts.logger ?? rootLog).child({ vrrp: cfg.name });
  }

  get state(): VrrpStateName {
    return this.machine?.state ?? 'INIT';
  }

  get priority(): number {
    return this.machine?.effectivePriority ?? this.cfg.priority;
  }

  get counters() {
    return this.machine?.counters;
  }

  async start(): Promise<void> {
    if (this.machine) return;
    const c = this.cfg;
    this.ifc = await interfaceInfo(c.interface);
    const vipSet = new Set(c.virtualIpaddress.map((v) => v.addr));
    this.srcIp = c.unicastSrcIp ?? this.ifc.addresses.find((a) => !vipSet.has(a)) ?? '';
    if (!this.srcIp) throw new Error(`vrrp ${c.name}: ${c.interface} has no IPv4 address to send from`);
    const scripts = new Map((this.opts.scripts ?? []).map((s) => [s.name, s]));
    this.machine = new VrrpMachine(
      {
        name: c.name,
        version: c.version,
        priority: c.priority,
        advertIntMs: Math.round(c.advertInt * 1000),
        nopreempt: c.nopreempt,
        preemptDelayMs: Math.round(c.preemptDelay * 1000),
        stateHint: c.state,
        primaryIp: this.srcIp,
        trackInterfaces: [{ name: c.interface, weight: 0 }, ...c.trackInterface.filter((t) => t.name !== c.interface)],
        trackScripts: c.trackScript.map((t) => ({
          name: t.name,
          weight: t.weight ?? scripts.get(t.name)?.weight ?? 0,
        })),
      },
      this.clock,
    );
    const own = new Set([this.srcIp, ...this.ifc.addresses]);
    const peers = new Set(c.unicastPeer);
    const expect = {
      version: c.version,
      vrid: c.virtualRouterId,
      interval: c.version === 2 ? c.advertInt : Math.round(c.advertInt * 100),
      authPass: c.authPass,
      addressCount: c.virtualIpaddress.length,
      ownAddresses: own,
    };
    this.sock = new VrrpSocket(
      this.ifc,
      (buf) => {
        const d = decodePacket(buf);
        if (!d.ok) return this.drop(d.reason, undefined);
        if (peers.size > 0 && !peers.has(d.packet.src)) return this.drop('peer', d.packet.src);
        const reason = validate(d.packet, expect);
        if (reason) return this.drop(reason, d.packet.src);
        const a = d.packet.advert;
        this.apply(this.machine?.receive({ src: d.packet.src, priority: a.priority, intervalCs: a.interval }) ?? []);
      },
      (e) => this.log.error({ err: e.message }, 'raw socket error'),
      peers.size === 0,
    );
    // the addresses may be left over from a crash: a backup must not hold them
    await setVips(c.virtualIpaddress, c.interface, false);
    for (const t of this.machine.cfg.trackInterfaces) this.machine.setInterface(t.name, interfaceUp(t.name));
    this.log.info(
      { interface: c.interface, vrid: c.virtualRouterId, priority: this.machine.effectivePriority, version: c.version },
      'VRRP instance starting',
    );
    this.apply(this.machine.start());
    this.pollTimer = setInterval(() => this.pollInterfaces(), this.opts.interfacePollMs ?? 1000);
  }

  /** Leave: a master sends priority 0 and removes its addresses; resolves when that is done. */
  async stop(): Promise<void> {
    const m = this.machine;
    if (!m) return;
    clearInterval(this.pollTimer);
    clearTimeout(this.garpTimer);
    this.apply(m.stop());
    clearTimeout(this.timer);
    await this.queue;
    this.sock?.close();
    this.sock = undefined;
    this.machine = undefined;
  }

  /** A tracked script changed status. */
  scriptResult(name: string, ok: boolean): void {
    if (this.machine) this.apply(this.machine.setScript(name, ok));
  }

  private pollInterfaces(): void {
    const m = this.machine;
    if (!m) return;
    for (const t of m.cfg.trackInterfaces) this.apply(m.setInterface(t.name, interfaceUp(t.name)));
  }

  private drop(reason: DropReason, src: string | undefined): void {
    const n = this.drops.add(reason);
    if (QUIET_DROPS.has(reason)) this.log.debug({ reason, src }, 'VRRP packet dropped');
    else if (n === 1 || n % 100 === 0) this.log.warn({ reason, src, count: n }, 'VRRP packet dropped');
  }

  private apply(actions: VrrpAction[]): void {
    const m = this.machine;
    if (!m) return;
    for (const a of actions) {
      switch (a.type) {
        case 'send':
          this.enqueue(() => this.sendAdvert(a.priority));
          break;
        case 'vips':
          this.enqueue(() => setVips(this.cfg.virtualIpaddress, this.cfg.interface, a.add));
          if (!a.add) clearTimeout(this.garpTimer);
          break;
        case 'garp':
          this.enqueue(() => this.garpRound());
          if (this.cfg.garpMasterDelay > 0) {
            clearTimeout(this.garpTimer);
            this.garpTimer = setTimeout(() => {
              if (this.machine?.state === 'MASTER') this.enqueue(() => this.garpRound());
            }, this.cfg.garpMasterDelay * 1000);
            this.garpTimer.unref();
          }
          break;
        case 'state': {
          const ev: VrrpStateChange = { instance: this.cfg.name, ...a, at: this.clock.now() };
          delete (ev as { type?: string }).type;
          this.log.info({ from: a.from, to: a.to, reason: a.reason, priority: a.priority }, `Entering ${a.to} STATE`);
          this.emit('state', ev);
          this.notify(a.to === 'INIT' ? 'STOP' : a.to, a.priority);
          break;
        }
        case 'two-masters':
          this.emit('two-masters', { instance: this.cfg.name, masters: a.masters });
          break;
        case 'log':
          this.log[a.level](a.msg);
          break;
      }
    }
    this.reschedule();
  }

  private enqueue(fn: () => Promise<void> | void): void {
    this.queue = this.queue.then(fn).catch((e: Error) => {
      this.log.error({ err: e.message }, 'VRRP action failed');
      this.emit('error', e);
    });
  }

  private reschedule(): void {
    clearTimeout(this.timer);
    const d = this.machine?.nextDeadline();
    if (d === undefined) return;
    this.timer = setTimeout(() => this.apply(this.machine?.tick() ?? []), Math.max(0, d - this.clock.now()));
  }

  private async sendAdvert(priority: number): Promise<void> {
    const c = this.cfg;
    if (!this.sock) return;
    const dsts = c.unicastPeer.length > 0 ? c.unicastPeer : [VRRP_MCAST_GROUP];
    for (const dst of dsts) {
      const vrrp = encodeAdvert({
        version: c.version,
        vrid: c.virtualRouterId,
        priority,
        addresses: c.virtualIpaddress.map((v) => v.addr),
        interval: c.version === 2 ? c.advertInt : Math.round(c.advertInt * 100),
        authPass: c.version === 2 ? c.authPass : undefined,
        src: this.srcIp,
        dst,
      });
      await this.sock.send(Buffer.concat([ipv4Header(this.srcIp, dst, vrrp.length), vrrp]), dst);
    }
  }

  private async garpRound(): Promise<void> {
    const byDev = new Map<string, string[]>();
    for (const v of this.cfg.virtualIpaddress) {
      const dev = v.dev ?? this.cfg.interface;
      byDev.set(dev, [...(byDev.get(dev) ?? []), v.addr]);
    }
    for (const [dev, addrs] of byDev) {
      const ifc = dev === this.cfg.interface && this.ifc ? this.ifc : await interfaceInfo(dev);
      for (let i = 0; i < this.cfg.garpMasterRepeat; i++) sendGarp(ifc, addrs);
    }
  }

  private notify(state: 'MASTER' | 'BACKUP' | 'FAULT' | 'STOP', priority: number): void {
    const n: VrrpNotify = this.cfg.notify;
    const specific = { MASTER: n.master, BACKUP: n.backup, FAULT: n.fault, STOP: n.stop }[state];
    const run = (cmd: string, args: string[]) =>
      void runCommand(cmd, args).then((code) => {
        if (code !== 0) this.log.warn({ cmd, code }, 'notify script failed');
      });
    if (specific) run(specific, []);
    if (n.notify) run(n.notify, ['INSTANCE', this.cfg.name, state, String(priority)]);
  }
}

/** Runs each vrrp_script on its interval and reports status changes (after rise/fall) to the instances. */
class ScriptTracker {
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private readonly status: ScriptStatus;

  constructor(
    readonly script: VrrpScriptConfig,
    private readonly onChange: (ok: boolean) => void,
    private readonly log: Logger,
  ) {
    this.status = new ScriptStatus(script.rise, script.fall);
  }

  start(): void {
    const loop = async () => {
      if (this.running) return;
      this.running = true;
      const code = await runCommand(this.script.script, [], this.script.timeout * 1000);
      this.running = false;
      const changed = this.status.result(code === 0);
      if (changed !== undefined) {
        this.log.info({ script: this.script.name, ok: changed, code }, 'VRRP script status changed');
        this.onChange(changed);
      }
    };
    this.timer = setInterval(() => void loop(), this.script.interval * 1000);
    void loop();
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

export interface VrrpRunner {
  instances: VrrpInstance[];
  stop(): Promise<void>;
}

/** Start every instance of a VrrpConfig and the scripts they track. */
export async function runVrrp(
  config: VrrpConfig,
  opts: Omit<VrrpInstanceOptions, 'scripts'> & { onInstance?: (i: VrrpInstance) => void } = {},
): Promise<VrrpRunner> {
  const logger = opts.logger ?? rootLog;
  if (config.syncGroups.length > 0)
    logger.warn({ groups: config.syncGroups.map((g) => g.name) }, 'vrrp_sync_group is not supported yet: ignored');
  const instances = config.instances.map((c) => new VrrpInstance(c, { ...opts, scripts: config.scripts }));
  for (const i of instances) opts.onInstance?.(i);
  const trackers: ScriptTracker[] = [];
  for (const s of config.scripts) {
    const users = instances.filter((i) => i.cfg.trackScript.some((t) => t.name === s.name));
    if (users.length === 0) continue;
    trackers.push(
      new ScriptTracker(
        s,
        (ok) => {
          for (const i of users) i.scriptResult(s.name, ok);
        },
        logger,
      ),
    );
  }
  const runner: VrrpRunner = {
    instances,
    async stop() {
      for (const t of trackers) t.stop();
      await Promise.all(instances.map((i) => i.stop()));
    },
  };
  try {
    for (const i of instances) await i.start();
  } catch (e) {
    await runner.stop();
    throw e;
  }
  for (const t of trackers) t.start();
  return runner;
}
