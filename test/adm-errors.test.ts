/**
 * Bad arguments and failed operations: ipvsadm's messages and exit codes (2 from fail(), 255 for popt errors, "Try
 * ... -h" and failed kernel operations, 1 for a listing that cannot be made).
 */
import test from 'ava';
import { runAdm } from '../src/l4/adm/run.js';
import { newTarget, ok } from './adm-fixture.js';

function setup() {
  const t = newTarget();
  ok(t, '-A', '-t', '10.0.0.1:80', '-s', 'rr');
  ok(t, '-a', '-t', '10.0.0.1:80', '-r', '10.0.1.1', '-m');
  return t;
}

const TRY = "Try `ipvsadm -h' or 'ipvsadm --help' for more information.\n";

const CASES: [string, number, string][] = [
  // popt and the command word
  ['--bogus', 255, TRY],
  ['-q', 255, TRY],
  ['', 255, TRY],
  ['-n -L', 255, TRY],
  ['10.0.0.1', 255, TRY],
  ['-L --bogus', 255, '--bogus: unknown option\n'],
  ['-Lq', 255, '-Lq: unknown option\n'],
  ['-A -t', 255, '-t: missing argument\n'],
  ['-L --numeric=yes', 255, '--numeric=yes: option does not take an argument\n'],
  ['-L -A', 2, "invalid option `-A'\n"],
  ['-L -h', 2, "invalid option `-h'\n"],
  ['-L -n extra', 2, 'unexpected argument extra\n'],
  ['-L -n -n', 2, "multiple 'numeric' options specified\n"],
  // the command / option table
  ['-A', 2, "You need to supply the 'service-address' option for the 'add-service' command\n"],
  ['-a -t 10.0.0.1:80', 2, "You need to supply the 'real-server' option for the 'add-server' command\n"],
  ['-A -t 10.0.0.1:81 -w 3', 2, "Illegal 'weight' option with the 'add-service' command\n"],
  ['-D -t 10.0.0.1:80 -s rr', 2, "Illegal 'scheduler' option with the 'delete-service' command\n"],
  [
    '-L -c -t 10.0.0.1:80',
    2,
    "The option 'service-address' conflicts with the 'connection' option in the 'list' command\n",
  ],
  ['-L -c --stats', 2, 'options conflicts in the list command\n'],
  ['-S --stats', 2, "Illegal 'stats' option with the 'save' command\n"],
  // values
  ['-A -t 10.0.0.1', 2, 'Zero port specified for non-persistent service\n'],
  ['-A -t 80', 2, 'illegal virtual server address[:port] specified\n'],
  ['-A -t 10.0.0.256:80', 2, 'illegal virtual server address[:port] specified\n'],
  ['-A -t 10.0.0.1:65536', 2, 'illegal virtual server address[:port] specified\n'],
  ['-A -t 10.0.0.1:nosuchport', 2, 'illegal virtual server address[:port] specified\n'],
  ['-A -t [2001:db8::1]', 2, 'illegal virtual server address[:port] specified\n'],
  ['-a -t 10.0.0.1:80 -r 10.0.1.300', 2, 'illegal real server address[:port] specified\n'],
  ['-a -t 10.0.0.1:80 -r 10.0.1.2 -w 65536', 2, 'illegal weight specified\n'],
  ['-a -t 10.0.0.1:80 -r 10.0.1.2 -w -1', 2, 'illegal weight specified\n'],
  ['-a -t 10.0.0.1:80 -r 10.0.1.2 -w 1x', 2, 'illegal weight specified\n'],
  ['-a -t 10.0.0.1:80 -r 10.0.1.2 -x many', 2, 'illegal u_threshold specified\n'],
  ['-a -t 10.0.0.1:80 -r 10.0.1.2 -y -2', 2, 'illegal l_threshold specified\n'],
  ['-a -t 10.0.0.1:80 -r 2001:db8::9 -m', 2, 'Different address family is allowed only for tunneling servers\n'],
  ['-a -t 10.0.0.1:80 -r 10.0.1.2 -m --tun-type gue', 2, 'Tunnel options conflict with forward method\n'],
  [
    '-a -t 10.0.0.1:80 -r 10.0.1.2 -i --tun-type gue',
    2,
    "You need to supply the 'tun-port' option for the 'gue' tunnel type\n",
  ],
  ['-a -t 10.0.0.1:80 -r 10.0.1.2 -i --tun-port 5', 2, "Illegal 'tun-port' option with the 'ipip' tunnel type\n"],
  ['-a -t 10.0.0.1:80 -r 10.0.1.2 -i --tun-type vxlan', 2, 'illegal tunnel type specified\n'],
  ['-A -t 10.0.0.1:81 -p 0', 2, "invalid timeout value `0' specified\n"],
  ['-A -t 10.0.0.1:81 -p 2678401', 2, "invalid timeout value `2678401' specified\n"],
  ['-A -t 10.0.0.1:81 -M 255.255.255.0.0', 2, 'illegal virtual server persistent mask specified\n'],
  ['-A -t [2001:db8::1]:81 -p -M 129', 2, 'illegal ipv6 netmask specified\n'],
  ['-A -f 0', 2, "invalid fwmark value `0' specified\n"],
  ['-A -f 4294967296', 2, "invalid fwmark value `4294967296' specified\n"],
  ['-A -6 -f 1', 2, '-6 used before -f\n\n'],
  ['-A -t 10.0.0.1:81 -o', 2, 'One-Packet Scheduling is only for UDP virtual services\n'],
  ['-A -t 10.0.0.1:81 -b sh-port', 2, "incompatible scheduler flag `sh-port'\n"],
  ['-A -t 10.0.0.1:81 -s sh -b sh-pot', 2, "invalid scheduler flag `sh-pot'\n"],
  ['--set 1 2', 2, '--set option requires 3 timeout values\n'],
  ['--set 1 2 x', 2, "invalid timeout value `x' specified\n"],
  ['--start-daemon primary', 2, 'illegal start-daemon parameter specified\n'],
  ['--stop-daemon primary', 2, 'illegal start_daemon specified\n'],
  ['--start-daemon master --mcast-group 10.0.0.1', 2, "invalid IPv4 mcast-group `10.0.0.1'\n"],
  ['--start-daemon master --mcast-group 224.0.0.081', 2, "invalid IPv4 mcast-group `224.0.0.081'\n"],
  ['--start-daemon master --mcast-group 2001:db8::1', 2, "invalid IPv6 mcast-group `2001:db8::1'\n"],
  ['--start-daemon master --mcast-group ff02::zz', 2, "invalid IPv6 mcast-group `ff02::zz'\n"],
  ['--start-daemon master --mcast-port 0', 2, 'illegal mcast-port specified\n'],
  ['--start-daemon master --mcast-ttl 256', 2, 'illegal mcast-ttl specified\n'],
  ['--start-daemon master --sync-maxlen 65508', 2, 'illegal sync-maxlen specified\n'],
  ['--start-daemon master --mcast-ttl 2 --mcast-ttl 3', 2, "multiple 'mcast-ttl' options specified\n"],
  ['--stop-daemon master --mcast-port 9000', 2, "Illegal 'mcast-port' option with the 'stop-daemon' command\n"],
  // operations (the kernel's answers through ipvs_strerror)
  ['-A -t 10.0.0.1:80', 255, 'Service already exists\n'],
  ['-A -t 10.0.0.1:81 -s nosuch', 255, 'Scheduler or persistence engine not found\n'],
  ['-A -t 10.0.0.1:81 --pe sip', 255, 'Scheduler or persistence engine not found\n'],
  ['-E -t 10.0.0.1:81', 255, 'No such service\n'],
  ['-D -t 10.0.0.1:81', 255, 'No such service\n'],
  ['-Z -t 10.0.0.1:81', 255, 'No such service\n'],
  ['-a -t 10.0.0.1:81 -r 10.0.1.2', 255, 'Service not defined\n'],
  ['-a -t 10.0.0.1:80 -r 10.0.1.1 -m', 255, 'Destination already exists\n'],
  ['-e -t 10.0.0.1:80 -r 10.0.1.2 -m', 255, 'No such destination\n'],
  ['-d -t 10.0.0.1:80 -r 10.0.1.1:81', 255, 'No such destination\n'],
  ['-d -u 10.0.0.1:80 -r 10.0.1.1', 255, 'Service not defined\n'],
  ['-a -t 10.0.0.1:80 -r 10.0.1.2 -x 5 -y 6', 255, 'Numerical result out of range\n'],
  ['-a -t 10.0.0.1:80 -r 10.0.1.2 -y 6', 255, 'Numerical result out of range\n'],
  ['-L -t 10.0.0.1:81', 1, 'No such service\n'],
  // offline (--rules): the sync daemons live in the director
  [
    '--start-daemon master',
    255,
    'Connection sync daemon needs a running director (tierlb adm --socket PATH --start-daemon ...)\n',
  ],
  [
    '--stop-daemon backup',
    255,
    'Connection sync daemon needs a running director (tierlb adm --socket PATH --stop-daemon ...)\n',
  ],
];

for (const [args, code, stderr] of CASES) {
  test(`ipvsadm ${args || '(empty word)'} → ${code}`, (t) => {
    const tg = setup();
    const before = ok(tg, '-S').stdout;
    t.deepEqual(runAdm(args === '' ? [''] : args.split(' '), tg), { code, stdout: '', stderr });
    t.is(ok(tg, '-S').stdout, before, 'the table is unchanged');
  });
}
