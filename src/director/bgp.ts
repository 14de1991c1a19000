/**
 * BGP inside `tierlb director`: the `bgp` section → BIRD run beside the daemon (src/bgp/bird.ts), and the announce
 * rule (src/bgp/announce.ts) fed with the director's state — the data path, the services of the current plan and
 * each checked service's quorum from its CheckManager (keepalived's quorum + hysteresis). The rule is evaluated every
 * `pollMs` (200 ms) and whenever the director asks (reload, stop); BIRD is reconfigured only when the set of
 * announced VIPs changes.
 *
 * Stop (SIGTERM/SIGINT, a fatal data path): every VIP is withdrawn first, then the director waits the section's
 * withdraw_delay_ms so the router moves new flows to the other directors, then BIRD is stopped (its sessions close
 * with a Cease) and only then do the HA parts and the data path stop.
 */
import { type AnnounceDecision, announceDecisions, type ServiceInput } from '../bgp/announce.js';
import { BirdDaemon, type BirdStatus } from '../bgp/bird.js';
import '../bgp/config-schema.js'; // registers the bgp section with the loader
import type { BgpConfig } from '../bgp/config-schema.js';
import { type BgpPlan, type BgpVip, bgpPlanFromConfig } from '../bgp/semantics.js';
import { canonicalAddr, type Family, familyOf } from '../common/addr.js';
import type { Logger } from '../common/log.js';
import { loadConfigFile } from '../config/load.js';
import type { CheckManager } from '../ha/checks/manager.js';
import { describeService, serviceKey } from '../l4/service.js';
import type { DirectorPlan } from './config.js';

/**
 * The bgp section of a tierlb YAML file, as a plan; undefined when the file has none. Throws on a bad config.
 *
 * With a bgp section, `director.sysctl.sloppy_tcp` defaults to on (an explicit false stays): ECMP may send a flow's
 * next packet to another director (a director withdrawn, added or lost), which has no entry for it; with sloppy_tcp
 * that packet opens one, and a hash scheduler (mh, sh, dh) with the same real servers picks the same real server, so
 * the flow continues. `director` (the plan the director will run) gets the default applied.
 */
export async function bgpPlanFromYaml(path: string, director?: DirectorPlan): Promise<BgpPlan | undefined> {
  const cfg = (await loadConfigFile(path, { sections: ['bgp'] })).config;
  if (!cfg.bgp) return undefined;
  if (director && cfg.director?.sysctl?.sloppy_tcp === undefined) director.sysctl.sloppyTcp = true;
  return bgpPlanFromConfig(cfg.bgp as BgpConfig);
}

/**
 * The director's services as the announce rule sees them: a VIP service's address, a fwmark service's `match:`
 * VIPs; the checker's quorum state where the service is checked (`quorumOf` by serviceKey), else its weights.
 */
export function serviceInputs(
  plan: DirectorPlan,
  quorumOf: (key: string) => boolean | undefined = () => undefined,
  probed: (key: string, addr: string, port: number) => boolean = () => true,
): ServiceInput[] {
  return plan.services.map((s) => {
    const id = s.spec.id;
    const vips = id.kind === 'fwm' ? (s.match ?? []).map((m) => m.addr) : id.addr ? [canonicalAddr(id.addr)] : [];
    const q = s.health ? quorumOf(serviceKey(id)) : undefined;
    const input: ServiceInput = {
      name: describeService(id),
      vips: [...new Set(vips)],
      weightSum: s.dests.reduce((a, d) => a + d.weight, 0),
    };
    if (q !== undefined) input.quorumUp = q;
    const unprobed = s.health?.realServers.some((rs) => rs.checks.length && !probed(serviceKey(id), rs.addr, rs.port));
    if (unprobed) input.firstChecksPending = true;
    return input;
  });
}

/** The announced VIPs with their communities (the section's, plus a listed VIP's own). */
export function vipsToAnnounce(plan: BgpPlan, decisions: readonly AnnounceDecision[]): BgpVip[] {
  const listed = new Map((plan.vips ?? []).map((v) => [v.address, v]));
  return decisions
    .filter((d) => d.announce)
    .map(
      (d) =>
        listed.get(d.vip) ?? {
          address: d.vip,
          family: familyOf(d.vip) as Family,
          communities: plan.communities,
        },
    );
}

export interface DirectorBgpOptions {
  plan: BgpPlan;
  /** BIRD's own directory (config, control socket, pid file): the director's socket path with `.bird` for `.sock` */
  birdDir: string;
  log: Logger;
  /** the director's current service plan */
  services: () => DirectorPlan;
  /** the health checkers by serviceKey (DirectorHa.checkers) */
  checkers: () => ReadonlyMap<string, { manager: CheckManager }>;
  datapathUp: () => boolean;
  pollMs?: number;
}

export interface DirectorBgpStatus extends BirdStatus {
  decisions: AnnounceDecision[];
}

export class DirectorBgp {
  private plan: BgpPlan;
  private readonly bird: BirdDaemon;
  private stopping = false;
  private timer: NodeJS.Timeout | null = null;
  private decisions: AnnounceDecision[] = [];
  private evaluating: Promise<void> = Promise.resolve();

  constructor(private readonly o: DirectorBgpOptions) {
    this.plan = o.plan;
    this.bird = new BirdDaemon({ plan: o.plan, dir: o.birdDir, log: o.log });
  }

  async start(): Promise<void> {
    await this.bird.start();
    await this.evaluate();
    this.timer = setInterval(() => void this.evaluate(), this.o.pollMs ?? 200);
    this.timer.unref();
  }

  private quorumOf = (key: string): boolean | undefined => this.o.checkers().get(key)?.manager.status()[0]?.quorumUp;

  /** real servers probed at least once (`serviceKey|addr|port`), from every checker the director has run */
  private readonly probedSet = new Set<string>();
  private readonly watched = new WeakSet<CheckManager>();
  private probed = (key: string, addr: string, port: number): boolean => this.probedSet.has(`${key}|${addr}|${port}`);

  private watchCheckers(): void {
    for (const [key, c] of this.o.checkers()) {
      if (this.watched.has(c.manager)) continue;
      this.watched.add(c.manager);
      c.manager.on('probe', (_id, p) => this.probedSet.add(`${key}|${p.addr}|${p.port}`));
    }
  }

  /** Apply the announce rule to the director's state now; BIRD is reconfigured when the announced set changed. */
  evaluate(plan?: BgpPlan): Promise<void> {
    this.evaluating = this.evaluating.then(async () => {
      if (plan) this.plan = plan;
      this.watchCheckers();
      const decisions = announceDecisions({
        datapathUp: this.o.datapathUp(),
        stopping: this.stopping,
        services: serviceInputs(this.o.services(), this.quorumOf, this.probed),
        vips: this.plan.vips?.map((v) => v.address),
        require: this.plan.require,
      });
      const before = new Map(this.decisions.map((d) => [d.vip, d.announce]));
      for (const d of decisions)
        if (before.get(d.vip) !== d.announce)
          this.o.log.info({ vip: d.vip, reason: d.reason }, d.announce ? 'bgp: announce' : 'bgp: withdraw');
      this.decisions = decisions;
      try {
        await this.bird.announce(vipsToAnnounce(this.plan, decisions), plan);
      } catch (e) {
        this.o.log.error({ err: (e as Error).message }, 'bgp: announcement not applied');
      }
    });
    return this.evaluating;
  }

  /** A reloaded config: the new section (neighbors, VIPs, communities) is applied by BIRD's configure. */
  reload(plan: BgpPlan): Promise<void> {
    return this.evaluate(plan);
  }

  async status(): Promise<DirectorBgpStatus> {
    return { ...(await this.bird.status()), decisions: this.decisions };
  }

  /** Withdraw every VIP, wait withdraw_delay_ms when something was announced, then stop BIRD. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    const had = this.bird.announcedVips.length > 0;
    this.stopping = true;
    await this.evaluate();
    if (had && this.plan.withdrawDelayMs > 0) {
      this.o.log.info({ ms: this.plan.withdrawDelayMs }, 'bgp: withdrawn, waiting before the data path stops');
      await new Promise((r) => setTimeout(r, this.plan.withdrawDelayMs));
    }
    await this.bird.stop();
  }
}
