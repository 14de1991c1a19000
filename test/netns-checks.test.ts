/**
 * Health checks on real links: a director namespace probes two real servers over veths. rs1 is checked with
 * HTTP_GET and a genhash digest of its body; rs2 serves only on the VIP (DR) and is reached by a probe to VIP:80
 * carrying rs2's mark, which the director's policy route sends to rs2; rs2 has inhibit_on_failure. Stopping a server
 * takes it out (rs2: weight 0) within delay_loop + retry × (connect_timeout + delay_before_retry); starting it brings it
 * back.
 */
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import type { VirtualServerHealth } from '../src/ha/checks-types.js';
import { NetnsSet, runPrefix } from '../src/lab/netns.js';

const VIP = '10.81.0.100';
const DIR1 = '10.81.1.1';
const RS1 = '10.81.1.2';
const DIR2 = '10.81.2.1';
const RS2 = '10.81.2.2';
const MARK2 = 0x1002;
const helper = fileURLToPath(new URL('./netns-checks-director.ts', import.meta.url));
const cwd = fileURLToPath(new URL('..', import.meta.url));

let set: NetnsSet;
let ns: { dir: string; rs1: string; rs2: string };

test.before(() => {
  set = new NetnsSet(runPrefix('c'));
  ns = { dir: set.add('dir'), rs1: set.add('rs1'), rs2: set.add('rs2') };
  const link = (rs: string, dirIf: string, dirAddr: string, rsAddr: string) => {
    set.veth({ ns: ns.dir, name: dirIf }, { ns: rs, name: 'eth0' });
    set.exec(ns.dir, 'ip', ['addr', 'add', `${dirAddr}/24`, 'dev', dirIf]);
    set.exec(ns.dir, 'ip', ['link', 'set', dirIf, 'up']);
    set.exec(rs, 'ip', ['addr', 'add', `${rsAddr}/24`, 'dev', 'eth0']);
    set.exec(rs, 'ip', ['link', 'set', 'eth0', 'up']);
    set.exec(rs, 'ip', ['addr', 'add', `${VIP}/32`, 'dev', 'lo']);
  };
  link(ns.rs1, 'd1', DIR1, RS1);
  link(ns.rs2, 'd2', DIR2, RS2);
  // the director holds the VIP; marked traffic to it follows the real server's policy route (DR)
  set.exec(ns.dir, 'ip', ['addr', 'add', `${VIP}/32`, 'dev', 'lo']);
  set.exec(ns.dir, 'ip', ['rule', 'add', 'pref', '10', 'fwmark', `0x${MARK2.toString(16)}`, 'lookup', '102']);
  set.exec(ns.dir, 'ip', ['route', 'add', `${VIP}/32`, 'via', RS2, 'dev', 'd2', 'onlink', 'table', '102']);
  set.exec(ns.dir, 'ip', ['rule', 'add', 'pref', '100', 'lookup', 'local']);
  set.exec(ns.dir, 'ip', ['rule', 'del', 'pref', '0', 'lookup', 'local']);
  // replies come back from the VIP, which is also local here
  for (const k of ['all', 'default', 'd2'])
    set.exec(ns.dir, 'sysctl', ['-qw', `net.ipv4.conf.${k}.accept_local=1`, `net.ipv4.conf.${k}.rp_filter=0`]);
});

test.after.always(() => {
  set?.dispose();
});

const servers = new Map<string, ChildProcess>();

/** An HTTP server in a real server's namespace answering `body` on host:80. */
async function startServer(name: 'rs1' | 'rs2', host: string, body: string): Promise<void> {
  const code = `require('http').createServer((q,s)=>s.end(${JSON.stringify(body)})).listen(80, ${JSON.stringify(host)}, () => console.log('ready'))`;
  const child = set.spawn(ns[name], process.execPath, ['-e', code]);
  servers.set(name, child);
  await new Promise<void>((resolve, reject) => {
    child.stdout?.once('data', () => resolve());
    child.once('exit', (c) => reject(new Error(`${name} server exited ${c}`)));
  });
}

async function stopServer(name: 'rs1' | 'rs2'): Promise<void> {
  const child = servers.get(name);
  servers.delete(name);
  if (!child || child.exitCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await gone;
}

test.serial('a stopped real server leaves the table within the retry budget and comes back', async (t) => {
  const body1 = 'rs1 says hello\n';
  await startServer('rs1', '0.0.0.0', body1);
  // rs2 answers on the VIP only: only a probe that follows rs2's mark route can reach it
  await startServer('rs2', VIP, 'rs2\n');

  const http = (digest?: string) => ({
    type: 'http',
    tls: false,
    connectTimeout: 1,
    retry: 1,
    delayBeforeRetry: 1,
    urls: [{ path: '/', statusCodes: [200], digest }],
  });
  const health: VirtualServerHealth = {
    delayLoop: 1,
    quorum: 1,
    hysteresis: 0,
    alpha: false,
    omega: false,
    haSuspend: false,
    realServers: [
      {
        addr: RS1,
        port: 80,
        inhibitOnFailure: false,
        checks: [http(createHash('md5').update(body1).digest('hex')) as never],
      },
      { addr: RS2, port: 80, inhibitOnFailure: true, checks: [http() as never] },
    ],
  };
  const cfg = {
    id: { kind: 'tcp', family: 4, addr: VIP, port: 80 },
    dests: [RS1, RS2].map((addr) => ({ addr, port: 80, fwd: 'route', weight: 3, uThreshold: 0, lThreshold: 0 })),
    health,
    marks: { [`${RS2}:80`]: MARK2 },
  };
  const director = set.spawn(ns.dir, process.execPath, ['--import', 'tsx', helper, JSON.stringify(cfg)], {
    cwd,
    env: { ...process.env, TIERLB_LOG_LEVEL: 'warn' },
  });
  let stderr = '';
  director.stderr?.on('data', (d) => {
    stderr += d;
  });
  let last: Record<string, number> = {};
  const waiters: { pred: (d: Record<string, number>) => boolean; resolve: () => void }[] = [];
  createInterface({ input: director.stdout as NodeJS.ReadableStream }).on('line', (line) => {
    try {
      last = JSON.parse(line).dests;
    } catch {
      return;
    }
    for (const w of waiters.splice(0)) {
      if (w.pred(last)) w.resolve();
      else waiters.push(w);
    }
  });
  /** Wait until the table satisfies `pred`; resolves with the time it took. */
  const until = (pred: (d: Record<string, number>) => boolean, ms: number, what: string) =>
    new Promise<number>((resolve, reject) => {
      const start = Date.now();
      if (pred(last)) {
        resolve(0);
        return;
      }
      const timer = setTimeout(
        () => reject(new Error(`${what}: timed out; table ${JSON.stringify(last)}; stderr ${stderr}`)),
        ms,
      );
      waiters.push({
        pred,
        resolve: () => {
          clearTimeout(timer);
          resolve(Date.now() - start);
        },
      });
    });

  // at start both are in; the checks keep them in (rs2 only passes through its mark route)
  await until((d) => d[`${RS1}:80`] === 3 && d[`${RS2}:80`] === 3, 5000, 'start');
  await new Promise((r) => setTimeout(r, 2500));
  t.deepEqual(last, { [`${RS1}:80`]: 3, [`${RS2}:80`]: 3 }, stderr);

  // budget: delay_loop 1 + (connect_timeout 1 + delay_before_retry 1) × retry 1, plus slack
  const budget = 1000 + 2000 + 1500;
  await stopServer('rs1');
  const down1 = await until((d) => !(`${RS1}:80` in d), budget, 'rs1 removed');
  t.log(`rs1 removed after ${down1} ms`);
  await startServer('rs1', '0.0.0.0', body1);
  await until((d) => d[`${RS1}:80`] === 3, 2500, 'rs1 back');

  // a wrong body is a failed digest: the server goes out although it answers 200
  await stopServer('rs1');
  await startServer('rs1', '0.0.0.0', 'something else\n');
  await until((d) => !(`${RS1}:80` in d), budget + 1000, 'rs1 removed on digest');
  await stopServer('rs1');
  await startServer('rs1', '0.0.0.0', body1);
  await until((d) => d[`${RS1}:80`] === 3, 2500, 'rs1 back after digest');

  // inhibit_on_failure: rs2 stays with weight 0
  await stopServer('rs2');
  const down2 = await until((d) => d[`${RS2}:80`] === 0, budget, 'rs2 weight 0');
  t.log(`rs2 inhibited after ${down2} ms`);
  t.true(`${RS2}:80` in last);
  await startServer('rs2', VIP, 'rs2\n');
  await until((d) => d[`${RS2}:80`] === 3, 2500, 'rs2 weight back');

  director.kill('SIGKILL');
  for (const n of ['rs1', 'rs2'] as const) await stopServer(n);
});
