/**
 * trafgen (Debian netsniff-ng), an AF_PACKET generator, as the L4 benchmark's load: packet configs for one UDP flow
 * and for a SYN flood from random sources, and a bounded run inside a namespace. trafgen outruns a Python sender by far
 * (~100-135k pkt/s on one core here), so a path that delivers less than it offers is the path's limit, not the
 * generator's. Its --rate does not pace on veth; a gap (-t) does, -n COUNT alone sends COUNT at full speed.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const macBytes = (mac: string) => mac.split(':').map((b) => `0x${b}`);
const ipBytes = (ip: string) => ip.split('.').map(Number);

/** One UDP flow src:sport → dst:dport with `payload` bytes; checksums are trafgen's (IP) and 0 (UDP, allowed in IPv4). */
export function udpFlowConfig(o: {
  srcMac: string;
  dstMac: string;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  payload: number;
}): string {
  const ipLen = 20 + 8 + o.payload;
  return `{
  ${macBytes(o.dstMac).join(', ')}, ${macBytes(o.srcMac).join(', ')}, c16(0x0800),
  0x45, 0, c16(${ipLen}), c16(1), c16(0x4000), 64, 17, csumip(14, 33),
  ${ipBytes(o.src).join(', ')}, ${ipBytes(o.dst).join(', ')},
  c16(${o.sport}), c16(${o.dport}), c16(${8 + o.payload}), c16(0),
  fill('x', ${o.payload}),
}
`;
}

/**
 * SYNs to dst:dport from random sources in `srcNet`.0.0/16 (two random octets) with random ports and sequence
 * numbers; valid IP and TCP checksums (trafgen computes them per packet).
 */
export function synFloodConfig(o: {
  srcMac: string;
  dstMac: string;
  srcNet: string;
  dst: string;
  dport: number;
}): string {
  const net = ipBytes(`${o.srcNet}.0.0`).slice(0, 2);
  return `{
  ${macBytes(o.dstMac).join(', ')}, ${macBytes(o.srcMac).join(', ')}, c16(0x0800),
  0x45, 0, c16(40), drnd(2), c16(0x4000), 64, 6, csumip(14, 33),
  ${net.join(', ')}, drnd(2), ${ipBytes(o.dst).join(', ')},
  drnd(2), c16(${o.dport}), drnd(4), c32(0), c16((5 << 12) | 0x02), c16(64240), csumtcp(14, 34), c16(0),
}
`;
}

export function haveTrafgen(): boolean {
  // `trafgen --version` exits 1; a missing program is ENOENT
  return !spawnSync('trafgen', ['--version'], { stdio: 'ignore' }).error;
}

/**
 * Send `count` packets of `config` out of `dev` in namespace `ns` on one CPU, at full speed or with `gap` between
 * packets (e.g. '10us'); returns the seconds it took. Bounded: killed after `timeoutS`.
 */
export function trafgen(
  ns: string,
  dir: string,
  name: string,
  config: string,
  o: { dev?: string; count: number; gap?: string; timeoutS?: number },
): number {
  const file = join(dir, `${name}.cfg`);
  writeFileSync(file, config);
  const args = ['netns', 'exec', ns, 'trafgen', '--dev', o.dev ?? 'eth0', '--conf', file, '--num', String(o.count)];
  args.push('--cpus', '1', '--no-sock-mem', '--notouch-irq', '--no-cpu-stats');
  if (o.gap) args.push('--gap', o.gap);
  const t0 = process.hrtime.bigint();
  const r = spawnSync('ip', args, { encoding: 'utf8', timeout: (o.timeoutS ?? 60) * 1000, killSignal: 'SIGKILL' });
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.error || r.status !== 0)
    throw new Error(`trafgen ${name}: ${r.error?.message ?? `exit ${r.status}`}: ${r.stderr}`);
  return secs;
}
