/**
 * `tierlb doctor [--host HOST]… [--prefix P] [--config FILE] [--listen SECONDS]`: the troubleshooting checklist of
 * source article 002, automated against the running lab (see src/lab/doctor.ts for the checks). Each check prints
 * PASS or FAIL with what was seen and the fix; exit 0 when all pass, 1 otherwise.
 *
 * `tierlb doctor --local --vip VIP [--director IP]… [--port P]… [--nat]`: the real-server checks on the current
 * namespace (this machine as a DR — or with --nat, NAT — real server of VIP).
 */

import { CHAIN } from '../fwmark/plan.js';
import { type DoctorInput, doctorChecks, formatFindings } from '../lab/doctor.js';
import { eachOption } from './args.js';
import { currentLab } from './lab.js';

const USAGE = `usage:
  tierlb doctor [--host HOST]… [--prefix P] [--config FILE] [--state-dir DIR] [--listen SECONDS]
  tierlb doctor --local --vip VIP [--director IP]… [--port PORT]… [--nat] [--if IFNAME]
`;

export async function run(argv: string[]): Promise<number> {
  const only: string[] = [];
  const dirs: string[] = [];
  const ports: number[] = [];
  const o: {
    config?: string;
    prefix?: string;
    stateDir?: string;
    listen?: number;
    local?: boolean;
    vip?: string;
    nat?: boolean;
    ifname: string;
  } = {
    ifname: 'eth0',
  };
  const err = eachOption(argv, (a, val) => {
    if (a === '--host') only.push(val());
    else if (a === '--config' || a === '-c') o.config = val();
    else if (a === '--prefix') o.prefix = val();
    else if (a === '--state-dir') o.stateDir = val();
    else if (a === '--listen') o.listen = Number(val());
    else if (a === '--local') o.local = true;
    else if (a === '--vip') o.vip = val();
    else if (a === '--director') dirs.push(val());
    else if (a === '--port') ports.push(Number(val()));
    else if (a === '--nat') o.nat = true;
    else if (a === '--if') o.ifname = val();
    else if (a === '-h' || a === '--help') return 'help';
    else return `unknown option ${a}`;
    return undefined;
  });
  if (err === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  if (err !== undefined) {
    process.stderr.write(`tierlb doctor: ${err}\n${USAGE}`);
    return 2;
  }
  const { probeHost, probeLab } = await import('../lab/doctor-probe.js');
  let input: DoctorInput;
  if (o.local) {
    if (!o.vip) {
      process.stderr.write(`tierlb doctor --local needs --vip\n${USAGE}`);
      return 2;
    }
    const me = await probeHost('local', 'lb', null, o.ifname);
    input = {
      vip: o.vip,
      frontIf: o.ifname,
      directors: dirs.map((ip, i) => ({ name: `director${i + 1}`, ip })),
      realServers: [
        {
          name: 'local',
          ip: me.addrs.find((a) => a.ifname === o.ifname)?.local ?? '',
          method: o.nat ? 'masq' : 'route',
        },
      ],
      marks: [],
      markChain: CHAIN,
      listenerPorts: ports,
      vrrp: { vrid: 0, expected: false },
      hosts: { local: me },
      reach: [],
      adverts: null,
    };
    if (o.nat) input.hosts.local.role = 'other';
  } else {
    const { plan, state } = await currentLab({
      sub: 'doctor',
      rest: [],
      config: o.config,
      prefix: o.prefix,
      stateDir: o.stateDir,
    });
    if (!state) {
      process.stderr.write(
        `tierlb doctor: no lab '${plan.prefix}' is up (tierlb lab up), or use --local --vip VIP to check this namespace\n`,
      );
      return 1;
    }
    for (const h of only)
      if (!plan.hosts.some((x) => x.name === h)) {
        process.stderr.write(
          `tierlb doctor: no host '${h}' in the lab (${plan.hosts.map((x) => x.name).join(', ')})\n`,
        );
        return 2;
      }
    input = await probeLab(plan, { only: only.length ? only : undefined, listenSeconds: o.listen });
    input.vrrp.expected = state.vipMode === 'vrrp';
  }
  const findings = doctorChecks(input);
  process.stdout.write(`${formatFindings(findings)}\n`);
  return findings.every((f) => f.ok) ? 0 : 1;
}
