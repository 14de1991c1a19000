import test from 'ava';
import { AdmError } from '../src/common/errors.js';
import type { RealServer } from '../src/l4/dest.js';
import type { ServiceId } from '../src/l4/service.js';
import { ACK, checkInvariants, FIN, PSH, pkt, RST, reply, SYN, seeded, setup } from './engine-fixture.js';

const FLAGS = [SYN, SYN, ACK, ACK | PSH, FIN | ACK, RST, SYN | ACK, 0];

for (const seed of [1, 2, 3, 4, 5, 6]) {
  test(`random admin changes and packets keep the counters consistent (seed ${seed})`, (t) => {
    const rnd = seeded(seed);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
    const { eng, clock } = setup({ maxConns: 300, random: seeded(seed + 100) });
    const servers = new Set<RealServer>();
    const ids: ServiceId[] = [
      { kind: 'tcp', family: 4, addr: '10.0.0.1', port: 80 },
      { kind: 'tcp', family: 4, addr: '10.0.0.1', port: 0 },
      { kind: 'udp', family: 4, addr: '10.0.0.1', port: 53 },
      { kind: 'tcp', family: 4, addr: '10.0.0.2', port: 21 },
      { kind: 'fwm', family: 4, fwmark: 3 },
    ];
    const rsAddrs = ['192.168.1.1', '192.168.1.2', '192.168.1.3', '192.168.1.4'];
    const tolerate = (f: () => void) => {
      try {
        f();
      } catch (e) {
        if (!(e instanceof AdmError)) throw e;
      }
    };
    const destSpec = () => ({
      addr: pick(rsAddrs),
      port: pick([0, 80, 8080]),
      fwd: pick(['route', 'masq', 'tunnel'] as const),
      weight: pick([0, 1, 1, 2, 3]),
      uThreshold: pick([0, 0, 0, 5]),
      lThreshold: 0,
    });
    const flows: ReturnType<typeof pkt>[] = [];
    let forwards = 0;
    let templates = 0;

    for (let step = 0; step < 3000; step++) {
      const r = rnd();
      if (r < 0.04) {
        const id = pick(ids);
        const persistent = rnd() < 0.5;
        tolerate(() =>
          eng.table.addService({
            id,
            sched: 'rr',
            flags: 0,
            timeout: persistent ? pick([10, 60, 300]) : 0,
            netmask: pick([0xffffffff, 0xffffff00]),
          }),
        );
      } else if (r < 0.06) {
        tolerate(() =>
          eng.table.editService({ id: pick(ids), sched: 'rr', flags: 0, timeout: pick([0, 30]), netmask: 0xffffffff }),
        );
      } else if (r < 0.08) {
        tolerate(() => eng.table.delService(pick(ids)));
      } else if (r < 0.14) {
        tolerate(() => servers.add(eng.table.addDest(pick(ids), destSpec())));
      } else if (r < 0.18) {
        tolerate(() => eng.table.editDest(pick(ids), destSpec()));
      } else if (r < 0.21) {
        tolerate(() => eng.table.delDest(pick(ids), pick(rsAddrs), pick([0, 80, 8080])));
      } else if (r < 0.23) {
        eng.setSysctl({
          expire_nodest_conn: pick([0, 1]),
          expire_quiescent_template: pick([0, 1]),
          conn_reuse_mode: pick([0, 1, 3]),
          sloppy_tcp: pick([0, 1]),
          drop_entry: pick([0, 0, 3]),
        });
      } else if (r < 0.3) {
        clock.advance(Math.floor(rnd() * 20_000));
        eng.tick();
      } else if (r < 0.301) {
        eng.flush();
      } else if (r < 0.4 && flows.length) {
        // a reply from wherever the flow went
        const f = pick(flows);
        const conn = eng.conns.getIn(`${f.protocol}|${f.saddr}|${f.sport}|${f.daddr}|${f.dport}`);
        if (conn?.dest) eng.processReply(reply(f, conn.dest, { sport: conn.dport, tcpFlags: pick(FLAGS) }));
      } else {
        const proto = pick([6, 6, 6, 17]);
        const f = pkt({
          protocol: proto,
          saddr: `172.16.${Math.floor(rnd() * 2)}.${1 + Math.floor(rnd() * 6)}`,
          sport: 1 + Math.floor(rnd() * 4),
          daddr: pick(['10.0.0.1', '10.0.0.2']),
          dport: pick([80, 53, 21, 8000, 443]),
          fwmark: pick([0, 0, 3]),
          tcpFlags: proto === 6 ? pick(FLAGS) : 0,
          length: 40 + Math.floor(rnd() * 1400),
        });
        const v = eng.process(f);
        if (v.kind === 'forward') {
          flows.push(f);
          forwards++;
          if (v.conn.controlledBy) templates++;
        }
        if (flows.length > 200) flows.shift();
      }
      if (step % 50 === 0) checkInvariants(t, eng, servers);
      t.true(eng.stats().size <= 300);
    }
    checkInvariants(t, eng, servers);
    t.true(forwards > 100 && templates > 50, 'the run exercised connections and templates');
    // everything drains
    for (let i = 0; i < 40; i++) {
      clock.advance(60_000);
      eng.tick();
    }
    t.is(eng.stats().size, 0);
    for (const d of servers) {
      t.is(d.activeConns + d.inactConns + d.persistConns, 0);
      t.false(d.overloaded && d.uThreshold === 0);
    }
  });
}
