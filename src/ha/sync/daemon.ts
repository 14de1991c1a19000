/**
 * `ipvsadm --start-daemon / --stop-daemon / -L --daemon`: the sync daemons of one director. A master sends UDP to
 * the sync group and port (--mcast-group / --mcast-port, default 224.0.0.81:8848) with --mcast-ttl (default 1), no
 * loopback, from the address of --mcast-interface, or to unicast peers; a backup joins the group on its interface
 * (or listens for unicast) on that port and installs what it receives. At most one of each, as in the kernel
 * (start_sync_thread / stop_sync_thread), which also settles the defaults `-L --daemon` reports. IPv4 only: an IPv6
 * group is refused as a kernel without IPv6 IPVS refuses it.
 */
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import { networkInterfaces } from 'node:os';
import { TierlbError } from '../../common/errors.js';
import { log as defaultLog, type Logger } from '../../common/log.js';
import type { ParsedDaemon } from '../../l4/adm/parse.js';
import type { SyncDaemonInfo } from '../../l4/adm/target.js';
import type { Timers } from '../checks/timers.js';
import { SyncBackup } from './backup.js';
import { daemonMaxLen, SYNC_MCAST_GROUP, SYNC_MCAST_PORT } from './codec.js';
import { SyncMaster } from './master.js';
import type { SyncSysctl } from './rule.js';
import type { SyncTarget } from './target.js';

/** ipvs_strerror's codes and texts of the daemon commands, as ipvsadm prints them. */
export type SyncDaemonErrorCode =
  | 'EINVAL' // Invalid argument (syncid, group, port, TTL, maxlen; a backup without a target)
  | 'EAFNOSUPPORT' // Operation not supported with specified address family (an IPv6 group)
  | 'EEXIST' // Daemon has already run
  | 'ENODEV' // No such device (--mcast-interface)
  | 'ESRCH'; // No daemon is running

export class SyncDaemonError extends TierlbError {
  constructor(
    override readonly code: SyncDaemonErrorCode,
    message: string,
  ) {
    super(code, message);
    this.name = 'SyncDaemonError';
  }
}

/**
 * A `--start-daemon`: the fields `-L --daemon` reports (SyncDaemonInfo), those left out taking start_sync_thread's
 * defaults (--mcast-interface eth0 in ipvsadm; maxLen daemonMaxLen, group 224.0.0.81, port 8848, TTL 1).
 */
export interface SyncDaemonStart extends SyncDaemonInfo {
  /** unicast instead of multicast: the master sends to these addresses, the backup listens on its interface address */
  peers?: string[];
}

export interface SyncDaemonControlOptions {
  /** where a backup installs connections (EngineSyncTarget for the director) */
  target?: SyncTarget;
  timers?: Timers;
  sysctl?: Partial<SyncSysctl>;
  log?: Logger;
  /** interface address and MTU lookup (tests may replace it) */
  iface?: (name: string) => { addr: string; mtu: number } | undefined;
}

/** The daemon options of a parsed `--start-daemon` command line (ipvsadm leaves 0 / '' for an option not given). */
export function startFromAdm(d: ParsedDaemon): SyncDaemonStart {
  if (d.state === '') throw new SyncDaemonError('EINVAL', 'Invalid argument');
  return {
    state: d.state,
    mcastIfn: d.mcastIfn,
    syncid: d.syncid,
    ...(d.maxLen ? { maxLen: d.maxLen } : {}),
    ...(d.group ? { group: d.group } : {}),
    ...(d.port ? { port: d.port } : {}),
    ...(d.ttl ? { ttl: d.ttl } : {}),
  };
}

/** ip_vs_genl_new_daemon's checks of the group, port and TTL; the defaults of start_sync_thread. */
function syncConfig(d: SyncDaemonStart): { group: string; port: number; ttl: number } {
  const group = d.group ?? SYNC_MCAST_GROUP;
  // this daemon speaks IPv4 only, as a kernel without CONFIG_IP_VS_IPV6 (EAFNOSUPPORT)
  if (isIPv6(group)) throw new SyncDaemonError('EAFNOSUPPORT', 'Operation not supported with specified address family');
  const port = d.port ?? SYNC_MCAST_PORT;
  const ttl = d.ttl ?? 1;
  const multicast = isIPv4(group) && Number(group.split('.')[0]) >>> 4 === 0xe;
  if (!multicast || !inRange(port, 1, 65535) || !inRange(ttl, 1, 255) || !inRange(d.maxLen ?? 1, 1, 65535))
    throw new SyncDaemonError('EINVAL', 'Invalid argument');
  return { group, port, ttl };
}

function inRange(v: number, min: number, max: number): boolean {
  return Number.isInteger(v) && v >= min && v <= max;
}

/** The first IPv4 address and the MTU of an interface of this namespace. */
export function interfaceInfo(name: string): { addr: string; mtu: number } | undefined {
  const a = networkInterfaces()[name]?.find((x) => x.family === 'IPv4');
  if (!a) return undefined;
  let mtu = 1500;
  try {
    mtu = Number(readFileSync(`/sys/class/net/${name}/mtu`, 'utf8').trim()) || 1500;
  } catch {}
  return { addr: a.address, mtu };
}

interface Running {
  info: SyncDaemonInfo;
  sock: dgram.Socket;
  master?: SyncMaster;
  backup?: SyncBackup;
}

export class SyncDaemonControl {
  private readonly o: SyncDaemonControlOptions;
  private readonly log: Logger;
  private readonly running = new Map<'master' | 'backup', Running>();

  constructor(o: SyncDaemonControlOptions = {}) {
    this.o = o;
    this.log = (o.log ?? defaultLog).child({ component: 'sync' });
  }

  /** The running master, for the packet path: call `master.packet(conn)` after each forwarded packet. */
  get master(): SyncMaster | undefined {
    return this.running.get('master')?.master;
  }

  get backup(): SyncBackup | undefined {
    return this.running.get('backup')?.backup;
  }

  /** What `-L --daemon` lists: master first, then backup. */
  list(): SyncDaemonInfo[] {
    return (['master', 'backup'] as const).flatMap((s) => {
      const r = this.running.get(s);
      return r ? [r.info] : [];
    });
  }

  async start(d: SyncDaemonStart): Promise<void> {
    if (this.running.has(d.state)) throw new SyncDaemonError('EEXIST', 'Daemon has already run');
    if (!Number.isInteger(d.syncid) || d.syncid < 0 || d.syncid > 255)
      throw new SyncDaemonError('EINVAL', 'Invalid argument');
    const { group, port, ttl } = syncConfig(d);
    const ifc = (this.o.iface ?? interfaceInfo)(d.mcastIfn);
    if (!ifc) throw new SyncDaemonError('ENODEV', 'No such device');
    const maxLen = daemonMaxLen(d.state, ifc.mtu, d.maxLen);
    const info: SyncDaemonInfo = { state: d.state, mcastIfn: d.mcastIfn, syncid: d.syncid, maxLen, group, port, ttl };
    if (d.state === 'master') {
      const sock = dgram.createSocket({ type: 'udp4' });
      await bind(sock, { address: ifc.addr, port: 0 }).catch((e) => closeAndThrow(sock, e));
      sock.setMulticastInterface(ifc.addr);
      sock.setMulticastTTL(ttl);
      sock.setMulticastLoopback(false);
      const dests = d.peers?.length ? d.peers : [group];
      const master = new SyncMaster({
        syncid: d.syncid,
        maxLen,
        timers: this.o.timers,
        sysctl: this.o.sysctl,
        send: (msg) => {
          for (const to of dests)
            sock.send(msg, port, to, (err) => {
              if (err) this.log.warn({ err: err.message, to }, 'sync send failed');
            });
        },
      });
      master.start();
      this.running.set('master', { info, sock, master });
    } else {
      if (!this.o.target) throw new SyncDaemonError('EINVAL', 'a backup sync daemon needs a target');
      const sock = dgram.createSocket({ type: 'udp4', reuseAddr: true });
      const backup = new SyncBackup({
        syncid: d.syncid,
        maxLen,
        target: this.o.target,
        log: this.log,
      });
      sock.on('message', (msg) => backup.receive(msg));
      sock.on('error', (err) => this.log.warn({ err: err.message }, 'sync socket error'));
      try {
        if (d.peers?.length) await bind(sock, { address: ifc.addr, port });
        else {
          await bind(sock, { address: group, port });
          sock.addMembership(group, ifc.addr);
        }
      } catch (e) {
        closeAndThrow(sock, e);
      }
      this.running.set('backup', { info, sock, backup });
    }
    this.log.info({ ...info }, `sync thread started: state = ${d.state.toUpperCase()}`);
  }

  async stop(state: 'master' | 'backup'): Promise<void> {
    const r = this.running.get(state);
    if (!r) throw new SyncDaemonError('ESRCH', 'No daemon is running');
    this.running.delete(state);
    r.master?.stop();
    await new Promise<void>((resolve) => r.sock.close(() => resolve()));
    this.log.info({ ...r.info }, `stopping ${state} sync thread`);
  }

  async stopAll(): Promise<void> {
    for (const s of [...this.running.keys()]) await this.stop(s);
  }
}

function closeAndThrow(sock: dgram.Socket, e: unknown): never {
  sock.close();
  throw e;
}

function bind(sock: dgram.Socket, o: dgram.BindOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(o, () => {
      sock.off('error', reject);
      resolve();
    });
  });
}
