/**
 * `tierlb listeners` on an LB node whose backends sit behind VXLAN VNI 100 bridges on two hypervisors: the client
 * reaches the listener on the LB node's public link, the listener reaches the backends only over the overlay (the
 * capture on the LB node's underlay port shows UDP 4789 with VNI 100 carrying the LB → backend connections).
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { controlRequest } from '../src/listeners/control.js';
import {
  buildTopology,
  captureUnderlay,
  LB_OVERLAY_IP,
  LB_PUBLIC_IP,
  overlayUpAll,
  spawnTierlb,
  startBackends,
  type Topology,
  UNDERLAY,
  VNI,
  vxlanPackets,
} from './netns-overlay-topo.js';

let topo: Topology;
let control: string;
let listenerLog = '';

const PORT = 80;
const BACKEND_PORT = 8080;

test.before(async () => {
  topo = buildTopology('l');
  await overlayUpAll(topo);
  await startBackends(topo, BACKEND_PORT);
  control = join(topo.dir, 'listeners.sock');
  const file = join(topo.dir, 'listeners.yaml');
  writeFileSync(
    file,
    `listeners:
  workers: 2
  control: ${control}
  stats: { enabled: false }
  defaults:
    timeout: { connect: 2s, client: 20s, server: 20s, check: 1s }
  listen:
    - name: web
      bind: ${LB_PUBLIC_IP}:${PORT}
      mode: http
      balance: roundrobin
      check: { type: http, uri: /health, expect: { status: 200 }, inter: 300ms, rise: 1, fall: 2 }
      servers:
${topo.backends.map((b) => `        - { name: ${b.name}, address: ${b.ip}:${BACKEND_PORT} }`).join('\n')}
`,
  );
  const child = spawnTierlb(topo.set, topo.lb, ['listeners', '--config', file]);
  child.stdout?.on('data', (d) => {
    listenerLog = (listenerLog + d).slice(-8000);
  });
  child.stderr?.on('data', (d) => {
    listenerLog = (listenerLog + d).slice(-8000);
  });
  // up when every server's check passed
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`tierlb listeners exited ${child.exitCode}:\n${listenerLog}`);
    try {
      const rows = JSON.parse(await controlRequest(control, 'stats json', 2000)) as Record<string, unknown>[];
      const servers = rows.filter((r) => r.pxname === 'web' && /^be\d$/.test(String(r.svname)));
      if (servers.length === 3 && servers.every((r) => r.status === 'UP')) break;
    } catch {}
    if (Date.now() > deadline) throw new Error(`the servers did not come UP:\n${listenerLog}`);
    await new Promise((r) => setTimeout(r, 300));
  }
});

test.after.always(() => {
  topo?.dispose();
});

/** N sequential requests from the client namespace, one connection each; the backends' answers. */
function clientRequests(n: number): { name: string; peer: string }[] {
  const code = `
const http = require('node:http');
const [url, n] = process.argv.slice(1);
(async () => {
  const out = [];
  for (let i = 0; i < Number(n); i++) {
    out.push(await new Promise((resolve, reject) => {
      http.get(url, { agent: false, headers: { connection: 'close' } }, (res) => {
        let b = ''; res.on('data', (d) => { b += d; });
        res.on('end', () => res.statusCode === 200 ? resolve(JSON.parse(b)) : reject(new Error(res.statusCode + ' ' + b)));
      }).on('error', reject);
    }));
  }
  process.stdout.write(JSON.stringify(out));
})().catch((e) => { console.error(e.message); process.exit(1); });`;
  const out = execFileSync(
    'ip',
    ['netns', 'exec', topo.client, process.execPath, '-e', code, `http://${LB_PUBLIC_IP}:${PORT}/`, String(n)],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 },
  );
  return JSON.parse(out);
}

test.serial('roundrobin: 90 requests split 30/30/30 over three backends reached through VNI 100', async (t) => {
  const cap = await captureUnderlay(topo, 'listeners.pcap');
  let answers: { name: string; peer: string }[];
  let pcap: string;
  try {
    answers = clientRequests(90);
  } finally {
    pcap = await cap.stop();
  }
  const counts: Record<string, number> = {};
  for (const a of answers) counts[a.name] = (counts[a.name] ?? 0) + 1;
  t.deepEqual(counts, { be1: 30, be2: 30, be3: 30 }, listenerLog);
  // the backends see the LB node's overlay address: the connections came over the overlay
  t.deepEqual([...new Set(answers.map((a) => a.peer))], [LB_OVERLAY_IP]);

  const pkts = vxlanPackets(pcap);
  t.true(pkts.length > 0, 'no VXLAN packets on the underlay');
  t.true(pkts.every((p) => p.vni === VNI));
  const toBackend = (ip: string) => pkts.filter((p) => p.innerSrc === LB_OVERLAY_IP && p.innerDst === ip);
  const [be1, be2, be3] = topo.backends;
  t.true(toBackend(be1.ip).length > 0 && toBackend(be1.ip).every((p) => p.dst === UNDERLAY.hv1));
  t.true(toBackend(be2.ip).length > 0 && toBackend(be2.ip).every((p) => p.dst === UNDERLAY.hv1));
  t.true(toBackend(be3.ip).length > 0 && toBackend(be3.ip).every((p) => p.dst === UNDERLAY.hv2));

  // the listener's own counters agree
  const rows = JSON.parse(await controlRequest(control, 'stats json', 5000)) as Record<string, unknown>[];
  for (const b of topo.backends) {
    const r = rows.find((x) => x.pxname === 'web' && x.svname === b.name);
    t.is(Number(r?.lbtot), 30, `${b.name} lbtot`);
  }
});

test.serial('a 4 MB POST crosses the listener and the overlay (MTU 1450) intact', (t) => {
  const data = randomBytes(4 * 1024 * 1024);
  const file = join(topo.dir, 'post.bin');
  writeFileSync(file, data);
  const res = JSON.parse(
    execFileSync(
      'ip',
      [
        'netns',
        'exec',
        topo.client,
        'curl',
        '-sS',
        '--max-time',
        '30',
        '--data-binary',
        `@${file}`,
        `http://${LB_PUBLIC_IP}:${PORT}/upload`,
      ],
      { encoding: 'utf8' },
    ),
  );
  t.is(res.bytes, data.length);
  t.is(res.sha256, createHash('sha256').update(data).digest('hex'));
  t.is(res.peer, LB_OVERLAY_IP);
});

test.serial('a backend whose hypervisor loses the overlay is taken out; the others take its share', async (t) => {
  // hv2's VXLAN device goes down: be3 is unreachable over the overlay
  execFileSync('ip', ['-n', topo.hv2, 'link', 'set', 'vx100', 'down']);
  try {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const rows = JSON.parse(await controlRequest(control, 'stats json', 2000)) as Record<string, unknown>[];
      if (rows.find((x) => x.svname === 'be3')?.status === 'DOWN') break;
      if (Date.now() > deadline) return t.fail(`be3 never went DOWN:\n${listenerLog}`);
      await new Promise((r) => setTimeout(r, 300));
    }
    const counts: Record<string, number> = {};
    for (const a of clientRequests(20)) counts[a.name] = (counts[a.name] ?? 0) + 1;
    // be3 gets nothing; the other two share the requests (the roundrobin cursor may start anywhere)
    t.deepEqual(Object.keys(counts).sort(), ['be1', 'be2']);
    t.true(counts.be1 >= 9 && counts.be2 >= 9, JSON.stringify(counts));
  } finally {
    execFileSync('ip', ['-n', topo.hv2, 'link', 'set', 'vx100', 'up']);
  }
});
