/**
 * The VRRP state machine of one instance (RFC 3768 6.4 / RFC 5798 6.4, with keepalived's additions: state hint,
 * nopreempt, preempt_delay, tracked interfaces and scripts with weights, FAULT). Pure: time comes from an injected
 * clock, the caller runs tick() when nextDeadline() is reached, and every effect is returned as an action.
 */

import { ipv4ToInt, ipv6ToBytes } from '../../common/addr.js';
import type { Clock } from '../../common/clock.js';
import { PRIO_OWNER, PRIO_STOP, type TrackInterface, type VrrpStateName, type VrrpVersion } from './types.js';

/** RFC 5798 6.4.3: on equal priority the greater primary address wins (IPv4: as a 32-bit number, IPv6: bytewise). */
export function addrGreater(a: string, b: string): boolean {
  if (!a.includes(':') && !b.includes(':')) return ipv4ToInt(a) >>> 0 > ipv4ToInt(b) >>> 0;
  return Buffer.compare(Buffer.from(ipv6ToBytes(a)), Buffer.from(ipv6ToBytes(b))) > 0;
}

export interface MachineConfig {
  name: string;
  version: VrrpVersion;
  /** configured priority 1..255 */
  priority: number;
  /** Advertisement_Interval in milliseconds */
  advertIntMs: number;
  nopreempt: boolean;
  preemptDelayMs: number;
  stateHint?: 'MASTER' | 'BACKUP';
  /** our primary address: the tie-break on equal priority, and how our own packets are recognised */
  primaryIp: string;
  /** tracked interfaces, including the instance's own (weight 0) */
  trackInterfaces: TrackInterface[];
  trackScripts: { name: string; weight: number }[];
}

export type VrrpAction =
  | { type: 'send'; priority: number }
  | { type: 'vips'; add: boolean }
  | { type: 'garp' }
  | { type: 'state'; from: VrrpStateName; to: VrrpStateName; reason: string; priority: number }
  | { type: 'two-masters'; masters: string[] }
  | { type: 'log'; level: 'debug' | 'info' | 'warn'; msg: string };

/** What the machine needs from a received, validated advertisement. */
export interface Advert {
  src: string;
  priority: number;
  /** v3: Max Adver Int in centiseconds (adopted by a backup); v2: ignored */
  intervalCs: number;
}

export class VrrpMachine {
  state: VrrpStateName = 'INIT';
  /** Master_Adver_Interval in ms (v3 learns it from the master) */
  masterAdverIntMs: number;
  private masterDownAt: number | undefined;
  private advertAt: number | undefined;
  /** preempt_delay: until when a lower-priority master is still accepted */
  private preemptUntil: number | undefined;
  private readonly ifUp = new Map<string, boolean>();
  private readonly scriptOk = new Map<string, boolean>();
  private readonly seen = new Map<string, { at: number; priority: number }>();
  private conflict = '';
  private conflictAt = 0;
  private running = false;
  /**
   * Sync groups (src/ha/vrrp/sync-group.ts): a BACKUP whose timer said MASTER while its group held it back
   * (keepalived's wantstate MASTER); held in FAULT while another member is faulty; the group's MASTER gate.
   */
  wantMaster = false;
  syncHeld = false;
  syncGate: ((m: VrrpMachine) => boolean) | undefined;
  /** adverts sent, received (valid), transitions, detected master conflicts */
  readonly counters = { sent: 0, received: 0, becameMaster: 0, releasedMaster: 0, priorityZeroSent: 0, twoMasters: 0 };

  constructor(
    readonly cfg: MachineConfig,
    private readonly clock: Clock,
  ) {
    this.masterAdverIntMs = cfg.advertIntMs;
    for (const t of cfg.trackInterfaces) this.ifUp.set(t.name, true);
    for (const s of cfg.trackScripts) this.scriptOk.set(s.name, true);
  }

  /** keepalived's effective priority: the base plus the weights of tracked objects, kept within 1..254. */
  get effectivePriority(): number {
    const base = this.cfg.priority;
    if (base === PRIO_OWNER) return PRIO_OWNER;
    let p = base;
    for (const t of this.cfg.trackInterfaces) p += weightDelta(t.weight, this.ifUp.get(t.name) !== false);
    for (const s of this.cfg.trackScripts) p += weightDelta(s.weight, this.scriptOk.get(s.name) !== false);
    return Math.min(254, Math.max(1, p));
  }

  /** A tracked object with weight 0 is down: the instance must be in FAULT. */
  get faultReason(): string | undefined {
    for (const t of this.cfg.trackInterfaces)
      if (t.weight === 0 && this.ifUp.get(t.name) === false) return `interface ${t.name} down`;
    for (const s of this.cfg.trackScripts)
      if (s.weight === 0 && this.scriptOk.get(s.name) === false) return `script ${s.name} failed`;
    return undefined;
  }

  /** Skew_Time in ms: v3 (256−prio)×Master_Adver_Interval/256; v2 (256−prio)/256 s. */
  get skewMs(): number {
    const p = this.effectivePriority;
    if (this.cfg.version === 3) return Math.floor(((256 - p) * this.masterAdverIntMs) / 256);
    return Math.floor(((256 - p) * 1000) / 256);
  }

  /** Master_Down_Interval in ms: 3 × Master_Adver_Interval + Skew_Time. */
  get masterDownIntervalMs(): number {
    return 3 * this.masterAdverIntMs + this.skewMs;
  }

  /** The earliest time tick() has something to do, or undefined. */
  nextDeadline(): number | undefined {
    if (this.state === 'MASTER') return this.advertAt;
    if (this.state === 'BACKUP') return this.masterDownAt;
    return undefined;
  }

  /** Startup (RFC: the Startup event in Initialize). */
  start(): VrrpAction[] {
    const out: VrrpAction[] = [];
    this.running = true;
    const now = this.clock.now();
    if (this.cfg.preemptDelayMs > 0) this.preemptUntil = now + this.cfg.preemptDelayMs;
    const fault = this.faultReason ?? (this.syncHeld ? 'sync group in FAULT' : undefined);
    if (fault) {
      this.go('FAULT', fault, out);
      return out;
    }
    this.enterFromInit(out, 'startup');
    return out;
  }

  /** Shutdown: a master sends priority 0 and releases its addresses. */
  stop(): VrrpAction[] {
    const out: VrrpAction[] = [];
    if (!this.running) return out;
    this.running = false;
    if (this.state === 'MASTER') this.release(out);
    this.go('INIT', 'shutdown', out);
    return out;
  }

  tick(): VrrpAction[] {
    const out: VrrpAction[] = [];
    const now = this.clock.now();
    if (this.state === 'MASTER' && this.advertAt !== undefined && now >= this.advertAt) {
      this.sendAdvert(out);
    } else if (this.state === 'BACKUP' && this.masterDownAt !== undefined && now >= this.masterDownAt) {
      this.tryMaster(out, 'master down timer expired');
    }
    return out;
  }

  /** A validated advertisement for our VRID from another router. */
  receive(a: Advert): VrrpAction[] {
    const out: VrrpAction[] = [];
    if (!this.running || this.state === 'FAULT' || this.state === 'INIT') return out;
    this.counters.received++;
    const now = this.clock.now();
    this.noteMaster(a, now, out);
    const mine = this.effectivePriority;
    if (this.state === 'BACKUP') {
      if (a.priority === PRIO_STOP) {
        this.masterDownAt = now + this.skewMs;
        out.push({
          type: 'log',
          level: 'info',
          msg: `${a.src} released master (priority 0), taking over in skew time`,
        });
      } else if (this.cfg.nopreempt || a.priority >= mine || this.preemptDelayed(now)) {
        this.adoptInterval(a);
        this.masterDownAt = now + this.masterDownIntervalMs;
        this.wantMaster = false;
      } else {
        // keepalived forces a new election at once instead of waiting for the down timer
        this.tryMaster(out, `lower priority advert (${a.priority} < ${mine}) from ${a.src}, preempting`);
      }
    } else if (this.state === 'MASTER') {
      if (a.priority === PRIO_STOP) {
        this.sendAdvert(out);
      } else if (a.priority > mine || (a.priority === mine && addrGreater(a.src, this.cfg.primaryIp))) {
        this.adoptInterval(a);
        this.advertAt = undefined;
        out.push({ type: 'vips', add: false });
        this.counters.releasedMaster++;
        this.go('BACKUP', `higher priority advert (${a.priority} vs ${mine}) from ${a.src}`, out);
        this.masterDownAt = now + this.masterDownIntervalMs;
      } else {
        // keepalived answers a lower-priority master at once so that it steps down
        this.sendAdvert(out);
      }
    }
    return out;
  }

  setInterface(name: string, up: boolean): VrrpAction[] {
    if (!this.ifUp.has(name) || this.ifUp.get(name) === up) return [];
    this.ifUp.set(name, up);
    return this.trackChanged(`interface ${name} ${up ? 'up' : 'down'}`);
  }

  setScript(name: string, ok: boolean): VrrpAction[] {
    if (!this.scriptOk.has(name) || this.scriptOk.get(name) === ok) return [];
    this.scriptOk.set(name, ok);
    return this.trackChanged(`script ${name} ${ok ? 'succeeded' : 'failed'}`);
  }

  private trackChanged(what: string): VrrpAction[] {
    const out: VrrpAction[] = [{ type: 'log', level: 'info', msg: `${what}: priority ${this.effectivePriority}` }];
    if (!this.running) return out;
    const fault = this.faultReason;
    if (fault && this.state !== 'FAULT') {
      if (this.state === 'MASTER') this.release(out);
      this.masterDownAt = undefined;
      this.go('FAULT', fault, out);
    } else if (!fault && this.state === 'FAULT') {
      if (this.syncHeld) out.push({ type: 'log', level: 'info', msg: `${what}: the sync group keeps it in FAULT` });
      else this.enterFromInit(out, `${what}, leaving FAULT`);
    } else if (this.state === 'MASTER') {
      // the new priority goes out at once
      this.sendAdvert(out);
    }
    return out;
  }

  private enterFromInit(out: VrrpAction[], why: string): void {
    const now = this.clock.now();
    this.masterAdverIntMs = this.cfg.advertIntMs;
    if (this.effectivePriority === PRIO_OWNER) {
      this.tryMaster(out, `${why}: address owner`);
      return;
    }
    this.go('BACKUP', why, out);
    // keepalived: a MASTER hint takes over after one interval (plus skew) unless a master speaks up
    this.masterDownAt =
      now + (this.cfg.stateHint === 'MASTER' ? this.masterAdverIntMs + this.skewMs : this.masterDownIntervalMs);
  }

  /** Become MASTER unless the sync group holds us back: then stay BACKUP, wanting MASTER, and wait another round. */
  private tryMaster(out: VrrpAction[], why: string): void {
    if (this.syncGate && !this.syncGate(this)) {
      this.go('BACKUP', why, out);
      this.wantMaster = true;
      this.masterDownAt = this.clock.now() + this.masterDownIntervalMs;
      out.push({ type: 'log', level: 'info', msg: `${why}: waiting for the other members of the sync group` });
      return;
    }
    this.becomeMaster(out, why);
  }

  // ---- what a sync group makes a member do (keepalived vrrp_sync.c) ----

  /** Another member went FAULT: leave MASTER (priority 0 sent) or BACKUP for FAULT, and stay there until released. */
  syncFault(why: string): VrrpAction[] {
    const out: VrrpAction[] = [];
    this.syncHeld = true;
    if (!this.running || this.state === 'FAULT') return out;
    if (this.state === 'MASTER') this.release(out);
    this.masterDownAt = undefined;
    this.go('FAULT', why, out);
    return out;
  }

  /** Every member is up again: leave FAULT as a tracked object coming back does (BACKUP, or MASTER for an owner). */
  syncRelease(why: string): VrrpAction[] {
    const out: VrrpAction[] = [];
    this.syncHeld = false;
    if (this.running && this.state === 'FAULT' && !this.faultReason) this.enterFromInit(out, why);
    return out;
  }

  /** Another member left MASTER for BACKUP: follow it (VIPs dropped, no priority 0: as keepalived's leave_master). */
  syncBackup(why: string): VrrpAction[] {
    const out: VrrpAction[] = [];
    if (!this.running || this.state !== 'MASTER') return out;
    this.advertAt = undefined;
    out.push({ type: 'vips', add: false });
    this.counters.releasedMaster++;
    this.go('BACKUP', why, out);
    this.masterDownAt = this.clock.now() + this.masterDownIntervalMs;
    return out;
  }

  /** The group became MASTER: a BACKUP member follows at once. */
  syncMaster(why: string): VrrpAction[] {
    const out: VrrpAction[] = [];
    if (this.running && this.state === 'BACKUP') this.becomeMaster(out, why);
    return out;
  }

  private becomeMaster(out: VrrpAction[], why: string): void {
    this.masterDownAt = undefined;
    this.preemptUntil = undefined;
    this.go('MASTER', why, out);
    this.counters.becameMaster++;
    this.sendAdvert(out);
    out.push({ type: 'vips', add: true });
    out.push({ type: 'garp' });
  }

  /** Leave MASTER: priority 0 so that a backup takes over after its skew time, then drop the addresses. */
  private release(out: VrrpAction[]): void {
    out.push({ type: 'send', priority: PRIO_STOP });
    this.counters.sent++;
    this.counters.priorityZeroSent++;
    out.push({ type: 'vips', add: false });
    this.counters.releasedMaster++;
    this.advertAt = undefined;
  }

  private sendAdvert(out: VrrpAction[]): void {
    out.push({ type: 'send', priority: this.effectivePriority });
    this.counters.sent++;
    this.advertAt = this.clock.now() + this.cfg.advertIntMs;
  }

  private adoptInterval(a: Advert): void {
    if (this.cfg.version === 3 && a.intervalCs > 0) this.masterAdverIntMs = a.intervalCs * 10;
  }

  /** preempt_delay: a lower-priority master is accepted until the delay (from startup or first sight) is over. */
  private preemptDelayed(now: number): boolean {
    if (this.cfg.preemptDelayMs <= 0) return false;
    if (this.preemptUntil === undefined) this.preemptUntil = now + this.cfg.preemptDelayMs;
    return now < this.preemptUntil;
  }

  /**
   * Two routers claiming master for the VRID at once (ourselves included). A takeover shows adverts from the old and
   * the new master once each; a router that advertises again after another master has spoken (A, B, A), or twice
   * while we are master (we answer each of its adverts), is a real conflict. Reported once per conflict.
   */
  private noteMaster(a: Advert, now: number, out: VrrpAction[]): void {
    const window = 3 * this.masterAdverIntMs;
    const prev = this.seen.get(a.src);
    if (a.priority === PRIO_STOP) this.seen.delete(a.src);
    else this.seen.set(a.src, { at: now, priority: a.priority });
    if (this.conflict && now - this.conflictAt > 2 * window) this.conflict = '';
    if (a.priority === PRIO_STOP || !prev || now - prev.at > window) return;
    const rivals =
      this.state === 'MASTER'
        ? [`${this.cfg.primaryIp} (self)`]
        : [...this.seen]
            .filter(([src, s]) => src !== a.src && s.at > prev.at && now - s.at <= window)
            .map(([src]) => src);
    if (rivals.length === 0) return;
    const masters = [a.src, ...rivals].sort();
    const key = masters.join(',');
    this.conflictAt = now;
    if (key === this.conflict) return;
    this.conflict = key;
    this.counters.twoMasters++;
    out.push({ type: 'two-masters', masters });
    out.push({ type: 'log', level: 'warn', msg: `more than one master for this VRID: ${masters.join(', ')}` });
  }

  private go(to: VrrpStateName, reason: string, out: VrrpAction[]): void {
    const from = this.state;
    this.wantMaster = false;
    if (from === to) return;
    this.state = to;
    out.push({ type: 'state', from, to, reason, priority: this.effectivePriority });
  }
}

function weightDelta(weight: number, ok: boolean): number {
  if (weight > 0) return ok ? weight : 0;
  if (weight < 0) return ok ? 0 : weight;
  return 0;
}
