/**
 * `tierlb lab demo` on an ecmp lab (config/lab-ecmp.yaml): lab up → the router's ECMP route (one next hop per
 * director) → one request traced through router → director → LB node → backend → long-lived downloads from the client spread over the directors by the router → while they run, one
 * director is drained (SIGTERM: it withdraws, waits, stops), one is killed (SIGKILL) and the drained one is added
 * back → every download is checked byte for byte → per-director counts and `flows survived: N/N` → lab down.
 * Exit 0 only when every flow survived.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { request as directorRequest } from '../director/client.js';
import type { DemoOptions, DemoResult } from './demo.js';
import { LabError } from './errors.js';
import { ecmpNextHops, labDown, labUp, loadLabConfig, planFor } from './lab.js';
import { directorSocket, hostsOf, type LabPlan, routerSocket } from './plan.js';
import { alive, patternSha256, spawnDetached } from './proc.js';
import { type LabState, writeState } from './state.js';
import { formatTraceResult, traceRequests } from './trace-run.js';

const FLOWS = 60;
const BYTES = 256 * 1024;
const RATE = '32k'; // ~8 s per download

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitHops(plan: LabPlan, want: string[], timeoutMs: number): Promise<number> {
  const t0 = Date.now();
  const key = [...want].sort().join(',');
  while (Date.now() - t0 < timeoutMs) {
    if (ecmpNextHops(plan).sort().join(',') === key) return Date.now() - t0;
    await sleep(25);
  }
  throw new LabError(
    'ELAB_ECMP_ROUTE',
    `the router's next hops did not become [${key}] within ${timeoutMs} ms (now: ${ecmpNextHops(plan)})`,
  );
}

async function forwarded(plan: LabPlan, dir: string): Promise<number | undefined> {
  try {
    const s = JSON.parse(await directorRequest(directorSocket(plan, dir), { op: 'stats' }, 2000)) as {
      forwarded?: { route?: number };
    };
    return s.forwarded?.route;
  } catch {
    return undefined;
  }
}

function ipOut(ns: string, args: string[]): Promise<string> {
  return new Promise((resolve) => {
    const c = spawn('ip', ['netns', 'exec', ns, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    c.stdout.on('data', (d) => {
      out += d;
    });
    c.on('close', () => resolve(out));
  });
}

export async function ecmpDemo(o: DemoOptions): Promise<DemoResult> {
  const line = o.out ?? ((s: string) => process.stdout.write(`${s}\n`));
  const out = (...lines: string[]) => {
    for (const l of lines) line(l);
  };
  const errw = o.err ?? ((s: string) => process.stderr.write(s));
  const problems: string[] = [];
  const res: DemoResult = { ok: false, problems };
  let plan: LabPlan | undefined;
  let survived = '';
  try {
    out('== 1. lab up: router (BIRD, ECMP), directors announcing the VIP over BGP, LB nodes, overlay, backends');
    const up = await labUp({
      configFile: o.configFile,
      prefix: o.prefix,
      stateDir: o.stateDir,
      out,
      progress: (s) => errw(`${s}\n`),
    });
    plan = up.plan;
    const st: LabState = up.state;
    const c = plan.cfg;
    const e = c.ecmp;
    if (!e)
      throw new LabError('ELAB_NOT_ECMP', 'not an ecmp lab: add lab.ecmp to the config (see config/lab-ecmp.yaml)');
    const rt = hostsOf(plan, 'router')[0];
    const dirs = c.directors.map((d) => d.name);
    out(
      '',
      `== 2. the router's route to ${c.vip}: one next hop per director (kernel multipath, L4 hash)`,
      (await ipOut(rt.ns, ['ip', 'route', 'show', `${c.vip}/32`])).trimEnd(),
      '',
      `birdc -s ${routerSocket(plan)} show route:`,
      (await ipOut(rt.ns, ['birdc', '-s', routerSocket(plan), 'show', 'route'])).trimEnd(),
    );

    out('', '== 3. one request traced hop by hop: client → router (ECMP) → director → LB node → VXLAN → backend');
    const tr = await traceRequests(plan, { requests: 1 });
    out(formatTraceResult(tr));
    for (const t of tr.traces) for (const v of t.verdicts) if (!v.ok) problems.push(`trace: ${v.name}: ${v.detail}`);
    if (!tr.traces.length) problems.push('trace: the request was not captured');

    const client = hostsOf(plan, 'client')[0];
    const http = c.listeners.find((l) => l.mode === 'http');
    if (!http) throw new LabError('ELAB_NO_LISTENER', 'the ecmp demo needs an http listener in lab.listeners');
    const dir = join(plan.dir, 'flows');
    mkdirSync(dir, { recursive: true });
    out(
      '',
      `== 4. ${FLOWS} downloads of ${BYTES / 1024} KiB at ${RATE}/s each from ${client.name} to ${c.vip}:${http.port} (about 8 s each)`,
    );
    const script = `for i in $(seq 1 ${FLOWS}); do
  (curl -s --max-time 60 --limit-rate ${RATE} -o ${dir}/f$i 'http://${c.vip}:${http.port}/big?bytes=${BYTES}'; echo $? > ${dir}/rc$i) &
done; wait`;
    const before = await Promise.all(dirs.map((d) => forwarded(plan as LabPlan, d)));
    const flows = spawn('ip', ['netns', 'exec', client.ns, 'sh', '-c', script], { stdio: 'ignore' });
    const finished = new Promise<void>((r) => flows.once('close', () => r()));
    await sleep(1500);
    const early = await Promise.all(dirs.map((d) => forwarded(plan as LabPlan, d)));
    out(
      `packets each director forwarded in the first 1.5 s: ${dirs.map((d, i) => `${d} ${(early[i] ?? 0) - (before[i] ?? 0)}`).join(', ')}`,
    );
    const spread = dirs.filter((_, i) => (early[i] ?? 0) - (before[i] ?? 0) > 0).length;
    if (spread < 2) problems.push(`the router spread the flows over ${spread} director(s) only`);

    const proc = (name: string) => st.processes.find((p) => p.id === `director-${name}`);
    const [drain, kill] = dirs;
    const rest = dirs.slice(2);
    // drain
    const pd = proc(drain);
    if (!pd) throw new LabError('ELAB_NO_HOST', `no process of ${drain}`);
    out('', `== 5. drain ${drain} (SIGTERM: withdraw, wait, stop)`);
    process.kill(pd.pid, 'SIGTERM');
    const tDrain = await waitHops(plan, [kill, ...rest], 10_000);
    for (let i = 0; i < 100 && alive(pd.pid); i++) await sleep(50);
    out(`  withdrawn from the router in ${tDrain} ms; ${drain} ${alive(pd.pid) ? 'still running' : 'exited'}`);
    await sleep(500);
    // kill
    const pk = proc(kill);
    if (!pk) throw new LabError('ELAB_NO_HOST', `no process of ${kill}`);
    out(`== 6. kill ${kill} (SIGKILL: its BIRD dies with it; the router drops the session)`);
    process.kill(pk.pid, 'SIGKILL');
    const tKill = await waitHops(plan, rest, 10_000);
    out(`  gone from the router in ${tKill} ms`);
    // add back
    out(`== 7. add ${drain} back`);
    const again = spawnDetached(plan.dir, pd.id, pd.host, pd.ns, pd.argv);
    st.processes = st.processes.map((p) => (p.id === pd.id ? again : p));
    writeState(st);
    const tAdd = await waitHops(plan, [drain, ...rest], 30_000);
    out(`  announced again ${tAdd} ms after its start (BIRD up, BGP session, first checks)`);
    out('', 'waiting for the downloads to finish …');
    await finished;

    const want = patternSha256(BYTES);
    const broken: number[] = [];
    for (let i = 1; i <= FLOWS; i++) {
      const f = join(dir, `f${i}`);
      const rc = existsSync(join(dir, `rc${i}`)) ? readFileSync(join(dir, `rc${i}`), 'utf8').trim() : 'none';
      const sum = existsSync(f) ? createHash('sha256').update(readFileSync(f)).digest('hex') : '';
      if (rc !== '0' || sum !== want) broken.push(i);
    }
    const final = await Promise.all(dirs.map((d) => forwarded(plan as LabPlan, d)));
    out(
      '',
      '== 8. per director',
      ...dirs.map(
        (d, i) =>
          `  ${d.padEnd(6)} forwarded ${String((early[i] ?? 0) - (before[i] ?? 0)).padStart(6)} packets in the first 1.5 s; ${
            d === kill
              ? 'killed'
              : d === drain
                ? `drained, re-added (now ${final[i] ?? '?'})`
                : `now ${final[i] ?? '?'}`
          }`,
      ),
    );
    survived = `flows survived: ${FLOWS - broken.length}/${FLOWS}`;
    if (broken.length) problems.push(`broken flows: ${broken.join(' ')}`);
  } catch (err) {
    problems.push((err as Error).message);
  } finally {
    if (!o.keep) {
      const p = plan ?? planFor(await loadLabConfig(o.configFile), o);
      out('', '== 9. lab down');
      await labDown({ prefix: p.prefix, stateDir: p.cfg.stateDir, out });
    }
  }
  res.ok = problems.length === 0;
  if (!res.ok) out('', `demo FAILED:\n${problems.map((p) => `  ✗ ${p}`).join('\n')}`);
  // the last line
  out('', survived || `flows survived: 0/${FLOWS} (the demo stopped before the flows ran)`);
  return res;
}
