/**
 * Server groups in a worker. A GroupRuntime is what one group (HAProxy backend) has in a worker, whichever listeners
 * send to it: its counters (per server, and its responses: the stats' BACKEND row), its keep-alive connections to
 * its servers (with its own timeouts), and how its balance algorithm reads a request. A GroupHost is one listener's
 * way into one group: the ExchangeHost / TcpHost / UpgradeHost a request or connection is relayed through — the
 * group's retries, redispatch, server-side timeouts and picks, the listener's client-side timeouts, forwardfor and
 * frontend counters. The balancing itself is the node's (./server-picks.ts, keyed by group name).
 */

import type net from 'node:net';
import type { Timers } from '../../common/timers.js';
import { isHashing, type PickRequest } from '../balance/index.js';
import type { GroupSpec, ListenerSpec } from '../config.js';
import type { Splicer } from '../splice/splice.js';
import type { ClientInfo } from './client-conn.js';
import type { ExchangeHost } from './http-exchange.js';
import { ServerPools } from './http-relay.js';
import type { ExchangeRequest } from './messages.js';
import { ListenerCounters } from './runtime.js';
import type { PickReply, ServerPicks } from './server-picks.js';
import type { TcpHost } from './tcp-relay.js';
import type { UpgradeHost } from './upgrade.js';

const NO_KEYS: PickRequest = Object.freeze({});

export class GroupRuntime {
  readonly pools: ServerPools;
  /** balance hdr(name): the header, lower case */
  private readonly hdrName?: string;
  /** the balance algorithm hashes a key of the request */
  private readonly hashing: boolean;

  constructor(
    readonly spec: GroupSpec,
    readonly counters: ListenerCounters = new ListenerCounters(),
  ) {
    this.pools = new ServerPools(spec.timeout);
    this.hdrName = /^hdr\((.+)\)$/.exec(spec.balance)?.[1]?.toLowerCase();
    this.hashing = isHashing(spec.balance);
  }

  /** what the balance algorithm reads of a request (only the hashing ones read anything, the client's address
   * included: an HTTP session reads its socket's addresses when first asked) */
  pickRequest(client: { readonly info: ClientInfo }, req?: ExchangeRequest): PickRequest {
    if (!this.hashing) return NO_KEYS;
    const pr: PickRequest = { src: client.info.src };
    if (req) {
      pr.uri = req.url;
      if (this.hdrName) pr.headers = { [this.hdrName]: req.headers[this.hdrName] };
    }
    return pr;
  }
}

/** The groups of a worker's config, by name; a listener's own counters are its implied group's. */
export function workerGroups(groups: readonly GroupSpec[]): Map<string, GroupRuntime> {
  return new Map(groups.map((g) => [g.name, new GroupRuntime(g)]));
}

/** What a GroupHost takes of its listener. */
export interface FrontendSide {
  readonly spec: ListenerSpec;
  readonly counters: ListenerCounters;
  readonly timers: Timers;
  readonly isDraining: () => boolean;
  readonly connect: (host: string, port: number) => net.Socket;
  /** mode tcp: the worker's in-kernel splice, when the listener's `splice` mode and the process allow it */
  readonly splicer?: Splicer;
}

/** The fields a relay reads of its spec: the group's, with the listener's client-side timeouts and forwardfor. */
export type RelaySpec = Pick<ListenerSpec, 'name' | 'retries' | 'redispatch' | 'forwardfor' | 'timeout'>;

export class GroupHost implements ExchangeHost, TcpHost, UpgradeHost {
  readonly spec: RelaySpec;
  readonly counters: ListenerCounters;
  /** the listener's counters (its FRONTEND row), when they are not the group's own */
  readonly frontend: ListenerCounters | undefined;
  readonly pools: ServerPools;
  readonly timers: Timers;
  readonly isDraining: () => boolean;
  readonly connect: (host: string, port: number) => net.Socket;
  readonly splicer: Splicer | undefined;
  private readonly name: string;

  constructor(
    readonly group: GroupRuntime,
    fe: FrontendSide,
    private readonly picks: ServerPicks,
  ) {
    const g = group.spec;
    const lt = fe.spec.timeout;
    this.name = g.name;
    this.spec = {
      name: g.name,
      retries: g.retries,
      redispatch: g.redispatch,
      forwardfor: fe.spec.forwardfor,
      timeout: { ...g.timeout, client: lt.client, httpRequest: lt.httpRequest, httpKeepAlive: lt.httpKeepAlive },
    };
    this.counters = group.counters;
    this.frontend = fe.counters === group.counters ? undefined : fe.counters;
    this.pools = group.pools;
    this.timers = fe.timers;
    this.isDraining = fe.isDraining;
    this.connect = fe.connect;
    this.splicer = fe.splicer;
  }

  pickThen(req: PickRequest, exclude: readonly string[], done: (r: PickReply) => void): void {
    this.picks.pickThen(this.name, req, exclude, done);
  }

  pick(req: PickRequest, exclude: readonly string[]): Promise<PickReply> {
    return this.picks.pick(this.name, req, exclude);
  }

  release(server: string): void {
    this.picks.release(this.name, server);
  }

  pickRequest(client: { readonly info: ClientInfo }, req?: ExchangeRequest): PickRequest {
    return this.group.pickRequest(client, req);
  }
}
