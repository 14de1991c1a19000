/**
 * `tierlb doctor` against a running lab: healthy, then one thing broken at a time (VIP off lo, arp_ignore=0, a
 * director's policy rule deleted, a second VRRP router with the same virtual_router_id) — each time it reports
 * exactly that thing.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { doctorChecks } from '../src/lab/doctor.js';
import { probeLab } from '../src/lab/doctor-probe.js';
import { labDown, labUp } from '../src/lab/lab.js';
import { runPrefix, sh } from '../src/lab/netns.js';
import type { LabPlan } from '../src/lab/plan.js';
import { REPO_ROOT, tierlbArgv } from '../src/lab/proc.js';

const stateDir = mkdtempSync(join(tmpdir(), 'tierlb-doctor-test-'));
const prefix = runPrefix('g');
const quiet = () => {};
let plan: LabPlan;

test.before(async () => {
  plan = (await labUp({ prefix, stateDir, out: quiet, progress: quiet })).plan;
});

test.after.always(async () => {
  await labDown({ prefix, stateDir, out: quiet });
  rmSync(stateDir, { recursive: true, force: true });
});

const ns = (h: string) => `${prefix}-${h}`;
const VIP = '10.77.1.100';

async function failing(): Promise<string[]> {
  const input = await probeLab(plan, { listenSeconds: 3 });
  return doctorChecks(input)
    .filter((f) => !f.ok)
    .map((f) => `${f.check}${f.host ? ` ${f.host}` : ''}`);
}

test.serial('a healthy lab: every check passes; the CLI exits 0', async (t) => {
  t.deepEqual(await failing(), []);
  const argv = tierlbArgv(['doctor', '--prefix', prefix, '--state-dir', stateDir, '--listen', '3']);
  const r = await new Promise<{ code: number; out: string }>((resolve) =>
    execFile(argv[0], argv.slice(1), { cwd: REPO_ROOT, encoding: 'utf8' }, (e, out) =>
      resolve({ code: e ? Number((e as { code?: number }).code ?? 1) : 0, out }),
    ),
  );
  t.is(r.code, 0, r.out);
  t.regex(r.out, /^PASS {2}vip-lo {5}lb1 /m);
  t.regex(r.out, /all \d+ checks passed/);
});

test.serial('VIP off lo on lb2: only vip-lo lb2', async (t) => {
  sh('ip', ['-n', ns('lb2'), 'addr', 'del', `${VIP}/32`, 'dev', 'lo']);
  try {
    t.deepEqual(await failing(), ['vip-lo lb2']);
  } finally {
    sh('ip', ['-n', ns('lb2'), 'addr', 'add', `${VIP}/32`, 'dev', 'lo']);
  }
});

test.serial('arp_ignore=0 on lb1: only arp lb1', async (t) => {
  const set = (v: number) =>
    sh('ip', [
      'netns',
      'exec',
      ns('lb1'),
      'sysctl',
      '-qw',
      `net.ipv4.conf.all.arp_ignore=${v}`,
      `net.ipv4.conf.eth0.arp_ignore=${v}`,
    ]);
  set(0);
  try {
    t.deepEqual(await failing(), ['arp lb1']);
  } finally {
    set(1);
  }
});

test.serial("a director's policy rule deleted: only policy dir1", async (t) => {
  const rules = JSON.parse(sh('ip', ['-n', ns('dir1'), '-j', 'rule', 'show'])) as {
    priority: number;
    fwmark?: string;
    table?: string;
  }[];
  const r = rules.find((x) => x.priority === 500 && x.fwmark);
  t.truthy(r, JSON.stringify(rules));
  const args = ['pref', '500', 'fwmark', r!.fwmark!, 'lookup', r!.table!];
  sh('ip', ['-n', ns('dir1'), 'rule', 'del', ...args]);
  try {
    t.deepEqual(await failing(), ['policy dir1']);
  } finally {
    sh('ip', ['-n', ns('dir1'), 'rule', 'add', ...args]);
  }
});

/** VRRP v2 adverts for VRID 51 from the client (another "cluster" on the segment), with its own VIP and password. */
const ROGUE = `
import socket, struct, time
def csum(b):
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b)); s = (s >> 16) + (s & 0xffff); s += s >> 16; return (~s) & 0xffff
p = struct.pack('!BBBBBBH', 0x21, 51, 100, 1, 1, 1, 0) + socket.inet_aton('10.77.1.200') + b'rogue\\0\\0\\0'
p = p[:6] + struct.pack('!H', csum(p)) + p[8:]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton('10.77.1.10'))
for i in range(6):
    s.sendto(p, ('224.0.0.18', 0)); time.sleep(0.7)
`;

test.serial('a second VRRP router with the same virtual_router_id: only vrrp', async (t) => {
  const rogue = execFile('ip', ['netns', 'exec', ns('client1'), 'python3', '-c', ROGUE]);
  try {
    await new Promise((r) => setTimeout(r, 300));
    t.deepEqual(await failing(), ['vrrp']);
  } finally {
    rogue.kill();
  }
});
