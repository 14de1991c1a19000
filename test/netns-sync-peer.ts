/**
 * Run inside a namespace by test/netns-sync.test.ts: a director Engine with one DR service and a sync daemon.
 * argv: the ipvsadm command line that starts the daemon (`--start-daemon master --mcast-interface eth0 --syncid 7
 * [--mcast-group G --mcast-port P --mcast-ttl T …]`), read as the director reads it (parseCommand → startFromAdm).
 * Commands on stdin, one JSON line of answer each on stdout:
 *   conns N  — (master) N clients open TCP connections (SYN, ACK, data) through the engine; the sync hook runs
 *   flush    — (master) send the partly filled message now
 *   dump     — the engine's connections and the backup's counters
 */
import { createInterface } from 'node:readline';
import { pino } from 'pino';
import { SyncDaemonControl, startFromAdm } from '../src/ha/sync/daemon.js';
import { EngineSyncTarget } from '../src/ha/sync/target.js';
import { parseCommand } from '../src/l4/adm/parse.js';
import { Engine } from '../src/l4/engine.js';

const ce = parseCommand(process.argv.slice(2), { out: () => {}, err: (m) => process.stderr.write(m) });
if (!ce) throw new Error(`not an ipvsadm command line: ${process.argv.slice(2).join(' ')}`);
const engine = new Engine();
const id = { kind: 'tcp', family: 4, addr: '10.82.0.100', port: 80 } as const;
engine.table.addService({ id, sched: 'rr', flags: 0, timeout: 0, netmask: 0xffffffff });
for (const addr of ['10.82.1.11', '10.82.1.12'])
  engine.table.addDest(id, { addr, port: 80, fwd: 'route', weight: 1, uThreshold: 0, lThreshold: 0 });

const daemons = new SyncDaemonControl({
  target: new EngineSyncTarget(engine),
  log: pino({ level: 'warn' }, pino.destination(2)),
});
await daemons.start(startFromAdm(ce.daemon));
const out = (o: unknown) => process.stdout.write(`${JSON.stringify(o)}\n`);
out({ ready: true, daemons: daemons.list() });

let next = 0;
createInterface({ input: process.stdin }).on('line', (line) => {
  const [cmd, arg] = line.trim().split(/\s+/);
  if (cmd === 'conns') {
    for (let i = 0; i < Number(arg); i++, next++) {
      for (const tcpFlags of [0x02, 0x10, 0x18]) {
        const v = engine.process({
          family: 4,
          protocol: 6,
          saddr: `172.16.${next >> 8}.${next & 255}`,
          sport: 30000 + next,
          daddr: id.addr,
          dport: 80,
          fwmark: 0,
          tcpFlags,
          length: 60,
        });
        if (v.kind === 'forward') daemons.master?.packet(v.conn);
      }
    }
    out({ ok: true, stats: daemons.master?.stats });
  } else if (cmd === 'flush') {
    daemons.master?.flush();
    out({ ok: true, stats: daemons.master?.stats });
  } else if (cmd === 'dump') {
    out({
      conns: engine
        .connections()
        .map((r) => `${r.caddr}:${r.cport}>${r.vaddr}:${r.vport}>${r.daddr}:${r.dport} ${r.state}`)
        .sort(),
      counters: daemons.backup?.counters,
    });
  }
});
