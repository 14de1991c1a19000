/**
 * Run inside the director namespace by test/netns-checks.test.ts: a ServiceTable under a CheckManager with real
 * timers and real probes. argv[2] is a JSON config; every table change is printed as one JSON line with the table's
 * real servers ({"dests": {"addr:port": weight}}).
 */
import { pino } from 'pino';
import { CheckManager } from '../src/ha/checks/manager.js';
import type { VirtualServerHealth } from '../src/ha/checks-types.js';
import type { ServiceId } from '../src/l4/service.js';
import { type DestSpec, ServiceTable } from '../src/l4/services.js';

interface Config {
  id: ServiceId;
  dests: DestSpec[];
  health: VirtualServerHealth;
  marks: Record<string, number>;
}

const cfg = JSON.parse(process.argv[2]) as Config;
const table = new ServiceTable({ clock: { now: () => Date.now() }, random: Math.random });
table.addService({ id: cfg.id, sched: 'wrr', flags: 0, timeout: 0, netmask: 0xffffffff });

const print = () => {
  const dests = Object.fromEntries((table.get(cfg.id)?.dests ?? []).map((d) => [`${d.addr}:${d.port}`, d.weight]));
  process.stdout.write(`${JSON.stringify({ dests })}\n`);
};

const m = new CheckManager({
  table,
  services: [{ spec: { id: cfg.id }, dests: cfg.dests, health: cfg.health }],
  log: pino({ level: process.env.TIERLB_LOG_LEVEL ?? 'info' }, pino.destination(2)),
  markOf: (_svc, d) => cfg.marks[`${d.addr}:${d.port}`],
  bootstrapDelayMs: 100,
});
m.on('action', print);
m.start();
print();
// keep running until killed; a timer keeps the loop alive (check timers are unref'd)
setInterval(() => {}, 1 << 30);
