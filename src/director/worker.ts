/**
 * The data-path worker thread: owns the NFQUEUE socket, the engine (so a decision is not a thread hop) and the
 * service table. Hot loop: blocking recv (100 ms timeout) → parse → engine → verdict, draining what is pending and
 * sending the batch's verdicts in one datagram; between batches it polls its control port synchronously
 * (receiveMessageOnPort) for admin requests, reloads, stats and stop, and ticks the engine about once a second.
 */
import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { type MessagePort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { monotonicClock } from '../common/clock.js';
import { handleAdmRequest } from '../l4/adm/index.js';
import { Forwarder } from '../l4/datapath/forward.js';
import type { NlMessage, QueuedPacket } from '../l4/datapath/nfqmsg.js';
import { NfQueue } from '../l4/datapath/nfqueue.js';
import { pump } from '../l4/datapath/pump.js';
import type { FastpathStart, ToWorker, WorkerData } from '../l4/datapath/types.js';
import type { RealServer } from '../l4/dest.js';
import { Engine } from '../l4/engine.js';
import { defaultInterfaces, KernelFastPath } from '../l4/fastpath/maps.js';
import {
  AF_INET,
  AF_INET6,
  IPPROTO_IPIP,
  IPPROTO_IPV6,
  IPPROTO_RAW,
  IPV6_TCLASS,
  IPV6_UNICAST_HOPS,
  SO_RCVBUF,
  SOCK_RAW,
  SOL_SOCKET,
} from '../sys/constants.js';
import { close, sendto4, sendto6, setsockoptInt, socket } from '../sys/libc.js';
import { applyPlanDiff, DEFAULT_SYSCTL, type PlanDiff } from './config.js';
import { applyEngineSysctl } from './engine-sysctl.js';
import { type HaRequest, WorkerHa } from './worker-ha.js';

const data = workerData as WorkerData;
const port: MessagePort = data.port;

/**
 * A raw AF_INET6 socket of `protocol` (41: IPv6 in IPv6, 4: IPv4 in IPv6) for TUN to IPv6 real servers: the kernel
 * writes the outer header (the route's source, hop limit 64). It also receives the protocol's incoming packets;
 * nothing reads them, so its receive buffer is the smallest.
 */
function tunnelSocket6(protocol: number): number {
  const fd = socket(AF_INET6, SOCK_RAW, protocol);
  try {
    setsockoptInt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, 64, 'IPV6_UNICAST_HOPS');
    setsockoptInt(fd, SOL_SOCKET, SO_RCVBUF, 0, 'SO_RCVBUF');
  } catch (e) {
    close(fd);
    throw e;
  }
  return fd;
}

function localAddrs(): Set<string> {
  const s = new Set<string>();
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) s.add(a.address);
  return s;
}

/**
 * A connection enters the kernel at its 4th incoming packet (ESTABLISHED TCP, or UDP): a connect-request-close
 * flow stays in userspace and costs no map writes; anything longer is forwarded in the kernel after a few packets.
 */
const FASTPATH_MIN_PACKETS = 4;
const HOLD = { flushEvery: Number.POSITIVE_INFINITY };

/**
 * Load and attach the fast path as the mode asks: 'on' throws when it cannot, 'auto' falls back to NFQUEUE only and
 * says why.
 */
function startFastPath(engine: Engine): { fp: KernelFastPath | null; start: FastpathStart } {
  const mode = data.fastpath ?? 'off';
  if (mode === 'off') return { fp: null, start: { mode, active: false, reason: 'fastpath: off' } };
  let fp: KernelFastPath | null = null;
  try {
    fp = new KernelFastPath();
    const names = data.fastpathInterfaces ?? defaultInterfaces();
    fp.attach(names.map((n) => Number.parseInt(readFileSync(`/sys/class/net/${n}/ifindex`, 'utf8'), 10)));
    engine.setFastPath(fp, { minPackets: FASTPATH_MIN_PACKETS });
    return { fp, start: { mode, active: true, attached: fp.attached } };
  } catch (e) {
    fp?.close();
    if (mode === 'on') throw e;
    return { fp: null, start: { mode, active: false, reason: (e as Error).message } };
  }
}

/**
 * The fast path's interfaces as they are now: the configured names that exist, or every interface with an address
 * (but loopback), so one that appears after the start is attached at the next rescan.
 */
function presentInterfaces(): number[] {
  const out: number[] = [];
  for (const n of data.fastpathInterfaces ?? defaultInterfaces()) {
    try {
      out.push(Number.parseInt(readFileSync(`/sys/class/net/${n}/ifindex`, 'utf8'), 10));
    } catch {}
  }
  return out;
}

async function main(): Promise<void> {
  // timeouts run on CLOCK_MONOTONIC, the clock of the fast path's last-seen times
  const engine = new Engine({ clock: monotonicClock });
  // the memory bound and defenses are on before the first packet, config or not
  applyEngineSysctl(engine, DEFAULT_SYSCTL);
  let locals = localAddrs();
  const markLocal = (_svc: unknown, d: RealServer) => {
    d.local = locals.has(d.addr);
  };
  engine.table.on('dest-add', markLocal);
  engine.table.on('dest-edit', markLocal);

  const nfq = new NfQueue({ queue: data.queue, maxLen: data.maxLen });
  let rawFd = -1;
  let raw6Fd = -1;
  // IPv6 tunnel sockets by inner family (IPv4, IPv6), with the traffic class last set on each
  const tun6 = [
    { fd: -1, tclass: 0 },
    { fd: -1, tclass: 0 },
  ];
  const fwd = new Forwarder(
    engine,
    {
      verdict: (id, v, mark, payload) => nfq.verdict(id, v, mark, payload),
      sendRaw: (pkt, dst) => {
        if (rawFd < 0) rawFd = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
        return sendto4(rawFd, pkt, pkt.length, dst) === pkt.length;
      },
      sendTunnel6: (inner, dst, tclass) => {
        const v6 = inner[0] >> 4 === 6;
        const s = tun6[v6 ? 1 : 0];
        if (s.fd < 0) s.fd = tunnelSocket6(v6 ? IPPROTO_IPV6 : IPPROTO_IPIP);
        if (s.tclass !== tclass) {
          setsockoptInt(s.fd, IPPROTO_IPV6, IPV6_TCLASS, tclass, 'IPV6_TCLASS');
          s.tclass = tclass;
        }
        return sendto6(s.fd, inner, inner.length, dst) === inner.length;
      },
      sendRaw6: (pkt, dst) => {
        if (raw6Fd < 0) raw6Fd = socket(AF_INET6, SOCK_RAW, IPPROTO_RAW);
        return sendto6(raw6Fd, pkt, pkt.length, dst) === pkt.length;
      },
    },
    data.queue,
    data.queues,
  );
  // sources claiming one of the director's own addresses are martians (refreshed with `locals`)
  fwd.setOwnAddrs(locals);
  const ha = new WorkerHa(engine, fwd);
  const { fp, start: fastpath } = startFastPath(engine);
  // the sync master counts packets one by one (sync_threshold, sync_period): for packets the kernel forwarded, it is
  // shown the connection once, at the last count in the batch where the rule would have fired
  engine.onKernelPackets = (cp, before) => {
    const master = ha.sync.master;
    if (!master) return;
    const { syncPeriod: period, syncThreshold: threshold } = master.sysctl;
    const after = cp.inpkts;
    let at = after;
    if (period > 0) {
      at = after - ((((after - threshold) % period) + period) % period);
      if (at <= before) return;
    } else if (master.sysctl.syncRefreshPeriodMs <= 0) {
      if (threshold <= before || threshold > after) return;
      at = threshold;
    }
    cp.inpkts = at;
    try {
      master.packet(cp);
    } finally {
      cp.inpkts = after;
    }
  };
  port.postMessage({ type: 'ready', engine: engine.constructor.name, plan: fwd.plan(), fastpath });

  const msgs: NlMessage[] = [];
  // flows that became eligible are written to the kernel only once their batch's verdicts are out (no overtaking)
  const source = fp
    ? {
        receive: nfq.receive.bind(nfq),
        get pendingVerdicts() {
          return nfq.pendingVerdicts;
        },
        flush() {
          nfq.flush();
          fp.flushPending();
        },
      }
    : nfq;
  const handle = fp
    ? (pkt: QueuedPacket) => {
        fp.currentIndev = pkt.indev;
        if (pkt.tsSec) fp.noteRead(pkt.tsSec, pkt.tsUsec ?? 0);
        fwd.handle(pkt);
      }
    : (pkt: QueuedPacket) => fwd.handle(pkt);
  let stopping = false;
  let lastTick = Date.now();

  const control = async (m: ToWorker): Promise<void> => {
    switch (m.type) {
      case 'adm': {
        let response: string;
        locals = localAddrs();
        fwd.setOwnAddrs(locals);
        // kernel-forwarded packets show in -L --stats / --rate at once
        engine.syncKernel();
        try {
          response = (await ha.adm(m.line)) ?? handleAdmRequest(m.line, engine);
        } catch (e) {
          response = JSON.stringify({ code: 1, stdout: '', stderr: `${(e as Error).message}\n` });
        }
        port.postMessage({ type: 'reply', id: m.id, response, plan: fwd.plan() });
        break;
      }
      case 'diff': {
        try {
          locals = localAddrs();
          fwd.setOwnAddrs(locals);
          applyPlanDiff(engine.table, m.diff as PlanDiff);
          const { timeouts, sysctl, marks } = m.diff as PlanDiff;
          if (marks) fwd.matches = marks;
          if (timeouts) engine.setTimeouts(timeouts);
          if (sysctl) applyEngineSysctl(engine, sysctl);
          port.postMessage({ type: 'reply', id: m.id, response: 'ok', plan: fwd.plan() });
        } catch (e) {
          port.postMessage({ type: 'reply', id: m.id, error: (e as Error).message, plan: fwd.plan() });
        }
        break;
      }
      case 'stats': {
        engine.syncKernel();
        const ipvs = { ...engine.stats(), sysctl: engine.sysctl };
        const fastpathStats = fp ? { ...fastpath, inKernel: engine.inKernel.size, ...fp.stats() } : fastpath;
        port.postMessage({
          type: 'reply',
          id: m.id,
          response: JSON.stringify({ ...fwd.counters, ipvs, fastpath: fastpathStats }),
        });
        break;
      }
      case 'ha': {
        // the metrics snapshot counts what the kernel forwarded
        engine.syncKernel();
        try {
          const response = JSON.stringify(await ha.request(m.req as HaRequest));
          port.postMessage({ type: 'reply', id: m.id, response, plan: fwd.plan() });
        } catch (e) {
          port.postMessage({ type: 'reply', id: m.id, error: (e as Error).message });
        }
        break;
      }
      case 'stop':
        stopping = true;
        break;
    }
  };

  while (!stopping) {
    // while an entry waits to be armed, verdicts go out only when the socket is drained (end of the pass), not every
    // 32: a sender that has used its window then waits for those verdicts' ACKs, so the queue holds none of its
    // packets when the arm value is written, and the program can arm at its next packet (on veth the release itself
    // may restart the sender before the write: DEVELOPERS.md, the fast path and the NFQUEUE)
    pump(source, msgs, handle, fp && fp.unarmed > 0 ? HOLD : undefined);
    let c = receiveMessageOnPort(port);
    while (c) {
      await control(c.message as ToWorker);
      c = receiveMessageOnPort(port);
    }
    // sync daemons' sockets and timers live on this thread's event loop
    if (ha.active) await new Promise<void>((resolve) => setImmediate(resolve));
    const now = Date.now();
    if (now - lastTick >= 1000) {
      lastTick = now;
      engine.tick();
      if (fp) fp.follow(presentInterfaces());
    }
  }
  await ha.sync.stopAll();
  // the program and its maps go first: nothing is forwarded in the kernel for a director that stopped
  if (fp) {
    engine.setFastPath(null);
    fp.close();
  }
  nfq.close();
  for (const fd of [rawFd, raw6Fd, ...tun6.map((s) => s.fd)]) if (fd >= 0) close(fd);
  port.postMessage({ type: 'stopped', counters: fwd.counters });
  port.close();
}

main().catch((e) => {
  port.postMessage({ type: 'fatal', message: (e as Error).stack ?? String(e) });
  port.close();
});
