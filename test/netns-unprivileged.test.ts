/**
 * The daemons as their service units run them: an unprivileged user (nobody) with only the capabilities the units
 * grant (setpriv, as systemd's User= + AmbientCapabilities= would), no systemd needed. The director DR-forwards VIP:80
 * to an LB node whose listeners (also unprivileged, binding :80 with CAP_NET_BIND_SERVICE) relay to a backend; the
 * client's request must come back through both.
 */
import { type ChildProcess, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { buildTopo, curl, RS1, type Topo, VIP, waitPort } from './netns-director-topo.js';

const ROOT = new URL('..', import.meta.url).pathname;
const NOBODY = 65534;

/** The capabilities each unit grants, read from the unit files themselves so test and units cannot drift apart. */
function unitCaps(unit: string): string[] {
  const text = readFileSync(join(ROOT, 'packaging/systemd', unit), 'utf8');
  const line = text.split('\n').find((l) => l.startsWith('AmbientCapabilities='));
  if (!line) throw new Error(`${unit} has no AmbientCapabilities=`);
  return line
    .slice('AmbientCapabilities='.length)
    .trim()
    .split(/\s+/)
    .map((c) => c.replace(/^CAP_/, '').toLowerCase());
}

/** argv prefix that runs a command as nobody with exactly `caps` (inheritable, ambient and bounding set). */
function asService(caps: string[]): string[] {
  const list = caps.map((c) => `+${c}`).join(',');
  return [
    'setpriv',
    `--reuid=${NOBODY}`,
    `--regid=${NOBODY}`,
    '--clear-groups',
    `--inh-caps=-all,${list}`,
    `--ambient-caps=-all,${list}`,
    `--bounding-set=-all,${list}`,
    '--no-new-privs',
  ];
}

/** A copy of the built project that nobody can read when the checkout itself is not readable by it (e.g. under /root). */
function readableTree(): string {
  const readable = (p: string) =>
    spawnSync('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', 'test', '-r', join(ROOT, p)])
      .status === 0;
  if (['bin/tierlb.js', 'dist/cli/main.js', 'node_modules/pino/package.json'].every(readable)) return ROOT;
  const copy = mkdtempSync(join(tmpdir(), 'tierlb-svc-'));
  for (const p of ['bin', 'dist', 'node_modules', 'package.json'])
    cpSync(join(ROOT, p), join(copy, p), { recursive: true });
  chmodSync(copy, 0o755);
  return copy;
}

function spawnService(
  t: Topo,
  ns: string,
  caps: string[],
  tree: string,
  args: string[],
): { child: ChildProcess; log: () => string } {
  const child = t.set.spawn(
    ns,
    asService(caps)[0],
    [...asService(caps).slice(1), process.execPath, join(tree, 'bin/tierlb.js'), ...args],
    {
      env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', TIERLB_LOG_LEVEL: 'info' },
    },
  );
  let out = '';
  child.stderr?.on('data', (d) => {
    out += d.toString();
  });
  child.stdout?.on('data', (d) => {
    out += d.toString();
  });
  return { child, log: () => out };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  await exited;
}

test('director and listeners run as nobody with only their units’ capabilities; the VIP → LB node → backend flow works', async (t) => {
  const topo = buildTopo('u');
  const run = mkdtempSync(join(tmpdir(), 'tierlb-run-'));
  chmodSync(run, 0o777);
  let tree: string | undefined;
  const children: ChildProcess[] = [];
  try {
    tree = readableTree();
    const directorCaps = unitCaps('tierlb-director.service');
    const listenersCaps = unitCaps('tierlb-listeners.service');
    t.false(directorCaps.includes('sys_admin'), 'the director unit does not ask for CAP_SYS_ADMIN');

    // the LB node rs1: a backend on 127.0.0.1:8080 and the listeners on :80 (VIP held on lo by the topology)
    const backend = topo.set.spawn(topo.rs1, '/usr/bin/python3', [
      '-c',
      `import http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        b = b'backend via %s\\n' % self.headers.get('X-Forwarded-For', '-').encode()
        self.send_response(200); self.send_header('Content-Length', str(len(b))); self.end_headers(); self.wfile.write(b)
    def log_message(self, *a): pass
http.server.HTTPServer(('127.0.0.1', 8080), H).serve_forever()`,
    ]);
    children.push(backend);
    const lconf = join(run, 'listeners.yaml');
    writeFileSync(
      lconf,
      `listeners:
  workers: 1
  control: ${join(run, 'listeners.sock')}
  listen:
    - name: web
      bind: 0.0.0.0:80
      mode: http
      forwardfor: true
      servers:
        - { name: b1, address: 127.0.0.1:8080 }
`,
    );
    const dconf = join(run, 'director.yaml');
    writeFileSync(
      dconf,
      `director:
  services:
    - fwmark: 10000
      match: [{ vip: ${VIP}, port: 80 }]
      scheduler: rr
      real_servers: [{ address: ${RS1}, method: route }]
`,
    );
    chmodSync(lconf, 0o644);
    chmodSync(dconf, 0o644);
    await waitPort(topo, topo.rs1, 8080);

    const listeners = spawnService(topo, topo.rs1, listenersCaps, tree, ['listeners', '--config', lconf]);
    children.push(listeners.child);
    await waitPort(topo, topo.rs1, 80).catch((e) => {
      throw new Error(`${e.message}\nlisteners log:\n${listeners.log()}`);
    });

    const director = spawnService(topo, topo.director, directorCaps, tree, [
      'director',
      '--config',
      dconf,
      '--socket',
      join(run, 'director.sock'),
    ]);
    children.push(director.child);
    let answer = '';
    for (let i = 0; i < 60 && !answer.startsWith('backend'); i++) {
      if (director.child.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 250));
      answer = curl(topo, `http://${VIP}/`, ['--max-time', '1']);
    }
    t.is(director.child.exitCode, null, `the director is still running:\n${director.log()}`);
    t.is(answer, `backend via 10.77.1.10`, `director log:\n${director.log()}\nlisteners log:\n${listeners.log()}`);

    // the processes really are nobody, with no capability beyond the unit's
    // `ip netns exec` and setpriv exec in place: the child's pid is the director's own
    const status = readFileSync(`/proc/${director.child.pid}/status`, 'utf8');
    t.regex(status, new RegExp(`^Uid:\\s+${NOBODY}\\s+${NOBODY}`, 'm'));
    const capEff = BigInt(`0x${/^CapEff:\s+([0-9a-f]+)/m.exec(status)?.[1] ?? '0'}`);
    const CAP_SYS_ADMIN = 21n;
    t.is((capEff >> CAP_SYS_ADMIN) & 1n, 0n, 'no CAP_SYS_ADMIN');
  } finally {
    for (const c of children) await stop(c);
    topo.dispose();
    rmSync(run, { recursive: true, force: true });
    if (tree && tree !== ROOT) rmSync(tree, { recursive: true, force: true });
  }
});
