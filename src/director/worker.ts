/**
 * The data-path worker thread: owns the NFQUEUE socket, the engine (so a decision is not a thread hop) and the
 * service table. Hot loop: blocking recv (100 ms timeout) → parse → engine → verdict, draining what is pending and
 * sending the batch's verdicts in one datagram; between batches it polls its control port synchronously
 * (receiveMessageOnPort) for admin requests, reloads, stats and stop, and ticks the engine about once a second.
 */
import { networkInterfaces } from 'node:os';
import { type MessagePort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { systemClock } from '../common/clock.js';
import { handleAdmRequest } from '../l4/adm/index.js';
import { Forwarder } from '../l4/datapath/forward.js';
import type { NlMessage, QueuedPacket } from '../l4/datapath/nfqmsg.js';
import { NfQueue } from '../l4/datapath/nfqueue.js';
import { pump } from '../l4/datapath/pump.js';
import type { ToWorker, WorkerData } from '../l4/datapath/types.js';
import type { RealServer } from '../l4/dest.js';
import { Engine } from '../l4/engine.js';
import { AF_INET, IPPROTO_RAW, SOCK_RAW } from '../sys/constants.js';
import { close, sendto4, socket } from '../sys/libc.js';
import { applyPlanDiff, type PlanDiff } from './config.js';
import { engineSysctl } from './engine-sysctl.js';
import { type HaRequest, WorkerHa } from './worker-ha.js';

const data = workerData as WorkerData;
const port: MessagePort = data.port;

function localAddrs(): Set<string> {
  const s = new Set<string>();
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) s.add(a.address);
  return s;
}

async function main(): Promise<void> {
  const engine = new Engine({ clock: systemClock });
  let locals = localAddrs();
  const markLocal = (_svc: unknown, d: RealServer) => {
    d.local = locals.has(d.addr);
  };
  engine.table.on('dest-add', markLocal);
  engine.table.on('dest-edit', markLocal);

  const nfq = new NfQueue({ queue: data.queue, maxLen: data.maxLen });
  let rawFd = -1;
  const fwd = new Forwarder(
    engine,
    {
      verdict: (id, v, mark, payload) => nfq.verdict(id, v, mark, payload),
      sendRaw: (pkt, dst) => {
        if (rawFd < 0) rawFd = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
        return sendto4(rawFd, pkt, pkt.length, dst) === pkt.length;
      },
    },
    data.queue,
    data.queues,
  );
  const ha = new WorkerHa(engine, fwd);
  port.postMessage({ type: 'ready', engine: engine.constructor.name, plan: fwd.plan() });

  const msgs: NlMessage[] = [];
  const handle = (pkt: QueuedPacket) => fwd.handle(pkt);
  let stopping = false;
  let lastTick = Date.now();

  const control = async (m: ToWorker): Promise<void> => {
    switch (m.type) {
      case 'adm': {
        let response: string;
        locals = localAddrs();
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
          applyPlanDiff(engine.table, m.diff as PlanDiff);
          const { timeouts, sysctl, marks } = m.diff as PlanDiff;
          if (marks) fwd.matches = marks;
          if (timeouts) engine.setTimeouts(timeouts);
          if (sysctl) engine.setSysctl(engineSysctl(sysctl));
          port.postMessage({ type: 'reply', id: m.id, response: 'ok', plan: fwd.plan() });
        } catch (e) {
          port.postMessage({ type: 'reply', id: m.id, error: (e as Error).message, plan: fwd.plan() });
        }
        break;
      }
      case 'stats': {
        const ipvs = { ...engine.stats(), sysctl: engine.sysctl };
        port.postMessage({ type: 'reply', id: m.id, response: JSON.stringify({ ...fwd.counters, ipvs }) });
        break;
      }
      case 'ha': {
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
    pump(nfq, msgs, handle);
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
    }
  }
  await ha.sync.stopAll();
  nfq.close();
  if (rawFd >= 0) close(rawFd);
  port.postMessage({ type: 'stopped', counters: fwd.counters });
  port.close();
}

main().catch((e) => {
  port.postMessage({ type: 'fatal', message: (e as Error).stack ?? String(e) });
  port.close();
});
