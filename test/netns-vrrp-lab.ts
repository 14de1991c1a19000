/** The namespace lab shared by the VRRP interop tests: one bridge, routers a (tierlb) and b, client c. */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { NetnsSet, sh } from '../src/lab/netns.js';

export const VIP = '10.88.0.100';
export const A = '10.88.0.2'; // tierlb
export const B = '10.88.0.3'; // keepalived
export const C = '10.88.0.10'; // client
export const MARGIN_MS = 1500;

export interface Lab {
  set: NetnsSet;
  dir: string;
  a: string;
  b: string;
  c: string;
  mac: { a: string; b: string };
}

/** A namespace set and a scratch directory, both removed when the test ends. */
export function labSet(t: ExecutionContext): { set: NetnsSet; dir: string } {
  const set = new NetnsSet();
  const dir = mkdtempSync(join(tmpdir(), `${set.prefix}-`));
  t.teardown(() => {
    set.dispose();
    rmSync(dir, { recursive: true, force: true });
  });
  return { set, dir };
}

export function lab(t: ExecutionContext): Lab {
  const { set, dir } = labSet(t);
  const br = set.add('br');
  sh('ip', ['-n', br, 'link', 'add', 'br0', 'type', 'bridge']);
  sh('ip', ['-n', br, 'link', 'set', 'br0', 'up']);
  const ns: Record<string, string> = {};
  for (const [n, ip] of [
    ['a', A],
    ['b', B],
    ['c', C],
  ]) {
    ns[n] = set.add(n);
    set.veth({ ns: ns[n], name: 'eth0' }, { ns: br, name: `p${n}` });
    sh('ip', ['-n', br, 'link', 'set', `p${n}`, 'master', 'br0']);
    sh('ip', ['-n', br, 'link', 'set', `p${n}`, 'up']);
    sh('ip', ['-n', ns[n], 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
    sh('ip', ['-n', ns[n], 'link', 'set', 'eth0', 'up']);
  }
  const mac = (n: string) => JSON.parse(sh('ip', ['-n', n, '-j', 'link', 'show', 'eth0']))[0].address as string;
  return { set, dir, a: ns.a, b: ns.b, c: ns.c, mac: { a: mac(ns.a), b: mac(ns.b) } };
}

export function hasVip(ns: string): boolean {
  return sh('ip', ['-n', ns, '-4', '-o', 'addr', 'show', 'dev', 'eth0']).includes(` ${VIP}/`);
}

export function clientNeigh(l: Lab): string | undefined {
  const j = JSON.parse(sh('ip', ['-n', l.c, '-j', 'neigh', 'show', VIP]) || '[]') as { lladdr?: string }[];
  return j[0]?.lladdr;
}

export async function waitFor(cond: () => boolean, ms: number, step = 25): Promise<number | undefined> {
  const t0 = performance.now();
  while (performance.now() - t0 < ms) {
    if (cond()) return performance.now() - t0;
    await new Promise((r) => setTimeout(r, step));
  }
  return cond() ? performance.now() - t0 : undefined;
}

export interface Opts {
  prio: number;
  version: 2 | 3;
  advert: number;
  unicast?: { src: string; peer: string };
}

/**
 * Start `vrrp-main` in namespace `ns` (default: a) on a YAML config; `extra` lines go into the instance, `scripts`
 * lines into the section (before `instances`). State changes are collected from its JSON output.
 */
export function startTierlb(
  l: Lab,
  o: Opts,
  x: { ns?: string; extra?: string[]; scripts?: string[] } = {},
): { proc: ChildProcess; states: string[]; out: () => string } {
  const ns = x.ns ?? l.a;
  const conf = join(l.dir, `tierlb-${ns}.yaml`);
  const lines = [
    'vrrp:',
    ...(x.scripts ?? []),
    '  instances:',
    '    - name: VI_1',
    '      interface: eth0',
    '      virtual_router_id: 51',
    `      priority: ${o.prio}`,
    `      advert_int: ${o.advert}`,
    `      version: ${o.version}`,
    `      virtual_ipaddress: [${VIP}/24]`,
  ];
  if (o.version === 2) lines.push('      authentication: { auth_type: PASS, auth_pass: s3cret }');
  if (o.unicast) lines.push(`      unicast_src_ip: ${o.unicast.src}`, `      unicast_peer: [${o.unicast.peer}]`);
  lines.push(...(x.extra ?? []));
  writeFileSync(conf, `${lines.join('\n')}\n`);
  return runVrrpMain(l.set, ns, conf);
}

/** Run `vrrp-main` on a config file in namespace `ns`; state changes are collected from its JSON output. */
export function runVrrpMain(
  set: NetnsSet,
  ns: string,
  conf: string,
): { proc: ChildProcess; states: string[]; out: () => string } {
  const proc = set.spawn(ns, process.execPath, ['--import', 'tsx', 'src/ha/vrrp-main.ts', '--config', conf], {
    cwd: process.cwd(),
  });
  const states: string[] = [];
  let out = '';
  let buf = '';
  proc.stdout?.on('data', (d) => {
    buf += d;
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      out += `${line}\n`;
      try {
        const ev = JSON.parse(line);
        if (ev.event === 'state') states.push(ev.to);
      } catch {}
    }
  });
  proc.stderr?.on('data', (d) => (out += d));
  return { proc, states, out: () => out };
}

export function exited(p: ChildProcess, ms: number): Promise<boolean> {
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    p.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}
