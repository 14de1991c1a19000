/** What each ipvsadm command does to the table, -S | -R round trips, and -R's line-by-line semantics. */
import test from 'ava';
import { runAdm } from '../src/l4/adm/run.js';
import { fixture, newTarget, ok } from './adm-fixture.js';

const list = (t: ReturnType<typeof newTarget>, ...extra: string[]) => ok(t, '-L', '-n', ...extra).stdout;
const HEAD =
  'IP Virtual Server version 1.2.1 (size=4096)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n';
const row = (name: string, fwd: string, w: number) =>
  `  -> ${name.padEnd(28)} ${fwd.padEnd(7)} ${String(w).padEnd(6)} 0          0         \n`;

test('-S | -R rebuilds the same table (listing and save identical)', (t) => {
  const a = fixture();
  const saved = ok(a, '-S', '-n').stdout;
  const b = newTarget();
  const r = runAdm(['-R'], b, { stdin: saved });
  t.deepEqual(r, { code: 0, stdout: '', stderr: '' });
  t.is(ok(b, '-S', '-n').stdout, saved);
  // the listing matches too, apart from the hand-set counters and the Local flag (data path state)
  const c = fixture();
  for (const s of c.table.list())
    for (const d of s.dests) {
      d.activeConns = d.inactConns = d.persistConns = 0;
      d.local = false;
    }
  t.is(list(b), list(c));
});

test('-R accepts "ipvsadm" words, blank lines and comments; a failed line does not stop it', (t) => {
  const tg = newTarget();
  const r = runAdm(['--restore'], tg, {
    stdin: [
      '# rules',
      'ipvsadm -A -t 10.0.0.1:80 -s rr',
      '',
      '-a -t 10.0.0.1:80 -r 10.0.1.1 -m   # first',
      '-a -t 10.0.0.9:80 -r 10.0.1.2 -m',
      '-a -t 10.0.0.1:80 -r 10.0.1.3:81 -m -w 4',
    ].join('\n'),
  });
  t.is(r.stderr, 'Service not defined\n');
  t.is(r.code, 0); // the last line succeeded: ipvsadm returns the last line's result
  t.is(list(tg), `${HEAD}TCP  10.0.0.1:80 rr\n${row('10.0.1.1:80', 'Masq', 1)}${row('10.0.1.3:81', 'Masq', 4)}`);
});

test('-R stops at a line ipvsadm fail()s on, keeping the lines before it', (t) => {
  const tg = newTarget();
  const r = runAdm(['-R'], tg, {
    stdin: '-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.1.1 -w x\n-A -t 10.0.0.2:80 -s rr\n',
  });
  t.deepEqual(r, { code: 2, stdout: '', stderr: 'illegal weight specified\n' });
  t.is(list(tg), `${HEAD}TCP  10.0.0.1:80 rr\n`);
  const nested = runAdm(['-R'], newTarget(), { stdin: '-R\n' });
  t.deepEqual(nested, {
    code: 255,
    stdout: '',
    stderr: "Try `ipvsadm -h' or 'ipvsadm --help' for more information.\n",
  });
  t.is(runAdm(['-R'], newTarget(), { stdin: '-A -t 10.0.0.9:80 -s nope\n' }).code, 255);
});

test('-a port rules: masq inherits the service port, DR and tunnel are forced to it, fwmark keeps 0', (t) => {
  const tg = newTarget();
  ok(tg, '-A', '-t', '10.0.0.1:80', '-s', 'rr');
  ok(tg, '-a', '-t', '10.0.0.1:80', '-r', '10.0.1.1', '-m');
  ok(tg, '-a', '-t', '10.0.0.1:80', '-r', '10.0.1.2:8080', '-m');
  ok(tg, '-a', '-t', '10.0.0.1:80', '-r', '10.0.1.3:8080'); // default -g: port forced to 80
  ok(tg, '-a', '-t', '10.0.0.1:80', '-r', '10.0.1.4:8080', '-i');
  ok(tg, '-A', '-f', '5', '-s', 'rr');
  ok(tg, '-a', '-f', '5', '-r', '10.0.2.1', '-m');
  ok(tg, '-a', '-f', '5', '-r', '10.0.2.2:8080', '-g');
  t.is(
    list(tg),
    HEAD +
      'TCP  10.0.0.1:80 rr\n' +
      row('10.0.1.1:80', 'Masq', 1) +
      row('10.0.1.2:8080', 'Masq', 1) +
      row('10.0.1.3:80', 'Route', 1) +
      row('10.0.1.4:80', 'Tunnel', 1) +
      'FWM  5 rr\n' +
      row('10.0.2.1:0', 'Masq', 1) +
      row('10.0.2.2:8080', 'Route', 1),
  );
});

test('-E replaces the service settings (scheduler back to wlc, persistence off when -p is left out)', (t) => {
  const tg = newTarget();
  ok(tg, '-A', '-t', '10.0.0.1:80', '-s', 'rr', '-p', '100', '-M', '255.255.0.0');
  t.is(list(tg), `${HEAD}TCP  10.0.0.1:80 rr persistent 100 mask 255.255.0.0\n`);
  ok(tg, '-E', '-t', '10.0.0.1:80', '-p');
  t.is(list(tg), `${HEAD}TCP  10.0.0.1:80 wlc persistent 360\n`);
  ok(tg, '-E', '-t', '10.0.0.1:80', '-s', 'rr');
  t.is(list(tg), `${HEAD}TCP  10.0.0.1:80 rr\n`);
});

test('-e changes weight, method and thresholds; -d and -D remove; -C clears', (t) => {
  const tg = newTarget();
  ok(tg, '-A', '-u', '10.0.0.1:53', '-s', 'rr');
  ok(tg, '-a', '-u', '10.0.0.1:53', '-r', '10.0.1.1:5353', '-m', '-w', '2');
  ok(tg, '-a', '-u', '10.0.0.1:53', '-r', '10.0.1.2', '-m');
  ok(tg, '-e', '-u', '10.0.0.1:53', '-r', '10.0.1.1:5353', '-m', '-w', '7', '-x', '10', '-y', '5');
  t.is(
    ok(tg, '-L', '-n', '--thresholds').stdout.split('\n')[4],
    '  -> 10.0.1.1:5353                10         5          0          0         ',
  );
  t.is(`${list(tg).split('\n')[4]}\n`, row('10.0.1.1:5353', 'Masq', 7));
  ok(tg, '-d', '-u', '10.0.0.1:53', '-r', '10.0.1.2');
  t.is(list(tg), `${HEAD}UDP  10.0.0.1:53 rr\n${row('10.0.1.1:5353', 'Masq', 7)}`);
  ok(tg, '-A', '-t', '10.0.0.2:80', '-s', 'rr');
  ok(tg, '-D', '-u', '10.0.0.1:53');
  t.is(list(tg), `${HEAD}TCP  10.0.0.2:80 rr\n`);
  ok(tg, '-C');
  t.is(list(tg), HEAD);
});

test('-Z zeroes one service or all of them', (t) => {
  const tg = newTarget();
  ok(tg, '-A', '-t', '10.0.0.1:80', '-s', 'rr');
  ok(tg, '-A', '-t', '10.0.0.2:80', '-s', 'rr');
  ok(tg, '-a', '-t', '10.0.0.2:80', '-r', '10.0.1.1');
  const [s1, s2] = tg.table.list();
  s1.stats.conns = 5;
  s2.stats.conns = 6;
  s2.dests[0].stats.inpkts = 9;
  ok(tg, '-Z', '-t', '10.0.0.1:80');
  t.deepEqual([s1.stats.conns, s2.stats.conns], [0, 6]);
  ok(tg, '--zero');
  t.deepEqual([s2.stats.conns, s2.dests[0].stats.inpkts], [0, 0]);
});

test('--set changes the timeouts, 0 keeps a value', (t) => {
  const tg = newTarget();
  ok(tg, '--set', '600', '0', '30');
  t.is(ok(tg, '-L', '--timeout').stdout, 'Timeout (tcp tcpfin udp): 600 120 30\n');
});

test('--set refuses what ip_vs_set_timeout refuses (over INT_MAX / HZ), on a rules file as on the engine', (t) => {
  const tg = newTarget();
  // 2147484 s passes ipvsadm's own parser (at most 31 days) but not the kernel
  const r = runAdm(['--set', '2147484', '0', '0'], tg);
  t.is(r.code, 255);
  t.regex(r.stderr, /^Invalid operation\./); // ipvs_strerror's text for EINVAL
  t.is(ok(tg, '-L', '--timeout').stdout, 'Timeout (tcp tcpfin udp): 900 120 300\n');
  ok(tg, '--set', '2147483', '0', '0');
  t.is(ok(tg, '-L', '--timeout').stdout, 'Timeout (tcp tcpfin udp): 2147483 120 300\n');
});

test('option forms: clusters, --long=value, values glued to short options, -p without a value', (t) => {
  const tg = newTarget();
  ok(tg, '-At', '10.0.0.1:80', '-srr', '--persistent', '--netmask=255.255.255.0');
  ok(tg, '--add-server', '--tcp-service=10.0.0.1:80', '--real-server', '10.0.1.1', '--masquerading', '--weight=3');
  ok(tg, '-a', '-t', '10.0.0.1:80', '-r', '10.0.1.2', '-mw', '4', '--u-threshold', '9', '--l-threshold=2');
  ok(tg, '-a', '-t', '10.0.0.1:80', '-r', '10.0.1.3', '--ipip', '-w=0');
  t.is(
    list(tg),
    HEAD +
      'TCP  10.0.0.1:80 rr persistent 360 mask 255.255.255.0\n' +
      row('10.0.1.1:80', 'Masq', 3) +
      row('10.0.1.2:80', 'Masq', 4) +
      row('10.0.1.3:80', 'Tunnel', 0),
  );
});

test('addresses as inet_aton reads them, port names, IPv6 forms', (t) => {
  const tg = newTarget();
  ok(tg, '-A', '-t', '10.1:http', '-s', 'rr'); // 10.0.0.1:80
  ok(tg, '-A', '-u', '0x0a000002:domain', '-s', 'rr');
  ok(tg, '-A', '-t', '[2001:DB8:0:0::1]:https', '-s', 'rr');
  ok(tg, '-A', '-t', '2001:db8::2', '-s', 'rr', '-p'); // bare IPv6: no port, so it must be persistent
  t.is(
    list(tg),
    `${HEAD}TCP  10.0.0.1:80 rr\nUDP  10.0.0.2:53 rr\nTCP  [2001:db8::1]:443 rr\nTCP  [2001:db8::2]:0 rr persistent 360\n`,
  );
});

test('-6 makes a fwmark service IPv6 with its /128 default mask; IPv6 -M is a prefix length', (t) => {
  const tg = newTarget();
  ok(tg, '-A', '-f', '1', '-6', '-s', 'rr', '-p', '60', '-M', '48');
  ok(tg, '-A', '-f', '1', '-s', 'rr');
  ok(tg, '-a', '-f', '1', '-6', '-r', '[2001:db8::5]:80', '-m');
  t.is(list(tg), `${HEAD}FWM  1 rr\nFWM  1 IPv6 rr persistent 60 mask 48\n${row('[2001:db8::5]:80', 'Masq', 1)}`);
  t.is(ok(tg, '-S').stdout, '-A -f 1 -s rr\n-A -f 1 -6 -s rr -p 60 -M 48\n-a -f 1 -6 -r [2001:db8::5]:80 -m -w 1\n');
});

test('-h and -v print to stdout and exit 0', (t) => {
  const h = runAdm(['-h'], newTarget());
  t.is(h.code, 0);
  t.true(h.stdout.startsWith('ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\nUsage:\n  ipvsadm -A|E'));
  t.true(h.stdout.endsWith('  --mcast-ttl ttl                     Multicast TTL (default=1)\n'));
  t.deepEqual(runAdm(['--version'], newTarget()), {
    code: 0,
    stdout: 'ipvsadm v1.31 2019/12/24 (compiled with popt and IPVS v1.2.1)\n',
    stderr: '',
  });
  t.true(runAdm(['-h'], newTarget(), { prog: 'tierlb adm' }).stdout.includes('  tierlb adm -C\n'));
});
