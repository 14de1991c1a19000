/**
 * The VRRP runner: a VrrpInstance drives one VrrpMachine on a real interface (raw socket, timers, addresses,
 * gratuitous ARP, notify scripts) and emits its state changes so a daemon can embed it; runVrrp() starts a whole
 * VrrpConfig (instances and their tracked scripts).
 */
import { EventEmitter } from 'node:events';
import { isIP } from 'node:net';
import { canonicalAddr } from '../../common/addr.js';
import { type Clock, systemClock } from '../../common/clock.js';
import { type Logger, log as rootLog } from '../../common/log.js';
import { runScript } from '../../sys/script.js';
import { vrrpWarnings } from './config.js';
import { VrrpError } from './errors.js';
import {
  type InterfaceInfo,
  interfaceInfo,
  interfaceUp,
  sendGarp,
  sendUnsolicitedNa,
  setVips,
  Vrrp6Socket,
  VrrpSocket,
} from './io.js';
import {
  type Decoded,
  DropCounters,
  type DropReason,
  decodePacket,
  decodePacket6,
  encodeAdvert,
  ipv4Header,
  validate,
} from './packet.js';
import { ScriptStatus } from './script-status.js';
import { type VrrpAction, VrrpMachine } from './state.js';
import { type SyncGroupChange, VrrpSyncGroupMachine } from './sync-group.js';
import {
  instanceFamily,
  isLinkLocal6,
  VRRP_MCAST_GROUP,
  VRRP6_MCAST_GROUP,
  type VrrpConfig,
  type VrrpInstanceConfig,
  type VrrpNotify,
  type VrrpScriptConfig,
  type VrrpStateName,
  type VrrpSyncGroup,
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
  /** the current status of a tracked script (a runner's tracker may have seen it fail before this instance started) */
  scriptOk?: (name: string) => boolean | undefined;
}

/**
 * The address an instance's adverts come from on `ifc`; throws when there is none. IPv4: the first address of the
 * interface that is not a VIP. IPv6: the interface's first link-local address that is not a VIP (RFC 5798 5.1.2.1;
 * a link-local VIP left over from a crash, or held by this master during a reload check, is listed before the
 * interface's own by the kernel). unicast_src_ip overrides both. Pure.
 */
export function pickSource(c: VrrpInstanceConfig, ifc: InterfaceInfo): string {
  if (c.unicastSrcIp !== undefined) return c.unicastSrcIp;
  const vipSet = new Set(c.virtualIpaddress.map((v) => (isIP(v.addr) ? canonicalAddr(v.addr) : v.addr)));
  if (instanceFamily(c) === 6) {
    const src6 = ifc.addresses6.find((a) => isLinkLocal6(a) && !vipSet.has(canonicalAddr(a)));
    if (!src6)
      throw new VrrpError(
        'EVRRP_NO_SOURCE',
        `vrrp ${c.name}: ${c.interface} has no IPv6 link-local address to send from`,
      );
    return src6;
  }
  const srcIp = ifc.addresses.find((a) => !vipSet.has(a));
  if (!srcIp) throw new VrrpError('EVRRP_NO_SOURCE', `vrrp ${c.name}: ${c.interface} has no IPv4 address to send from`);
  return srcIp;
}

/** The interface an instance runs on and the address its adverts come from; throws when it cannot run there. */
export async function instanceSource(c: VrrpInstanceConfig): Promise<{ ifc: InterfaceInfo; srcIp: string }> {
  const ifc = await interfaceInfo(c.interface);
  return { ifc, srcIp: pickSource(c, ifc) };
}

/** Drop reasons that are normal on a shared segment and only logged at debug level. */
const QUIET_DROPS: ReadonlySet<DropReason> = new Set(['vrid', 'own']);

/** The interval field of the advertisements: v2 Adver Int in seconds, v3 Max Adver Int in centiseconds. */
const advertField = (c: VrrpInstanceConfig) => (c.version === 2 ? c.advertInt : Math.round(c.advertInt * 100));

export class VrrpInstance extends EventEmitter<VrrpInstanceEvents> {
  readonly drops = new DropCounters();
  private machine: VrrpMachine | undefined;
  private ifc: InterfaceInfo | undefined;
  private sock: VrrpSocket | Vrrp6Socket | undefined;
  private family: 4 | 6 = 4;
  private srcIp = '';
  private timer: NodeJS.Timeout | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private garpTimer: NodeJS.Timeout | undefined;
  private queue: Promise<void> = Promise.resolve();
  private readonly clock: Clock;
  private readonly log: Logger;
  private hub: SyncHub | undefined;

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

  /** the running state machine (undefined before start and after stop) */
  get vrrpMachine(): VrrpMachine | undefined {
    return this.machine;
  }

  /** Join a sync group (before start). */
  joinSyncGroup(hub: SyncHub): void {
    this.hub = hub;
  }

  async start(): Promise<void> {
    if (this.machine) return;
    const c = this.cfg;
    const src = await instanceSource(c);
    this.ifc = src.ifc;
    this.srcIp = src.srcIp;
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
    this.family = instanceFamily(c);
    for (const w of vrrpWarnings({ instances: [c], scripts: [], syncGroups: [] })) this.log.warn(w);
    const own = new Set([this.srcIp, ...(this.family === 6 ? this.ifc.addresses6 : this.ifc.addresses)]);
    const peers = new Set(c.unicastPeer);
    const expect = {
      version: c.version,
      vrid: c.virtualRouterId,
      interval: advertField(c),
      authPass: c.authPass,
      addressCount: c.virtualIpaddress.length,
      ownAddresses: own,
    };
    const onDecoded = (d: Decoded) => {
      if (!d.ok) return this.drop(d.reason, undefined);
      if (peers.size > 0 && !peers.has(d.packet.src)) return this.drop('peer', d.packet.src);
      // validate() drops a TTL / hop limit other than 255 (RFC 5798 7.1)
      const reason = validate(d.packet, expect);
      if (reason) return this.drop(reason, d.packet.src);
      const a = d.packet.advert;
      this.apply(this.machine?.receive({ src: d.packet.src, priority: a.priority, intervalCs: a.interval }) ?? []);
    };
    const onError = (e: Error) => this.log.error({ err: e.message }, 'raw socket error');
    this.sock =
      this.family === 6
        ? new Vrrp6Socket(
            this.ifc,
            this.srcIp,
            (p) => onDecoded(decodePacket6(p.payload, p.src, p.dst ?? VRRP6_MCAST_GROUP, p.hopLimit)),
            onError,
          )
        : new VrrpSocket(this.ifc, (buf) => onDecoded(decodePacket(buf)), onError, peers.size === 0);
    // the addresses may be left over from a crash: a backup must not hold them
    await setVips(c.virtualIpaddress, c.interface, false);
    for (const t of this.machine.cfg.trackInterfaces) this.machine.setInterface(t.name, interfaceUp(t.name));
    for (const t of this.machine.cfg.trackScripts)
      if (this.opts.scriptOk?.(t.name) === false) this.machine.setScript(t.name, false);
    this.hub?.group.attach(this.machine);
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
    this.hub?.group.detach(m);
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

  /** Carry out what the sync group made this instance's machine do. */
  applyFromGroup(actions: VrrpAction[]): void {
    this.apply(actions, false);
  }

  private apply(actions: VrrpAction[], toGroup = true): void {
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
    if (toGroup) this.hub?.react(m, actions);
  }

  private enqueue(fn: () => Promise<void> | void): void {
    this.queue = this.queue.then(fn).catch((e: Error) => {
      this.log.error({ err: e.message }, 'VRRP action failed');
      // logged above; an unheard 'error' event would end the process (a send on an interface that just went down)
      if (this.listenerCount('error') > 0) this.emit('error', e);
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
    const six = this.family === 6;
    const dsts = c.unicastPeer.length > 0 ? c.unicastPeer : [six ? VRRP6_MCAST_GROUP : VRRP_MCAST_GROUP];
    for (const dst of dsts) {
      const vrrp = encodeAdvert({
        version: c.version,
        vrid: c.virtualRouterId,
        priority,
        addresses: c.virtualIpaddress.map((v) => v.addr),
        interval: advertField(c),
        authPass: c.version === 2 ? c.authPass : undefined,
        src: this.srcIp,
        dst,
      });
      if (six) await this.sock.send(vrrp, dst);
      else await this.sock.send(Buffer.concat([ipv4Header(this.srcIp, dst, vrrp.length), vrrp]), dst);
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
      // IPv6: unsolicited Neighbor Advertisements instead of gratuitous ARP (keepalived's vrrp_ndisc.c)
      for (let i = 0; i < this.cfg.garpMasterRepeat; i++)
        if (this.family === 6) sendUnsolicitedNa(ifc, addrs);
        else sendGarp(ifc, addrs);
    }
  }

  private notify(state: 'MASTER' | 'BACKUP' | 'FAULT' | 'STOP', priority: number): void {
    const n: VrrpNotify = this.cfg.notify;
    const specific = { MASTER: n.master, BACKUP: n.backup, FAULT: n.fault, STOP: n.stop }[state];
    const run = (cmd: string, args: string[]) =>
      void runScript(cmd, args).then(({ code, error }) => {
        if (code !== 0) this.log.warn({ cmd, code, err: error?.message }, 'notify script failed');
      });
    if (specific) run(specific, []);
    if (n.notify) run(n.notify, ['INSTANCE', this.cfg.name, state, String(priority)]);
  }
}

/** Runs each vrrp_script on its interval and reports status changes (after rise/fall) to the instances. */
class ScriptTracker {
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  readonly status: ScriptStatus;

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
      // past its timeout the script's process group is killed (SIGKILL), as before
      const { code } = await runScript(this.script.script, [], { timeoutMs: this.script.timeout * 1000 });
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

/** A sync group at run time: its pure machine, its members' instances, its notify scripts. */
export class SyncHub {
  readonly group: VrrpSyncGroupMachine;

  constructor(
    public cfg: VrrpSyncGroup,
    private readonly members: () => VrrpInstance[],
    private readonly log: Logger,
    private readonly onChange?: (c: SyncGroupChange) => void,
  ) {
    this.group = new VrrpSyncGroupMachine(cfg.name, cfg.group.length);
  }

  /** A member's machine produced `actions`: the others follow, the group's notify scripts run. */
  react(m: VrrpMachine, actions: VrrpAction[]): void {
    const r = this.group.react(m, actions);
    for (const c of r.changes) {
      this.log.info({ group: c.group, from: c.from, to: c.to, reason: c.reason }, `VRRP_Group(${c.group}) ${c.to}`);
      this.onChange?.(c);
      this.notify(c.to);
    }
    for (const e of r.effects)
      this.members()
        .find((i) => i.vrrpMachine === e.machine)
        ?.applyFromGroup(e.actions);
  }

  private notify(state: VrrpStateName): void {
    const n = this.cfg.notify;
    const specific =
      state === 'MASTER' ? n.master : state === 'BACKUP' ? n.backup : state === 'FAULT' ? n.fault : undefined;
    const run = (cmd: string, args: string[]) =>
      void runScript(cmd, args).then(({ code, error }) => {
        if (code !== 0) this.log.warn({ cmd, code, err: error?.message }, 'sync group notify script failed');
      });
    if (specific) run(specific, []);
    // keepalived: GROUP <name> <STATE> 0
    if (n.notify) run(n.notify, ['GROUP', this.cfg.name, state, '0']);
  }
}

export interface VrrpReloadResult {
  kept: string[];
  restarted: string[];
  added: string[];
  removed: string[];
}

export interface VrrpRunner {
  readonly instances: VrrpInstance[];
  stop(): Promise<void>;
  /**
   * Apply a new VrrpConfig: instances whose configuration (their tracked scripts' definitions and their sync group's
   * membership included) is unchanged keep running untouched — no state change, no VIP flap; a changed notify script
   * is taken over in place; changed instances are stopped and started anew, removed ones stopped, new ones started.
   * Refused (throws, nothing changed) when a new or changed instance cannot run (interface, source address).
   */
  reload(next: VrrpConfig): Promise<VrrpReloadResult>;
  /** What reload() would refuse: throws when a new or changed instance of `next` cannot run. */
  check(next: VrrpConfig): Promise<void>;
}

export type VrrpRunOptions = Omit<VrrpInstanceOptions, 'scripts' | 'scriptOk'> & {
  onInstance?: (i: VrrpInstance) => void;
  onGroup?: (c: SyncGroupChange) => void;
};

/** What makes two configurations of one instance the same running instance (notify scripts aside). */
function instanceSig(cfg: VrrpConfig, c: VrrpInstanceConfig): string {
  const group = cfg.syncGroups.find((g) => g.group.includes(c.name));
  return JSON.stringify({
    c: { ...c, notify: undefined },
    scripts: c.trackScript.map((t) => cfg.scripts.find((s) => s.name === t.name)),
    group: group ? { name: group.name, members: group.group } : null,
  });
}

const groupSig = (g: VrrpSyncGroup) => JSON.stringify({ name: g.name, members: g.group });

class Runner implements VrrpRunner {
  instances: VrrpInstance[] = [];
  private trackers = new Map<string, ScriptTracker>();
  private hubs = new Map<string, SyncHub>();
  private readonly logger: Logger;

  constructor(
    private config: VrrpConfig,
    private readonly opts: VrrpRunOptions,
  ) {
    this.logger = opts.logger ?? rootLog;
  }

  private make(c: VrrpInstanceConfig): VrrpInstance {
    const i = new VrrpInstance(c, {
      ...this.opts,
      scripts: this.config.scripts,
      scriptOk: (name) => this.trackers.get(name)?.status.ok,
    });
    const g = this.config.syncGroups.find((x) => x.group.includes(c.name));
    const hub = g && this.hubs.get(g.name);
    if (hub) i.joinSyncGroup(hub);
    this.opts.onInstance?.(i);
    return i;
  }

  /** Sync groups of the current config: unchanged ones keep their hub (and state), the others get a new one. */
  private syncHubs(): void {
    const next = new Map<string, SyncHub>();
    for (const g of this.config.syncGroups) {
      const old = this.hubs.get(g.name);
      if (old && groupSig(old.cfg) === groupSig(g)) {
        old.cfg = g;
        next.set(g.name, old);
      } else next.set(g.name, new SyncHub(g, () => this.instances, this.logger, this.opts.onGroup));
    }
    this.hubs = next;
  }

  /** Trackers for the scripts some instance tracks: unchanged ones keep running (and their status). */
  private syncTrackers(): ScriptTracker[] {
    const fresh: ScriptTracker[] = [];
    const next = new Map<string, ScriptTracker>();
    for (const s of this.config.scripts) {
      if (!this.config.instances.some((c) => c.trackScript.some((t) => t.name === s.name))) continue;
      const old = this.trackers.get(s.name);
      if (old && JSON.stringify(old.script) === JSON.stringify(s)) {
        next.set(s.name, old);
        continue;
      }
      const t = new ScriptTracker(
        s,
        (ok) => {
          for (const i of this.instances)
            if (i.cfg.trackScript.some((x) => x.name === s.name)) i.scriptResult(s.name, ok);
        },
        this.logger,
      );
      next.set(s.name, t);
      fresh.push(t);
    }
    for (const [name, t] of this.trackers) if (next.get(name) !== t) t.stop();
    this.trackers = next;
    return fresh;
  }

  async start(): Promise<void> {
    this.syncHubs();
    const fresh = this.syncTrackers();
    this.instances = this.config.instances.map((c) => this.make(c));
    try {
      for (const i of this.instances) await i.start();
    } catch (e) {
      await this.stop();
      throw e;
    }
    for (const t of fresh) t.start();
  }

  async stop(): Promise<void> {
    for (const t of this.trackers.values()) t.stop();
    await Promise.all(this.instances.map((i) => i.stop()));
  }

  private plan(next: VrrpConfig) {
    const running = new Map(this.instances.map((i) => [i.cfg.name, i]));
    const r: VrrpReloadResult = { kept: [], restarted: [], added: [], removed: [] };
    const keep = new Map<string, VrrpInstance>();
    const toStart: VrrpInstanceConfig[] = [];
    for (const c of next.instances) {
      const old = running.get(c.name);
      if (old && instanceSig(this.config, old.cfg) === instanceSig(next, c)) {
        keep.set(c.name, old);
        r.kept.push(c.name);
      } else {
        toStart.push(c);
        (old ? r.restarted : r.added).push(c.name);
      }
    }
    r.removed = [...running.keys()].filter((n) => !next.instances.some((c) => c.name === n));
    return { r, keep, toStart };
  }

  async check(next: VrrpConfig): Promise<void> {
    for (const c of this.plan(next).toStart) await instanceSource(c);
  }

  async reload(next: VrrpConfig): Promise<VrrpReloadResult> {
    const { r, keep, toStart } = this.plan(next);
    // refuse before anything changes
    for (const c of toStart) await instanceSource(c);
    const stopping = this.instances.filter((i) => !keep.has(i.cfg.name));
    await Promise.all(stopping.map((i) => i.stop()));
    for (const [name, i] of keep) i.cfg.notify = next.instances.find((c) => c.name === name)?.notify ?? {};
    this.config = next;
    this.instances = this.instances.filter((i) => keep.has(i.cfg.name));
    this.syncHubs();
    const fresh = this.syncTrackers();
    const started = toStart.map((c) => this.make(c));
    this.instances = next.instances.map((c) => keep.get(c.name) ?? (started.find((i) => i.cfg === c) as VrrpInstance));
    for (const i of started) await i.start();
    for (const t of fresh) t.start();
    return r;
  }
}

/** Start every instance of a VrrpConfig, its sync groups and the scripts its instances track. */
export async function runVrrp(config: VrrpConfig, opts: VrrpRunOptions = {}): Promise<VrrpRunner> {
  const runner = new Runner(config, opts);
  await runner.start();
  return runner;
}
