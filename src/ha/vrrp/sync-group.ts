/**
 * A vrrp_sync_group: its instances change state together, as keepalived's vrrp_sync.c does it.
 * - a member goes FAULT → every member goes FAULT (a master sends priority 0 and drops its addresses) and stays there
 *   until no member has a fault of its own; then all leave FAULT together (BACKUP, the usual election follows);
 * - a member leaves MASTER for BACKUP → the other masters follow to BACKUP;
 * - a member becomes MASTER → the others follow at once. A member only becomes MASTER when every other member is
 *   MASTER or wants to be (its own timer or a preemption said so): keepalived prefers BACKUP to thrashing, so a member
 *   that is held back stays BACKUP, wanting MASTER, and the last one to want it takes the whole group along.
 * The group's own notify scripts run on the group's state changes (notify_master/backup/fault, and `notify` with
 * GROUP <name> <STATE> 0). Pure: the runner feeds react() every batch of a member's actions and carries out what
 * comes back.
 */
import type { VrrpAction, VrrpMachine } from './state.js';
import type { VrrpStateName } from './types.js';

export interface SyncGroupChange {
  group: string;
  from: VrrpStateName;
  to: VrrpStateName;
  reason: string;
}

/** The actions a member has to carry out because of its group. */
export interface SyncEffect {
  machine: VrrpMachine;
  actions: VrrpAction[];
}

export class VrrpSyncGroupMachine {
  state: VrrpStateName = 'INIT';
  private readonly members: VrrpMachine[] = [];

  /** `expected`: the configured member count; until that many have joined, a member that has not does not want MASTER */
  constructor(
    readonly name: string,
    private readonly expected = 0,
  ) {}

  get size(): number {
    return this.members.length;
  }

  /** Join a member (before its start()): it is held in FAULT if the group is. */
  attach(m: VrrpMachine): void {
    if (this.members.includes(m)) return;
    this.members.push(m);
    m.syncGate = (x) => this.mayGoMaster(x);
    m.syncHeld = this.state === 'FAULT';
  }

  detach(m: VrrpMachine): void {
    const i = this.members.indexOf(m);
    if (i < 0) return;
    this.members.splice(i, 1);
    m.syncGate = undefined;
    m.syncHeld = false;
  }

  /** keepalived's vrrp_sync_can_goto_master: the group is MASTER already, or every other member wants MASTER. */
  mayGoMaster(m: VrrpMachine): boolean {
    if (this.state === 'MASTER') return true;
    if (this.members.length < this.expected) return false;
    return this.members.every((o) => o === m || o.state === 'MASTER' || o.wantMaster);
  }

  /**
   * `m` produced `actions` (already being carried out by its runner): what the other members must do — in order,
   * followed to the end (a member's forced transition can move the group again) — and the group's state changes.
   */
  react(m: VrrpMachine, actions: VrrpAction[]): { effects: SyncEffect[]; changes: SyncGroupChange[] } {
    const effects: SyncEffect[] = [];
    const changes: SyncGroupChange[] = [];
    const queue: SyncEffect[] = [{ machine: m, actions }];
    const force = (o: VrrpMachine, acts: VrrpAction[]) => {
      if (acts.length === 0) return;
      effects.push({ machine: o, actions: acts });
      queue.push({ machine: o, actions: acts });
    };
    const setState = (to: VrrpStateName, reason: string) => {
      changes.push({ group: this.name, from: this.state, to, reason });
      this.state = to;
    };
    for (;;) {
      const next = queue.shift();
      if (!next) {
        // the last fault of the group cleared: every member leaves FAULT
        if (this.state !== 'FAULT' || this.members.some((o) => o.faultReason !== undefined)) break;
        setState('BACKUP', 'no member in fault any more');
        for (const o of this.members) force(o, o.syncRelease(`sync group ${this.name} left FAULT`));
        continue;
      }
      const who = next.machine.cfg.name;
      for (const a of next.actions) {
        if (a.type !== 'state') continue;
        if (a.to === 'FAULT' && this.state !== 'FAULT') {
          setState('FAULT', `${who}: ${a.reason}`);
          next.machine.syncHeld = true;
          for (const o of this.members)
            if (o !== next.machine) force(o, o.syncFault(`sync group ${this.name}: ${who} in FAULT`));
        } else if (a.to === 'MASTER' && this.state !== 'MASTER' && this.state !== 'FAULT') {
          setState('MASTER', `${who} became MASTER`);
          for (const o of this.members)
            if (o !== next.machine) force(o, o.syncMaster(`sync group ${this.name}: ${who} became MASTER`));
        } else if (a.to === 'BACKUP' && (a.from === 'MASTER' || this.state === 'INIT') && this.state !== 'BACKUP') {
          if (this.state === 'FAULT') continue;
          setState('BACKUP', a.from === 'MASTER' ? `${who} left MASTER` : `${who} started`);
          for (const o of this.members)
            if (o !== next.machine) force(o, o.syncBackup(`sync group ${this.name}: ${who} left MASTER`));
        }
      }
    }
    return { effects, changes };
  }
}
