/**
 * VRRPv3 over IPv6 (RFC 5798) on one bridge: two tierlb routers (a, b) elect a master for an IPv6 VIP, a client (c)
 * pings it; when the master stops the VIP moves to the backup within 3 × advert_int + skew (+ the margin the other
 * VRRP netns tests allow for process start and polling) and the client's neighbour entry follows the unsolicited
 * Neighbor Advertisement. On the wire: adverts go to ff02::12 from the link-local address with hop limit 255.
 * Interop: keepalived master ↔ tierlb backup over IPv6.
 */
import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { sh } from '../src/lab/netns.js';
import { exited, type Lab, labSet, MARGIN_MS, runVrrpMain, waitFor } from './netns-vrrp-lab.js';

const VIP6 = '2001:db8:88::100';
const VIP_LL = 'fe80::1:100';
const ADDR = { a: '2001:db8:88::2', b: '2001:db8:88::3', c: '2001:db8:88::10' };
const ADVERT = 0.5;

/** the same shape as the IPv4 lab: routers a and b, client c on one bridge */
type Lab6 = Lab;

function lab6(t: ExecutionContext): Lab6 {
  const { set, dir } = labSet(t);
  const br = set.add('br');
  sh('ip', ['-n', br, 'link', 'add', 'br0', 'type', 'bridge']);
  sh('ip', ['-n', br, 'link', 'set', 'br0', 'up']);
  const ns: Record<string, string> = {};
  for (const n of ['a', 'b', 'c'] as const) {
    ns[n] = set.add(n);
    // no DAD on the link: the link-local source is usable at once (the VIPs are added nodad by the routers)
    set.exec(ns[n], 'sysctl', ['-q', '-w', 'net.ipv6.conf.all.accept_dad=0']);
    set.exec(ns[n], 'sysctl', ['-q', '-w', 'net.ipv6.conf.default.accept_dad=0']);
    set.veth({ ns: ns[n], name: 'eth0' }, { ns: br, name: `p${n}` });
    sh('ip', ['-n', br, 'link', 'set', `p${n}`, 'master', 'br0']);
    sh('ip', ['-n', br, 'link', 'set', `p${n}`, 'up']);
    sh('ip', ['-n', ns[n], '-6', 'addr', 'add', `${ADDR[n]}/64`, 'dev', 'eth0', 'nodad']);
    sh('ip', ['-n', ns[n], 'link', 'set', 'eth0', 'up']);
  }
  const mac = (n: string) => JSON.parse(sh('ip', ['-n', n, '-j', 'link', 'show', 'eth0']))[0].address as string;
  return { set, dir, a: ns.a, b: ns.b, c: ns.c, mac: { a: mac(ns.a), b: mac(ns.b) } };
}

function hasVip6(ns: string): boolean {
  const out = sh('ip', ['-n', ns, '-6', '-o', 'addr', 'show', 'dev', 'eth0']);
  return out.includes(` ${VIP6}/64`) && out.includes(` ${VIP_LL}/128`);
}

function clientNeigh6(l: Lab6): string | undefined {
  const j = JSON.parse(sh('ip', ['-n', l.c, '-6', '-j', 'neigh', 'show', VIP6, 'dev', 'eth0']) || '[]') as {
    lladdr?: string;
  }[];
  return j[0]?.lladdr;
}

/** the interface's own link-local address (the VRRP source) */
function linkLocal(ns: string): string {
  const j = JSON.parse(sh('ip', ['-n', ns, '-6', '-j', 'addr', 'show', 'dev', 'eth0'])) as {
    addr_info: { local: string; scope: string }[];
  }[];
  return j[0].addr_info.find((a) => a.scope === 'link' && a.local !== VIP_LL)?.local ?? '';
}

const ping6 = (l: Lab6) =>
  l.set.exec(l.c, 'ping', ['-6', '-c', '1', '-W', '1', VIP6], { allowFail: true }).includes('1 received');

function startTierlb6(l: Lab6, ns: string, prio: number): { proc: ChildProcess; states: string[]; out: () => string } {
  const conf = join(l.dir, `tierlb-${ns}.yaml`);
  writeFileSync(
    conf,
    `vrrp:
  instances:
    - name: VI_6
      interface: eth0
      virtual_router_id: 61
      priority: ${prio}
      advert_int: ${ADVERT}
      virtual_ipaddress: [${VIP_LL}, ${VIP6}/64]
      garp_master_delay: 0
      garp_master_repeat: 2
`,
  );
  return runVrrpMain(l.set, ns, conf);
}

/** RFC 5798 8.1: the backup of priority `prio` waits 3 × Master_Adver_Interval + Skew_Time (v3 skew) */
const bound = (prio: number) => 3 * ADVERT * 1000 + ((256 - prio) * ADVERT * 1000) / 256 + MARGIN_MS;

test.serial(
  'two tierlb routers: IPv6 VIP on the master, client pings it; master stops → backup within 3×advert+skew, the client neighbour follows the NA',
  async (t) => {
    const l = lab6(t);
    // what the routers send, seen from the client
    const cap = l.set.spawn(l.c, 'tcpdump', ['-l', '-n', '-vv', '-i', 'eth0', 'ip6 proto 112 or icmp6']);
    let wire = '';
    cap.stdout?.on('data', (d) => (wire += d));
    await new Promise((r) => setTimeout(r, 300));

    const llA = linkLocal(l.a);
    t.regex(llA, /^fe80::/);
    const a = startTierlb6(l, l.a, 150);
    t.truthy(await waitFor(() => hasVip6(l.a), 8000), a.out());
    const b = startTierlb6(l, l.b, 100);
    t.truthy(await waitFor(() => b.states.includes('BACKUP'), 8000), b.out());
    await new Promise((r) => setTimeout(r, 1500));
    t.true(hasVip6(l.a));
    t.false(hasVip6(l.b), 'the backup holds no VIP');
    t.true(ping6(l), 'the client reaches the VIP on a');
    t.is(clientNeigh6(l), l.mac.a);

    a.proc.kill('SIGTERM');
    const t0 = performance.now();
    t.truthy(await waitFor(() => hasVip6(l.b), bound(100), 10), `${a.out()}\n${b.out()}`);
    const took = performance.now() - t0;
    t.log(`master stopped → VIP on the backup in ${Math.round(took)} ms (bound ${Math.round(bound(100))} ms)`);
    t.true(took <= bound(100));
    t.true(await exited(a.proc, 5000));
    t.false(hasVip6(l.a), 'the stopped master released the VIP');
    // no traffic from the client in between: only the unsolicited NA can have moved its entry
    t.truthy(await waitFor(() => clientNeigh6(l) === l.mac.b, 2000), `neigh: ${clientNeigh6(l)}\n${b.out()}`);
    t.true(ping6(l), 'the client reaches the VIP on b');

    cap.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 200));
    // tcpdump -vv: "(hlim 255, next-header VRRP (112) ...) fe80::… > ff02::12: VRRPv3, Advertisement, vrid 61, prio 150"
    t.regex(
      wire,
      new RegExp(
        `hlim 255, next-header VRRP \\(112\\)[^\\n]*\\)\\s+${llA} > ff02::12: VRRPv3, Advertisement, vrid 61, prio 150`,
      ),
    );
    t.regex(wire, new RegExp(`${llA} > ff02::12: VRRPv3, Advertisement, vrid 61, prio 0`), 'priority 0 on stop');
    t.regex(
      wire,
      new RegExp(
        `${VIP6.replace(/:/g, ':')} > ff02::1: \\[icmp6 sum ok\\] ICMP6, neighbor advertisement[^\\n]*tgt is ${VIP6}, Flags \\[override\\]`,
      ),
    );
    t.notRegex(wire, /bad cksum|sum bad/i);
    b.proc.kill('SIGTERM');
    t.true(await exited(b.proc, 5000));
  },
);

function startKeepalived6(l: Lab6, prio: number, tag: string): { proc: ChildProcess; out: () => string } {
  const conf = join(l.dir, `${tag}.conf`);
  writeFileSync(
    conf,
    `global_defs {
  router_id ${tag}_${l.set.prefix}
}
vrrp_instance VI_6 {
  state BACKUP
  interface eth0
  virtual_router_id 61
  priority ${prio}
  advert_int ${ADVERT}
  virtual_ipaddress {
    ${VIP_LL}
    ${VIP6}/64
  }
}
`,
  );
  const proc = l.set.spawn(l.b, 'keepalived', [
    ...['-n', '-l', '-D', '-P', '-f', conf],
    ...['-p', join(l.dir, `${tag}.pid`), '-r', join(l.dir, `${tag}-vrrp.pid`)],
  ]);
  let out = '';
  proc.stdout?.on('data', (d) => (out += d));
  proc.stderr?.on('data', (d) => (out += d));
  return { proc, out: () => out };
}

test.serial('the master loses its link: the backup takes over on the master-down timer (3×advert+skew)', async (t) => {
  const l = lab6(t);
  const a = startTierlb6(l, l.a, 150);
  t.truthy(await waitFor(() => hasVip6(l.a), 8000), a.out());
  const b = startTierlb6(l, l.b, 100);
  t.truthy(await waitFor(() => b.states.includes('BACKUP'), 8000), b.out());
  await new Promise((r) => setTimeout(r, 1500));
  t.true(ping6(l));
  t.is(clientNeigh6(l), l.mac.a);
  // no priority 0 this time: a's adverts just stop
  sh('ip', ['-n', l.a, 'link', 'set', 'eth0', 'down']);
  const t0 = performance.now();
  t.truthy(await waitFor(() => hasVip6(l.b), bound(100), 10), `${a.out()}\n${b.out()}`);
  const took = performance.now() - t0;
  t.log(`link down → VIP on the backup in ${Math.round(took)} ms (3×advert+skew = ${bound(100) - MARGIN_MS} ms)`);
  // it was the timer, not a release: at least 3 × advert_int minus one advert already under way
  t.true(took >= 2 * ADVERT * 1000, `took ${took} ms`);
  t.truthy(await waitFor(() => clientNeigh6(l) === l.mac.b, 2000), `neigh: ${clientNeigh6(l)}`);
  t.true(ping6(l));
  for (const p of [a.proc, b.proc]) {
    p.kill('SIGTERM');
    t.true(await exited(p, 5000));
  }
});

/** Python: send one VRRPv3 IPv6 advert (vrid 61, priority 200, our two VIPs) from `src` with the given hop limit. */
const INJECT = `
import socket, struct, sys
src, hops = sys.argv[1], int(sys.argv[2])
def cs(b):
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
a = [socket.inet_pton(socket.AF_INET6, x) for x in ('${VIP_LL}', '${VIP6}')]
v = bytes([0x31, 61, 200, 2]) + struct.pack('!HH', 50, 0) + b''.join(a)
dst = socket.inet_pton(socket.AF_INET6, 'ff02::12')
ph = socket.inet_pton(socket.AF_INET6, src) + dst + struct.pack('!I', len(v)) + bytes([0, 0, 0, 112])
v = v[:6] + struct.pack('!H', cs(ph + v)) + v[8:]
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, 112)
idx = socket.if_nametoindex('eth0')
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, hops)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, idx)
for _ in range(3): s.sendto(v, ('ff02::12', 0, 0, idx))
`;

test.serial(
  'an advert with hop limit 64 is dropped (RFC 5798 7.1), the same with 255 makes the master step down',
  async (t) => {
    const l = lab6(t);
    const a = startTierlb6(l, l.a, 150);
    t.truthy(await waitFor(() => hasVip6(l.a), 8000), a.out());
    await waitFor(() => a.states.at(-1) === 'MASTER', 2000);
    const src = linkLocal(l.c);
    l.set.exec(l.c, 'python3', ['-c', INJECT, src, '64']);
    await new Promise((r) => setTimeout(r, 1000));
    t.true(hasVip6(l.a), `a higher-priority advert with hop limit 64 was obeyed:\n${a.out()}`);
    t.is(a.states.at(-1), 'MASTER');
    l.set.exec(l.c, 'python3', ['-c', INJECT, src, '255']);
    t.truthy(await waitFor(() => !hasVip6(l.a), 2000), `the valid advert (hop limit 255) was not obeyed:\n${a.out()}`);
    t.truthy(await waitFor(() => a.states.at(-1) === 'BACKUP', 2000), a.out());
    a.proc.kill('SIGTERM');
    t.true(await exited(a.proc, 5000));
  },
);

const haveKeepalived = sh('sh', ['-c', 'command -v keepalived || true']).trim() !== '';

test.serial(
  'interop: keepalived master, tierlb backup over IPv6; keepalived stops → tierlb takes the VIP',
  async (t) => {
    if (!haveKeepalived) return t.fail('keepalived is not installed; the interop test needs it');
    const l = lab6(t);
    const k1 = startKeepalived6(l, 200, 'ka1');
    const ka = k1.proc;
    const kaOut = k1.out;
    t.truthy(await waitFor(() => hasVip6(l.b), 10000), kaOut());
    const a = startTierlb6(l, l.a, 100);
    t.truthy(await waitFor(() => a.states.includes('BACKUP'), 8000), a.out());
    // a stays backup for several master-down intervals: it hears and accepts keepalived's IPv6 adverts
    await new Promise((r) => setTimeout(r, 3000));
    t.false(hasVip6(l.a), `tierlb took the VIP from a live keepalived master:\n${a.out()}`);
    t.deepEqual(a.states, ['BACKUP']);
    t.true(ping6(l));
    t.is(clientNeigh6(l), l.mac.b);

    ka.kill('SIGTERM');
    const t0 = performance.now();
    t.truthy(await waitFor(() => hasVip6(l.a), bound(100), 10), `${kaOut()}\n${a.out()}`);
    t.log(`keepalived stopped → VIP on tierlb in ${Math.round(performance.now() - t0)} ms`);
    t.true(await exited(ka, 5000));
    t.truthy(await waitFor(() => clientNeigh6(l) === l.mac.a, 2000), `neigh: ${clientNeigh6(l)}`);
    t.true(ping6(l));
    // keepalived accepts tierlb's IPv6 adverts too: started again with a lower priority it stays backup for several
    // master-down intervals (it would take the VIP after 3 × 0.5 s + skew if it dropped them, e.g. on the checksum)
    const k2 = startKeepalived6(l, 50, 'ka2');
    t.truthy(await waitFor(() => /Entering BACKUP STATE/.test(k2.out()), 8000), k2.out());
    await new Promise((r) => setTimeout(r, 3000));
    t.false(hasVip6(l.b), `keepalived took the VIP from the tierlb master:\n${k2.out()}`);
    t.notRegex(k2.out(), /Entering MASTER STATE|checksum/i);
    t.true(hasVip6(l.a));
    k2.proc.kill('SIGTERM');
    t.true(await exited(k2.proc, 5000));
    a.proc.kill('SIGTERM');
    t.true(await exited(a.proc, 5000));
  },
);
