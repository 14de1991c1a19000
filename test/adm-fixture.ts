/**
 * The table the adm golden tests list: built through runAdm itself (so parsing is exercised), deliberately added out
 * of order, with counters and statistics set by hand so every column has a value worth checking.
 */

import { ManualClock } from '../src/common/clock.js';
import { type AdmResult, runAdm } from '../src/l4/adm/run.js';
import { TableTarget } from '../src/l4/adm/table-target.js';
import type { ConnRow } from '../src/l4/adm/target.js';
import type { RealServer } from '../src/l4/dest.js';
import type { VirtualService } from '../src/l4/service.js';
import type { StatsSnapshot } from '../src/l4/stats.js';

export function newTarget(): TableTarget {
  return new TableTarget({ clock: new ManualClock(), random: () => 0.5 });
}

/** Run a command and fail loudly if it does not succeed. */
export function ok(target: TableTarget, ...argv: string[]): AdmResult {
  const r = runAdm(argv, target);
  if (r.code !== 0) throw new Error(`ipvsadm ${argv.join(' ')} → ${r.code}: ${r.stderr}`);
  return r;
}

export const FIXTURE_COMMANDS = [
  '-A -t [2001:db8::1]:443 -s rr',
  '-a -t [2001:db8::1]:443 -r 2001:db8::11 -g',
  '-a -t [2001:db8::1]:443 -r [2001:db8::10]:8443 -m -w 5',
  '-A -f 10000 -s rr',
  '-a -f 10000 -r 192.168.10.31 -g -w 2',
  '-A -t 10.0.0.1:80 -s wlc',
  '-a -t 10.0.0.1:80 -r 192.168.10.14 -i -w 0',
  '-a -t 10.0.0.1:80 -r 192.168.10.11 -m -w 3',
  '-a -t 10.0.0.1:80 -r 192.168.10.12:8080 -m -w 2',
  '-a -t 10.0.0.1:80 -r 192.168.10.13 -g',
  '-a -t 10.0.0.1:80 -r 10.0.0.1 -g',
  '-A -u 10.0.0.1:53 -s rr -p 600 -M 255.255.255.0 -o',
  '-a -u 10.0.0.1:53 -r 192.168.10.21 -m -x 1000 -y 800',
  '-A -f 7 -6 -s sh -b sh-fallback,sh-port -p -M 64',
  '-a -f 7 -6 -r 2001:db8::31 -g',
  '-A --sctp-service 10.0.0.2:9000 -s rr',
  '-A -t 200.1.1.1:80 -s rr -p 3600',
];

function find(target: TableTarget, svcName: string): VirtualService {
  const s = target.table.list().find((v) => v.toString() === svcName);
  if (!s) throw new Error(`no ${svcName}`);
  return s;
}

function dest(svc: VirtualService, addr: string): RealServer {
  const d = svc.dests.find((x) => x.addr === addr);
  if (!d) throw new Error(`no ${addr}`);
  return d;
}

function conns(d: RealServer, active: number, inact: number, persist = 0): void {
  d.activeConns = active;
  d.inactConns = inact;
  d.persistConns = persist;
}

function fakeStats(o: { stats: { snapshot(): StatsSnapshot } }, v: number[]): void {
  const [conns, inpkts, outpkts, inbytes, outbytes, cps, inpps, outpps, inbps, outbps] = v;
  const snap: StatsSnapshot = { conns, inpkts, outpkts, inbytes, outbytes, cps, inpps, outpps, inbps, outbps };
  o.stats.snapshot = () => snap;
}

/** The fixture table with connection counters (and, with `stats`, statistics and rates). */
export function fixture(withStats = false): TableTarget {
  const t = newTarget();
  for (const c of FIXTURE_COMMANDS) ok(t, ...c.split(' '));
  const web = find(t, 'TCP  10.0.0.1:80');
  dest(web, '10.0.0.1').local = true;
  conns(dest(web, '192.168.10.11'), 1234, 56789);
  conns(dest(web, '192.168.10.12'), 7, 0);
  conns(dest(web, '192.168.10.13'), 2147483647, 4294967295);
  conns(dest(web, '10.0.0.1'), 3, 4);
  const dns = find(t, 'UDP  10.0.0.1:53');
  conns(dest(dns, '192.168.10.21'), 0, 812, 97);
  const v6 = find(t, 'TCP  [2001:db8::1]:443');
  conns(dest(v6, '2001:db8::10'), 12, 3);
  const fw7 = find(t, 'FWM  7 IPv6');
  conns(dest(fw7, '2001:db8::31'), 5, 6, 7);
  if (withStats) {
    for (const s of t.table.list()) {
      fakeStats(s, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
      for (const d of s.dests) fakeStats(d, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    }
    fakeStats(
      web,
      [99999999, 100000000, 999999999, 1000000000, 123456789012, 1234, 99999999, 123456789, 99999999999, 100000000000],
    );
    fakeStats(dest(web, '192.168.10.11'), [12, 34, 56, 7890, 12345, 1, 2, 3, 4, 5]);
    fakeStats(
      dest(web, '192.168.10.13'),
      [99999999999999, 100000000000000, 1e15, 5e8, 2e9, 123456789, 12, 13, 999999999, 1e9],
    );
    fakeStats(v6, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    fakeStats(dest(v6, '2001:db8::10'), [100, 200, 300, 400000000, 500000000, 1, 2, 3, 400000000, 500000000]);
    fakeStats(fw7, [7, 7, 7, 7, 7, 7, 7, 7, 7, 7]);
  }
  return t;
}

/**
 * Connection rows for -L -c: a connection of each kind and templates, a fwmark one for each family with the mark as
 * the virtual address (10000 → 0.0.39.16, 7 → 0:7::), as the engine reports them.
 */
export const FIXTURE_CONNS: ConnRow[] = [
  row('TCP', 4, '203.0.113.5', 40000, '10.0.0.1', 80, '192.168.10.11', 80, 'ESTABLISHED', 899000),
  row('UDP', 4, '198.51.100.7', 5353, '10.0.0.1', 53, '192.168.10.21', 53, 'UDP', 299500),
  row('TCP', 4, '203.0.113.0', 0, '10.0.0.1', 80, '192.168.10.13', 80, 'NONE', 360000, true),
  row('IP', 4, '203.0.113.0', 0, '0.0.39.16', 0, '192.168.10.31', 0, 'NONE', 6000000, true, 10000),
  row('TCP', 6, '2001:db8:ffff::1234', 50000, '2001:db8::1', 443, '2001:db8::10', 8443, 'SYN_RECV', 30999),
  row('IP', 6, '2001:db8:ffff::', 0, '0:7::', 0, '2001:db8::31', 0, 'NONE', 0, true, 7),
  row('TCP', 4, '203.0.113.9', 1, '10.0.0.1', 80, '192.168.10.12', 8080, 'FIN_WAIT', -5),
];

function row(
  protocol: string,
  family: 4 | 6,
  caddr: string,
  cport: number,
  vaddr: string,
  vport: number,
  daddr: string,
  dport: number,
  state: string,
  expiresMs: number,
  template = false,
  fwmark = 0,
): ConnRow {
  return { protocol, family, caddr, cport, vaddr, vport, daddr, dport, state, expiresMs, template, fwmark };
}
