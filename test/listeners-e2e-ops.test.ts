/**
 * Operations through the real `tierlb listeners`: health checks under load, a killed worker, reload under load,
 * a refused reload, stats and /metrics.
 */
import test from 'ava';
import { controlRequest } from '../src/listeners/control.js';
import {
  freePort,
  type HttpBackend,
  httpBackend,
  load,
  type Running,
  request,
  sleep,
  startListeners,
  until,
} from './listeners-helpers.js';

let run: Running;
let port: number;
let statsPort: number;
const bs: HttpBackend[] = [];

const INTER = 300;
const FALL = 2;
const RISE = 2;

function config(servers: HttpBackend[], extra = ''): string {
  return `listeners:
  workers: 2
  stats: { bind: 127.0.0.1:${statsPort} }
  defaults:
    timeout: { connect: 1s, server: 5s }
    retries: 3
    redispatch: true
  listen:
    - name: web
      bind: 127.0.0.1:${port}
      mode: http${extra}
      check: { type: http, uri: /health, expect: { status: 200 }, inter: ${INTER}ms, rise: ${RISE}, fall: ${FALL} }
      servers:
${servers.map((b) => `        - { name: ${b.name}, address: ${b.address} }`).join('\n')}
`;
}

async function row(server: string) {
  return (await run.statsJson()).find((x) => x.pxname === 'web' && x.svname === server)!;
}

test.before(async () => {
  port = await freePort();
  statsPort = await freePort();
  for (const n of ['s1', 's2', 's3']) bs.push(await httpBackend(n));
  run = await startListeners(config(bs));
});

test.after.always(async () => {
  await run?.stop();
  for (const b of bs) await b.close();
});

test.serial(
  'a backend killed under load: DOWN after fall×inter, no failed request, UP again after rise×inter',
  async (t) => {
    const url = `http://127.0.0.1:${port}/`;
    await until(async () => (await row('s2')).check_status === 'L7OK', 3000);
    const l = load(url, { concurrency: 3 });
    await sleep(700);
    const victim = bs[1]!;
    const victimPort = victim.port;
    await victim.close();
    const killedAt = l.since();
    t.true(await until(async () => (await row('s2')).status === 'DOWN', (FALL + 2) * INTER + 2000), 'marked DOWN');
    const downAt = l.since();
    await sleep(800);
    const afterDown = { ...l.res.bodies };
    await sleep(600);
    // nothing reaches s2 once it is down
    t.is(l.res.bodies.s2 ?? 0, afterDown.s2 ?? 0);
    const fresh = await httpBackend('s2', '127.0.0.1', victimPort);
    bs[1] = fresh;
    t.true(await until(async () => (await row('s2')).status === 'UP', (RISE + 2) * INTER + 2000), 'UP again');
    await until(() => fresh.hits > 0, 3000);
    const res = await l.stop();
    t.log(
      `killed at ${killedAt} ms, DOWN seen at ${downAt} ms; ${res.ok} ok, ${res.fail} failed`,
      res.errors.slice(0, 3),
    );
    t.is(res.fail, 0, 'retries/redispatch hide the dead server');
    t.true(fresh.hits > 0, 'traffic back on s2');
    const s2 = await row('s2');
    t.true(Number(s2.chkdown) >= 1);
    t.true(Number(s2.chkfail) >= FALL);
  },
);

test.serial('a killed worker is restarted and the node keeps serving', async (t) => {
  const before = await run.workerPids();
  t.is(before.length, 2);
  process.kill(before[0]!, 'SIGKILL');
  t.true(
    await until(async () => {
      const now = await run.workerPids();
      return now.length === 2 && !now.includes(before[0]!);
    }, 10_000),
  );
  for (let i = 0; i < 10; i++) t.is((await request(`http://127.0.0.1:${port}/`)).status, 200);
});

test.serial('reload during ~10 s of load: zero failed requests, new workers, new config in effect', async (t) => {
  const url = `http://127.0.0.1:${port}/`;
  const before = await run.workerPids();
  const ka = load(url, { concurrency: 3 });
  const fresh = load(url, { concurrency: 1, keepAlive: false });
  await sleep(2000);
  run.writeConfig(config(bs, '\n      balance: leastconn'));
  t.is(await run.reload(), 'ok\n');
  await sleep(3000);
  run.writeConfig(config(bs, '\n      balance: roundrobin'));
  t.is(await run.reload(), 'ok\n');
  await sleep(4000);
  const r1 = await ka.stop();
  const r2 = await fresh.stop();
  t.log(`keep-alive: ${r1.ok} ok ${r1.fail} failed; new connections: ${r2.ok} ok ${r2.fail} failed`);
  t.is(r1.fail + r2.fail, 0, [...r1.errors, ...r2.errors].slice(0, 5).join('; '));
  t.true(r1.ok > 100);
  const after = await run.workerPids();
  t.is(after.length, 2);
  t.false(
    after.some((p) => before.includes(p)),
    'all workers replaced',
  );
});

test.serial('a bad config is refused with file:line and the old config keeps serving', async (t) => {
  const good = config(bs);
  const bad = good.replace('mode: http', 'mode: http\n      balance: bogus');
  run.writeConfig(bad);
  const answer = await run.reload();
  const line = bad.split('\n').findIndex((l) => l.includes('bogus')) + 1;
  t.regex(answer, /^error\n/);
  t.true(answer.includes(`listeners.yaml:${line}:`), answer);
  t.regex(answer, /unknown balance 'bogus'/);
  const pids = await run.workerPids();
  for (let i = 0; i < 6; i++) t.is((await request(`http://127.0.0.1:${port}/`)).status, 200);
  t.deepEqual(await run.workerPids(), pids);
  run.writeConfig(good);
});

test.serial('stats table and Prometheus /metrics aggregate the workers', async (t) => {
  const table = await run.stats();
  t.regex(table, /^pxname\s+svname\s+status/);
  t.regex(table, /web\s+FRONTEND\s+OPEN/);
  t.regex(table, /web\s+s1\s+UP/);
  const csv = await run.stats('csv');
  t.regex(csv, /^# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,ereq,econ,eresp,wretr,wredis,status/);
  const m = await request(`http://127.0.0.1:${statsPort}/metrics`);
  t.is(m.status, 200);
  t.regex(m.body, /tierlb_server_up\{listener="web",server="s1"\} 1/);
  const tot = /tierlb_listener_sessions_total\{listener="web"\} (\d+)/.exec(m.body);
  t.truthy(tot);
  t.true(Number(tot![1]) > 100);
});

test.serial('a reload while a killed worker is being replaced leaves no worker of the old config behind', async (t) => {
  const [victim] = await run.workerPids();
  process.kill(victim!, 'SIGKILL');
  // the replacement is forked (listed "starting") but not yet listening: reload now
  const starting = await until(async () => /starting/.test(await controlRequest(run.socket, 'workers')), 10_000, 5);
  t.true(starting, 'the replacement was never seen starting');
  t.is(await run.reload(), 'ok\n');
  // the replacement belonged to the replaced generation: it must be drained, not left serving the old config
  t.true(
    await until(async () => (await run.workerPids()).length === 2, 10_000),
    await controlRequest(run.socket, 'workers'),
  );
  const gens = (await controlRequest(run.socket, 'workers'))
    .split('\n')
    .filter((l) => l && !l.includes('draining'))
    .map((l) => /gen=(\d+)/.exec(l)?.[1]);
  t.is(new Set(gens).size, 1, 'every serving worker is of one generation');
});
