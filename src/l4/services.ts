/**
 * The service table: what ipvsadm -A/-E/-D/-C/-a/-e/-d/-Z change in the kernel (ip_vs_ctl.c), with the kernel's
 * checks and error codes. Pure: the data path listens to its events to install or remove its rules.
 */
import { EventEmitter } from 'node:events';
import { canonicalAddr, familyOf } from '../common/addr.js';
import { AdmError } from '../common/errors.js';
import { type DestOptions, destKey, type FwdMethod, MAX_WEIGHT, RealServer } from './dest.js';
import { SCHEDULERS } from './schedulers/index.js';
import type { SchedulerContext } from './schedulers/types.js';
import { type ServiceId, SVC_F_PERSISTENT, serviceKey, VirtualService } from './service.js';

export interface ServiceSpec {
  id: ServiceId;
  sched: string;
  /** IP_VS_SVC_F_* other than PERSISTENT/HASHED: ONEPACKET and the scheduler flags */
  flags: number;
  /** persistence timeout in seconds, 0 = not persistent */
  timeout: number;
  /** IPv4 netmask as a 32-bit number (default 0xffffffff), IPv6 prefix length (default 128) */
  netmask: number;
}

export interface DestSpec {
  addr: string;
  port: number;
  fwd: FwdMethod;
  weight: number;
  uThreshold: number;
  lThreshold: number;
}

export interface ServiceTableEvents {
  'service-add': [VirtualService];
  'service-edit': [VirtualService];
  'service-del': [VirtualService];
  'dest-add': [VirtualService, RealServer];
  'dest-edit': [VirtualService, RealServer];
  'dest-del': [VirtualService, RealServer];
}

export class ServiceTable extends EventEmitter<ServiceTableEvents> {
  /** services in the order they were added (the kernel lists them in hash order, which is not reproducible) */
  readonly services = new Map<string, VirtualService>();

  constructor(private readonly ctx: SchedulerContext) {
    super();
  }

  get(id: ServiceId): VirtualService | undefined {
    return this.services.get(serviceKey(normalizeId(id)));
  }

  list(): VirtualService[] {
    return [...this.services.values()];
  }

  addService(spec: ServiceSpec): VirtualService {
    const id = normalizeId(spec.id);
    const key = serviceKey(id);
    if (this.services.has(key)) throw new AdmError('EEXIST_SERVICE', 'Service already exists');
    const factory = SCHEDULERS[spec.sched];
    if (!factory) throw new AdmError('ENOENT_SCHED', 'Scheduler or persistence engine not found');
    checkNetmask(id.family, spec.netmask);
    const svc = new VirtualService(id, {
      schedName: spec.sched,
      flags: svcFlags(spec),
      timeout: spec.timeout,
      netmask: spec.netmask,
    });
    svc.scheduler = factory(svc, this.ctx);
    this.services.set(key, svc);
    this.emit('service-add', svc);
    return svc;
  }

  editService(spec: ServiceSpec): VirtualService {
    const svc = this.requireService(spec.id, 'No such service');
    const factory = SCHEDULERS[spec.sched];
    if (!factory) throw new AdmError('ENOENT_SCHED', 'Scheduler or persistence engine not found');
    checkNetmask(svc.family, spec.netmask);
    const schedChanged = svc.schedName !== spec.sched || svc.flags !== svcFlags(spec);
    svc.flags = svcFlags(spec);
    svc.timeout = spec.timeout;
    svc.netmask = spec.netmask;
    if (schedChanged) {
      svc.schedName = spec.sched;
      svc.scheduler = factory(svc, this.ctx);
      svc.scheduler.update(svc);
    }
    this.emit('service-edit', svc);
    return svc;
  }

  delService(id: ServiceId): void {
    const svc = this.requireService(id, 'No such service');
    this.services.delete(svc.key);
    for (const d of svc.dests) d.available = false;
    this.emit('service-del', svc);
  }

  /** ipvsadm -C */
  clear(): void {
    for (const svc of this.list()) this.delService(svc);
  }

  addDest(id: ServiceId, spec: DestSpec): RealServer {
    const svc = this.requireService(id, 'Service not defined');
    const o = this.destOptions(svc, spec);
    if (svc.dests.some((d) => d.key === destKey(o.addr, o.port)))
      throw new AdmError('EEXIST_DEST', 'Destination already exists');
    const dest = new RealServer(o);
    svc.dests.unshift(dest);
    svc.scheduler.update(svc);
    this.emit('dest-add', svc, dest);
    return dest;
  }

  editDest(id: ServiceId, spec: DestSpec): RealServer {
    const svc = this.requireService(id, 'Service not defined');
    const o = this.destOptions(svc, spec);
    const dest = svc.dests.find((d) => d.key === destKey(o.addr, o.port));
    if (!dest) throw new AdmError('ENOENT_DEST', 'No such destination');
    if (o.weight > 0) dest.lastWeight = o.weight;
    dest.weight = o.weight;
    dest.fwd = o.fwd;
    // __ip_vs_update_dest: raising (or removing) the upper threshold clears the overload flag
    if (o.uThreshold === 0 || o.uThreshold > dest.uThreshold) dest.overloaded = false;
    dest.uThreshold = o.uThreshold;
    dest.lThreshold = o.lThreshold;
    svc.scheduler.update(svc);
    this.emit('dest-edit', svc, dest);
    return dest;
  }

  delDest(id: ServiceId, addr: string, port: number): void {
    const svc = this.requireService(id, 'Service not defined');
    const a = canonicalAddr(addr);
    const i = svc.dests.findIndex((d) => d.addr === a && d.port === port);
    if (i < 0) throw new AdmError('ENOENT_DEST', 'No such destination');
    const [dest] = svc.dests.splice(i, 1);
    dest.available = false;
    svc.scheduler.update(svc);
    this.emit('dest-del', svc, dest);
  }

  /** ipvsadm -Z [service] */
  zero(id?: ServiceId): void {
    const svcs = id ? [this.requireService(id, 'No such service')] : this.list();
    for (const svc of svcs) {
      svc.stats.zero();
      for (const d of svc.dests) d.stats.zero();
    }
  }

  private requireService(id: ServiceId, msg: string): VirtualService {
    const svc = this.get(id);
    if (!svc) throw new AdmError('ESRCH_SERVICE', msg);
    return svc;
  }

  private destOptions(svc: VirtualService, spec: DestSpec): DestOptions {
    const fam = familyOf(spec.addr);
    if (fam === 0) throw new AdmError('EINVAL', `invalid address: ${spec.addr}`);
    if (!Number.isInteger(spec.weight) || spec.weight < 0 || spec.weight > MAX_WEIGHT)
      throw new AdmError('EINVAL', 'Illegal weight specified');
    // mixed address families only with tunnelling (ip_vs_add_dest)
    if (fam !== svc.family && spec.fwd !== 'tunnel')
      throw new AdmError('EAFNOSUPPORT', 'Operation not supported with specified address family');
    if (spec.lThreshold > spec.uThreshold && spec.uThreshold !== 0)
      throw new AdmError('EINVAL', 'Lower threshold is above upper threshold');
    // a real server's port defaults to the service's (ipvsadm: "-r ip" without port, or fwmark services: port 0 → 0)
    return {
      addr: canonicalAddr(spec.addr),
      port: spec.port,
      family: fam,
      fwd: spec.fwd,
      weight: spec.weight,
      uThreshold: spec.uThreshold,
      lThreshold: spec.lThreshold,
    };
  }
}

function normalizeId(id: ServiceId): ServiceId {
  if (id.kind === 'fwm') return { kind: 'fwm', family: id.family, fwmark: id.fwmark };
  const addr = canonicalAddr(id.addr ?? '');
  const fam = familyOf(addr);
  return { kind: id.kind, family: fam === 0 ? id.family : fam, addr, port: id.port ?? 0 };
}

function svcFlags(spec: ServiceSpec): number {
  return (spec.flags & ~SVC_F_PERSISTENT) | (spec.timeout > 0 ? SVC_F_PERSISTENT : 0);
}

function checkNetmask(family: 4 | 6, netmask: number): void {
  if (family === 6 ? netmask < 1 || netmask > 128 : netmask === 0) throw new AdmError('EINVAL', 'Invalid operations');
}
