/**
 * Flows that survive director changes behind ECMP (test/netns-bgp-topo.ts): while 30 slow downloads run from the
 * client, one director is drained (SIGTERM: withdrawn, then stopped), one is SIGKILLed and the drained one is added
 * back; the router rehashes the flows' client → VIP packets over the directors left, each of which has no entry for
 * most of them. With mh (mh-port) on every director and sloppy_tcp (the bgp mode's default) the moved packets are
 * scheduled to the same real server: every download completes byte-exact. With rr and no sync, the test only
 * reports how many break (the documentation says they may).
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';
import { request } from '../src/director/client.js';
import {
  type BgpTopo,
  bigBody,
  buildBgpTopo,
  type DirectorSpec,
  directorAddr,
  directorYaml,
  type RunningDirector,
  signalDirector,
  startDirector,
  startHttp,
  VIP,
  waitFor,
} from './netns-bgp-topo.js';

const FLOWS = 30;
const BYTES = 320 * 1024;
const RATE = '64k'; // ~5 s per download

interface Outcome {
  ok: number;
  broken: number[];
  perDirector: number[];
}

async function scenario(t: import('ava').ExecutionContext, spec: DirectorSpec): Promise<Outcome> {
  const specs = [spec, spec, spec];
  const topo: BgpTopo = buildBgpTopo(specs, 2);
  try {
    const want = createHash('sha256').update(bigBody(BYTES)).digest('hex');
    await Promise.all([startHttp(topo, 0, BYTES), startHttp(topo, 1, BYTES)]);
    const dirs: RunningDirector[] = await Promise.all(
      specs.map((s, i) => startDirector(topo, i, directorYaml(i, s, 2, 1))),
    );
    const all = specs.map((_, i) => directorAddr(i));
    const hops = (want: string[]) => () => JSON.stringify(topo.nextHops()) === JSON.stringify(want);
    await waitFor('3 next hops', hops(all), 20_000);

    const out = join(topo.dir, 'flows');
    const script = `mkdir -p ${out}; for i in $(seq 1 ${FLOWS}); do
  (curl -s --max-time 40 --limit-rate ${RATE} -o ${out}/f$i http://${VIP}/big; echo $? > ${out}/rc$i) &
done; wait`;
    const client = topo.set.spawn(topo.client, 'sh', ['-c', script]);
    client.stdout?.resume();
    client.stderr?.resume();
    const finished = new Promise<void>((r) => client.once('exit', () => r()));
    await new Promise((r) => setTimeout(r, 1000));
    const forwarded = await Promise.all(
      dirs.map(async (d) => {
        const s = JSON.parse(await request(d.socket, { op: 'stats' })) as { forwarded: { route: number } };
        return s.forwarded.route;
      }),
    );
    // drain d1
    const drained = signalDirector(dirs[0], 'SIGTERM');
    const tDrain = await waitFor('d1 withdrawn', hops([all[1], all[2]]), 10_000);
    await drained;
    await new Promise((r) => setTimeout(r, 500));
    // kill d2
    dirs[1].child.kill('SIGKILL');
    const tKill = await waitFor('d2 gone', hops([all[2]]), 10_000);
    // add d1 back
    dirs[0] = await startDirector(topo, 0, directorYaml(0, spec, 2, 1));
    const tAdd = await waitFor('d1 back', hops([all[0], all[2]]), 15_000);
    t.log(`drain withdrawn in ${tDrain} ms, SIGKILL next hop gone in ${tKill} ms, re-added announced in ${tAdd} ms`);
    await finished;

    const broken: number[] = [];
    for (let i = 1; i <= FLOWS; i++) {
      const f = join(out, `f${i}`);
      const rc = existsSync(join(out, `rc${i}`)) ? readFileSync(join(out, `rc${i}`), 'utf8').trim() : 'none';
      const sum = existsSync(f) ? createHash('sha256').update(readFileSync(f)).digest('hex') : '';
      if (rc !== '0' || sum !== want) broken.push(i);
    }
    for (const d of dirs) await signalDirector(d, 'SIGTERM');
    return { ok: FLOWS - broken.length, broken, perDirector: forwarded };
  } finally {
    topo.dispose();
  }
}

test.serial('mh + sloppy_tcp: every flow survives a drain, a SIGKILL and an addition', async (t) => {
  const r = await scenario(t, { bfd: true, scheduler: 'mh', schedFlags: ['mh-port'] });
  t.log(`packets forwarded per director in the first second: ${r.perDirector.join(', ')}`);
  t.log(`flows survived: ${r.ok}/${FLOWS}`);
  t.true(r.perDirector.filter((n) => n > 0).length >= 2, 'ECMP spread the flows over the directors');
  t.deepEqual(r.broken, []);
});

test.serial('rr without sync: the flows moved to another director may break (reported, not asserted)', async (t) => {
  const r = await scenario(t, { bfd: true, scheduler: 'rr' });
  t.log(`rr, no sync: flows survived: ${r.ok}/${FLOWS} (broken: ${r.broken.join(' ') || 'none'})`);
  t.pass();
});
