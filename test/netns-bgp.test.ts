/**
 * Directors announcing a VIP over BGP to a router running BIRD with ECMP (test/netns-bgp-topo.ts): the router's
 * kernel route has one next hop per director; the VIP is withdrawn when the services' quorum is lost and comes back
 * with it; a director stopped with SIGTERM withdraws and closes its session (its BIRD gone); a SIGKILLed director's
 * BIRD dies with it (parent-death signal); a director whose link dies is dropped after BFD's detection time, or the
 * hold timer without BFD (both measured and printed); a director added back is in the route again.
 */
import type { ChildProcess } from 'node:child_process';
import test from 'ava';
import { request } from '../src/director/client.js';
import { sh } from '../src/lab/netns.js';
import {
  type BgpTopo,
  buildBgpTopo,
  directorAddr,
  directorYaml,
  type RunningDirector,
  signalDirector,
  startDirector,
  startHttp,
  VIP,
  waitFor,
} from './netns-bgp-topo.js';

// d1 and d2 ask for BFD, d3 does not (its loss is seen by the 3 s hold timer)
const SPECS = [{ bfd: true }, { bfd: true }, { bfd: false }];
const RS = 2;

let topo: BgpTopo;

test.before(() => {
  topo = buildBgpTopo(SPECS, RS);
});

test.after.always(() => {
  topo?.dispose();
});

const all = SPECS.map((_, i) => directorAddr(i));
const hopsAre = (want: string[]) => () => JSON.stringify(topo.nextHops()) === JSON.stringify([...want].sort());
test.serial('ECMP over BGP: announce, quorum, SIGTERM, SIGKILL, link loss with and without BFD, re-add', async (t) => {
  const servers: ChildProcess[] = [];
  for (let i = 0; i < RS; i++) servers.push(await startHttp(topo, i));
  const t0 = performance.now();
  const dirs: RunningDirector[] = [];
  for (let i = 0; i < SPECS.length; i++) dirs.push(await startDirector(topo, i, directorYaml(i, SPECS[i], RS, 2)));
  const up = await waitFor('3 next hops', hopsAre(all), 20_000);
  t.log(
    `announced by 3 directors: ${Math.round(performance.now() - t0)} ms after the first start (${up} ms after the last)`,
  );
  const shown = topo.birdc('show', 'route', 'for', VIP, 'all');
  t.regex(shown, new RegExp(`${VIP}/32 +unicast \\[d\\d`));
  for (const a of all) t.true(shown.includes(`via ${a} on eth0`), `${a} in ${shown}`);

  // traffic: the client reaches the VIP through whichever director ECMP picks
  for (let k = 0; k < 4; k++) {
    const body = topo.set.exec(topo.client, 'curl', ['-s', '--max-time', '3', `http://${VIP}/`], { allowFail: true });
    t.regex(body, /^rs[12]\n$/);
  }

  // BIRD dies under a running director: restarted (backoff 0.5 s) and the path comes back
  const st = JSON.parse(await request(dirs[2].socket, { op: 'bgp' })) as { pid: number; restarts: number };
  t.is(st.restarts, 0);
  process.kill(st.pid, 'SIGKILL');
  await waitFor('d3 gone with its BIRD', hopsAre([all[0], all[1]]), 5_000);
  const restarted = await waitFor('d3 back after the restart', hopsAre(all), 10_000);
  const st2 = JSON.parse(await request(dirs[2].socket, { op: 'bgp' })) as {
    restarts: number;
    announced: string[];
    protocols: { name: string; info: string }[];
  };
  t.is(st2.restarts, 1);
  t.deepEqual(st2.announced, [VIP]);
  t.log(`BIRD killed under d3 → restarted and announced again in ${restarted} ms`);

  // quorum 2 of 2 real servers: one down withdraws the VIP from every director, back up brings it back
  servers[1].kill('SIGKILL');
  const lost = await waitFor('VIP withdrawn on quorum loss', hopsAre([]), 10_000);
  t.log(`quorum lost → withdrawn in ${lost} ms`);
  t.false(/unicast/.test(topo.birdc('show', 'route', 'for', VIP)));
  servers[1] = await startHttp(topo, 1);
  const back = await waitFor('VIP back with the quorum', hopsAre(all), 10_000);
  t.log(`quorum back → announced in ${back} ms`);

  // SIGTERM: withdrawn before the director stops; session closed; nothing left running in its namespace
  const t1 = performance.now();
  const stopped = signalDirector(dirs[0], 'SIGTERM');
  const termMs = await waitFor('d1 withdrawn', hopsAre([all[1], all[2]]), 10_000);
  await stopped;
  t.log(`SIGTERM → withdrawn in ${termMs} ms, director exited after ${Math.round(performance.now() - t1)} ms`);
  t.regex(dirs[0].stderr(), /bgp: withdraw/);
  await waitFor('d1 session down', () => !/d1 +BGP +--- +up/.test(topo.birdc('show', 'protocols')), 5_000);
  t.deepEqual(procsIn(topo.directors[0]), [], 'no process left in d1 (BIRD included)');

  // SIGKILL: BIRD dies with the director (pdeathsig); the kernel closes the TCP session
  const killMs0 = performance.now();
  dirs[1].child.kill('SIGKILL');
  const killMs = await waitFor('d2 gone after SIGKILL', hopsAre([all[2]]), 10_000);
  t.log(`SIGKILL → next hop gone in ${killMs} ms`);
  await waitFor('no process left in d2', () => procsIn(topo.directors[1]).length === 0, 5_000);
  t.true(performance.now() - killMs0 < 10_000);

  // d1 added back
  dirs[0] = await startDirector(topo, 0, directorYaml(0, SPECS[0], RS, 2));
  const readd = await waitFor('d1 back', hopsAre([all[0], all[2]]), 15_000);
  t.log(`re-added director announced in ${readd} ms after its socket answered`);

  // link loss (a dead machine: no FIN, no Cease): BFD (d1) vs the hold timer (d3, hold 3 s)
  topo.set.exec(topo.directors[0], 'ip', ['link', 'set', 'eth0', 'down']);
  const bfdMs = await waitFor('d1 dropped by BFD', hopsAre([all[2]]), 10_000);
  t.log(`link loss with BFD (100 ms × 3) → next hop gone in ${bfdMs} ms`);
  topo.set.exec(topo.directors[2], 'ip', ['link', 'set', 'eth0', 'down']);
  const holdMs = await waitFor('d3 dropped by the hold timer', hopsAre([]), 10_000);
  t.log(`link loss without BFD (hold 3 s) → next hop gone in ${holdMs} ms`);
  t.true(bfdMs < 1500, `BFD detection ${bfdMs} ms`);
  t.true(holdMs > bfdMs, `hold timer ${holdMs} ms`);

  for (const d of dirs) await signalDirector(d, 'SIGTERM');
  for (const ns of topo.directors) t.deepEqual(procsIn(ns), [], `nothing left in ${ns}`);
});

/** The processes in a namespace (ip netns pids). */
function procsIn(ns: string): string[] {
  return sh('ip', ['netns', 'pids', ns], { allowFail: true }).split('\n').filter(Boolean);
}
