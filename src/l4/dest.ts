/**
 * A real server (struct ip_vs_dest): address, forwarding method, weight, thresholds and the connection counters
 * the schedulers read. Counters change only through bindConn/unbindConn, which also keep the overload flag the way
 * ip_vs_bind_dest / ip_vs_unbind_dest do.
 */
import { type Family, hostPort } from '../common/addr.js';
import { Stats } from './stats.js';

/** ipvsadm -g / -m / -i. */
export type FwdMethod = 'route' | 'masq' | 'tunnel';

export const MAX_WEIGHT = 65535;

export interface DestOptions {
  addr: string;
  port: number;
  family: Family;
  fwd: FwdMethod;
  weight: number;
  uThreshold: number;
  lThreshold: number;
}

export class RealServer {
  addr: string;
  port: number;
  family: Family;
  fwd: FwdMethod;
  weight: number;
  /** -x: 0 = no limit */
  uThreshold: number;
  /** -y: 0 = unset */
  lThreshold: number;
  /** The real server is an address of the director itself (ipvsadm prints "Local"). Set by the data path. */
  local = false;
  /** In the service's list (IP_VS_DEST_F_AVAILABLE); false once deleted while connections still point at it. */
  available = true;
  /** IP_VS_DEST_F_OVERLOAD */
  overloaded = false;
  activeConns = 0;
  inactConns = 0;
  persistConns = 0;
  /** The weight before it was set to 0 (quiesced); mh uses it to keep its table. */
  lastWeight: number;
  readonly stats = new Stats();

  constructor(o: DestOptions) {
    this.addr = o.addr;
    this.port = o.port;
    this.family = o.family;
    this.fwd = o.fwd;
    this.weight = o.weight;
    this.uThreshold = o.uThreshold;
    this.lThreshold = o.lThreshold;
    this.lastWeight = o.weight;
  }

  get key(): string {
    return destKey(this.addr, this.port);
  }

  toString(): string {
    return hostPort(this.addr, this.port, this.family);
  }

  /** ip_vs_dest_totalconns: what the thresholds compare against. */
  get totalConns(): number {
    return this.activeConns + this.inactConns;
  }

  /** The kernel's load figure used by lc, wlc, lblc, lblcr, twos (ip_vs_dest_conn_overhead). */
  get overhead(): number {
    return this.activeConns * 256 + this.inactConns;
  }

  /** A connection (or template) now points at this server. */
  bindConn(kind: 'active' | 'inactive' | 'template'): void {
    if (kind === 'template') this.persistConns++;
    else if (kind === 'inactive') this.inactConns++;
    else this.activeConns++;
    if (this.uThreshold !== 0 && this.totalConns >= this.uThreshold) this.overloaded = true;
  }

  /** A connection (or template) stops pointing at this server. */
  unbindConn(kind: 'active' | 'inactive' | 'template'): void {
    if (kind === 'template') this.persistConns--;
    else if (kind === 'inactive') this.inactConns--;
    else this.activeConns--;
    this.updateOverload();
  }

  /** A connection moves between inactive and active (the state machine's ESTABLISHED transitions). */
  moveConn(from: 'active' | 'inactive', to: 'active' | 'inactive'): void {
    if (from === to) return;
    if (from === 'active') {
      this.activeConns--;
      this.inactConns++;
    } else {
      this.inactConns--;
      this.activeConns++;
    }
  }

  /** Overload clears below -y, or below 3/4 of -x when -y is unset (ip_vs_unbind_dest). */
  updateOverload(): void {
    if (this.lThreshold !== 0) {
      if (this.totalConns < this.lThreshold) this.overloaded = false;
    } else if (this.uThreshold !== 0) {
      if (this.totalConns * 4 < this.uThreshold * 3) this.overloaded = false;
    } else {
      this.overloaded = false;
    }
  }
}

export function destKey(addr: string, port: number): string {
  return `${addr}|${port}`;
}
