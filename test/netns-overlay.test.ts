/**
 * The VXLAN overlay on real links: `tierlb overlay up` on an LB node and two hypervisors joined by an underlay;
 * ping, HTTP and a 4 MB POST cross VNI 100 (MTU 1450) and the underlay capture shows UDP 4789 with VNI 100;
 * `up` twice changes nothing; `down` leaves nothing of the overlay.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { readHostState } from '../src/overlay/exec.js';
import {
  buildTopology,
  captureUnderlay,
  LB_OVERLAY_IP,
  overlayUpAll,
  startBackends,
  type Topology,
  tierlb,
  UNDERLAY,
  VNI,
  vxlanPackets,
} from './netns-overlay-topo.js';

let topo: Topology;

test.before(() => {
  topo = buildTopology('o');
});

test.after.always(() => {
  topo?.dispose();
});

/** The links and fdb of a namespace, without counters and timers: what `up` must leave unchanged. */
function snapshot(ns: string) {
  const s = readHostState({ netns: ns });
  return {
    links: [...s.links.values()].map((l) => JSON.stringify(l)).sort(),
    fdb: s.fdb.map((e) => JSON.stringify(e)).sort(),
  };
}

const inNs = (ns: string, cmd: string, args: string[]) =>
  execFileSync('ip', ['netns', 'exec', ns, cmd, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

test.serial('overlay up builds VNI 100 on all three hosts; a second up changes nothing', async (t) => {
  const before = await tierlb(['overlay', 'show', '--config', topo.configs.hv1, '--netns', topo.hv1]);
  t.is(before.code, 3, before.stdout + before.stderr);
  t.regex(before.stdout, /vxlan vx100 +missing/);

  await overlayUpAll(topo);
  const snaps = { lb: snapshot(topo.lb), hv1: snapshot(topo.hv1), hv2: snapshot(topo.hv2) };
  const vx = readHostState({ netns: topo.hv1 }).links.get('vx100');
  t.like(vx, { kind: 'vxlan', mtu: 1450, master: 'br100', up: true });
  t.like(vx?.vxlan, { id: VNI, local: UNDERLAY.hv1, port: 4789, learning: false });
  t.deepEqual(
    readHostState({ netns: topo.hv1 })
      .fdb.filter((e) => e.mac === '00:00:00:00:00:00')
      .map((e) => e.dst)
      .sort(),
    [UNDERLAY.lb, UNDERLAY.hv2],
  );

  for (const h of ['lb', 'hv1', 'hv2'] as const) {
    const again = await tierlb(['overlay', 'up', '--config', topo.configs[h], '--netns', topo[h]]);
    t.is(again.code, 0, again.stderr);
    t.is(again.stdout.trim(), 'nothing to do', `${h}: ${again.stdout}`);
    const show = await tierlb(['overlay', 'show', '--config', topo.configs[h], '--netns', topo[h]]);
    t.is(show.code, 0, show.stdout);
    t.regex(show.stdout, /in sync/);
  }
  t.deepEqual({ lb: snapshot(topo.lb), hv1: snapshot(topo.hv1), hv2: snapshot(topo.hv2) }, snaps);

  // drift is repaired: a removed flood entry and a lowered MTU come back with the next up
  execFileSync('bridge', ['-n', topo.hv2, 'fdb', 'del', '00:00:00:00:00:00', 'dev', 'vx100', 'dst', UNDERLAY.lb]);
  execFileSync('ip', ['-n', topo.hv2, 'link', 'set', 'vx100', 'mtu', '1400']);
  const repair = await tierlb(['overlay', 'up', '--config', topo.configs.hv2, '--netns', topo.hv2]);
  t.is(repair.code, 0, repair.stderr);
  t.regex(repair.stdout, /fdb append 00:00:00:00:00:00 dev vx100 dst 10\.200\.0\.1/);
  t.regex(repair.stdout, /vx100 mtu 1450/);
  t.deepEqual(snapshot(topo.hv2), snaps.hv2);
});

test.serial('ping, HTTP and a 4 MB POST cross VNI 100; the underlay carries UDP 4789 with VNI 100', async (t) => {
  await startBackends(topo);
  const cap = await captureUnderlay(topo, 'overlay.pcap');
  let pcap: string;
  try {
    for (const b of topo.backends) {
      inNs(topo.lb, 'ping', ['-c', '2', '-W', '2', '-i', '0.2', b.ip]);
      const body = JSON.parse(inNs(topo.lb, 'curl', ['-sS', '--max-time', '10', `http://${b.ip}:8080/`]));
      t.is(body.name, b.name);
    }
    // a DF-marked ping of the full overlay MTU passes, one byte more does not
    inNs(topo.lb, 'ping', ['-c', '1', '-W', '2', '-M', 'do', '-s', String(1450 - 28), topo.backends[2].ip]);
    t.throws(() =>
      inNs(topo.lb, 'ping', ['-c', '1', '-W', '2', '-M', 'do', '-s', String(1451 - 28), topo.backends[2].ip]),
    );

    const data = randomBytes(4 * 1024 * 1024);
    const file = join(topo.dir, 'post.bin');
    writeFileSync(file, data);
    const be3 = topo.backends[2];
    const res = JSON.parse(
      inNs(topo.lb, 'curl', ['-sS', '--max-time', '30', '--data-binary', `@${file}`, `http://${be3.ip}:8080/upload`]),
    );
    t.is(res.name, 'be3');
    t.is(res.bytes, data.length);
    t.is(res.sha256, createHash('sha256').update(data).digest('hex'));
  } finally {
    pcap = await cap.stop();
  }

  const pkts = vxlanPackets(pcap);
  t.true(pkts.length > 20, `only ${pkts.length} VXLAN packets`);
  t.true(
    pkts.every((p) => p.vni === VNI),
    'a packet with another VNI',
  );
  const vteps = new Set<string>(Object.values(UNDERLAY));
  t.true(pkts.every((p) => vteps.has(p.src) && vteps.has(p.dst)));
  // the upload: LB's overlay address to be3 inside, LB → hv2 outside; the inner SYNs carry MSS 1410 (MTU 1450)
  const upload = pkts.filter((p) => p.innerSrc === LB_OVERLAY_IP && p.innerDst === '172.16.100.13');
  t.true(upload.length > 0);
  t.true(upload.every((p) => p.src === UNDERLAY.lb && p.dst === UNDERLAY.hv2));
  const bytes = upload.reduce((n, p) => n + p.frameLen, 0);
  t.true(bytes > 4 * 1024 * 1024, `${bytes} bytes LB → be3 on the underlay`);
  const mss = pkts.filter((p) => p.mss !== undefined).map((p) => p.mss);
  t.true(mss.length > 0);
  t.true(
    mss.every((m) => m === 1450 - 40),
    `MSS ${mss}`,
  );
});

test.serial('overlay down removes exactly what up made, and only that', async (t) => {
  for (const h of ['lb', 'hv1', 'hv2'] as const) {
    const r = await tierlb(['overlay', 'down', '--config', topo.configs[h], '--netns', topo[h]]);
    t.is(r.code, 0, r.stderr);
    t.regex(r.stdout, /link del vx100[\s\S]*link del br100/);
    const s = readHostState({ netns: topo[h] });
    t.false(s.links.has('vx100') || s.links.has('br100'), `${h} still has overlay links`);
    t.deepEqual(
      [...s.links.values()].filter((l) => l.alias?.startsWith('tierlb:')),
      [],
    );
    t.deepEqual(s.fdb, []);
    // the underlay and the backends' ports are not the overlay's: still there
    t.true(s.links.has('eth0'));
    const again = await tierlb(['overlay', 'down', '--config', topo.configs[h], '--netns', topo[h]]);
    t.is(again.stdout.trim(), 'nothing to do');
  }
  t.true(readHostState({ netns: topo.hv1 }).links.has('pbe1'));
  t.throws(() => inNs(topo.lb, 'ping', ['-c', '1', '-W', '1', topo.backends[0].ip]));
});

test.serial('a link of the same name not made by tierlb is neither changed nor removed', async (t) => {
  execFileSync('ip', ['-n', topo.hv1, 'link', 'add', 'br100', 'type', 'bridge']);
  const up = await tierlb(['overlay', 'up', '--config', topo.configs.hv1, '--netns', topo.hv1]);
  t.is(up.code, 1);
  t.regex(up.stderr, /br100 exists and was not made by tierlb/);
  const down = await tierlb(['overlay', 'down', '--config', topo.configs.hv1, '--netns', topo.hv1]);
  t.is(down.code, 0);
  t.true(readHostState({ netns: topo.hv1 }).links.has('br100'));
  t.false(readHostState({ netns: topo.hv1 }).links.has('vx100'));
  execFileSync('ip', ['-n', topo.hv1, 'link', 'del', 'br100']);
});
