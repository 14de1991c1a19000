/** CheckManager against a real ServiceTable, with fake probes and manual timers: nothing sleeps. */
import test from 'ava';
import { pino } from 'pino';
import {
  type CheckedService,
  CheckManager,
  type CheckManagerOptions,
  type ProbeRunner,
} from '../src/ha/checks/manager.js';
import { listenerPortChecks, type ProbeTarget } from '../src/ha/checks/probes.js';
import { ManualTimers } from '../src/ha/checks/timers.js';
import type { RealServerCheck, VirtualServerHealth } from '../src/ha/checks-types.js';
import type { ServiceId } from '../src/l4/service.js';
import { ServiceTable } from '../src/l4/services.js';

const quiet = pino({ level: 'silent' });
const VIP: ServiceId = { kind: 'tcp', family: 4, addr: '10.0.0.100', port: 80 };

const tcpCheck = (o: Partial<RealServerCheck> = {}): RealServerCheck =>
  ({ type: 'tcp', connectTimeout: 5, retry: 1, delayBeforeRetry: 1, ...o }) as RealServerCheck;

function fixture(o: { health?: Partial<VirtualServerHealth>; checks?: RealServerCheck[]; inhibit?: boolean } = {}) {
  const timers = new ManualTimers();
  const table = new ServiceTable({ clock: timers.clock, random: Math.random });
  table.addService({ id: VIP, sched: 'wrr', flags: 0, timeout: 0, netmask: 0xffffffff });
  const up = new Map<string, boolean>([
    ['10.0.0.1', true],
    ['10.0.0.2', true],
  ]);
  const exit = new Map<string, number>();
  const targets: ProbeTarget[] = [];
  const probes: ProbeRunner = {
    tcp: async (t) => {
      targets.push(t);
      return up.get(t.host) ? { ok: true } : { ok: false, reason: 'ECONNREFUSED' };
    },
    http: async (t) => ({ ok: !!up.get(t.host) }),
    misc: async (cmd) => {
      const code = exit.get(cmd) ?? 0;
      return { ok: code === 0, exitCode: code };
    },
  };
  const checks = o.checks ?? [tcpCheck()];
  const svc: CheckedService = {
    spec: { id: VIP },
    dests: [
      { addr: '10.0.0.1', port: 80, fwd: 'route', weight: 2, uThreshold: 0, lThreshold: 0 },
      { addr: '10.0.0.2', port: 80, fwd: 'route', weight: 1, uThreshold: 0, lThreshold: 0 },
    ],
    health: {
      delayLoop: 6,
      quorum: 1,
      hysteresis: 0,
      alpha: false,
      omega: false,
      haSuspend: false,
      realServers: ['10.0.0.1', '10.0.0.2'].map((addr) => ({
        addr,
        port: 80,
        inhibitOnFailure: o.inhibit ?? false,
        checks,
      })),
      ...o.health,
    },
  };
  const weights = () =>
    Object.fromEntries((table.get(VIP)?.dests ?? []).map((d) => [d.addr, d.weight])) as Record<string, number>;
  const manager = (extra: Partial<CheckManagerOptions> = {}) =>
    new CheckManager({ table, services: [svc], timers, probes, log: quiet, ...extra });
  return { timers, table, up, exit, targets, probes, svc, weights, manager };
}

const flush = () => new Promise((r) => setImmediate(r));

/** Advance the manual clock by `ms`, letting each probe's promise settle before the next timer is due. */
async function advance(timers: ManualTimers, ms: number): Promise<void> {
  const end = timers.clock.now() + ms;
  for (;;) {
    await flush();
    const due = timers.nextDue();
    if (due > end) break;
    timers.advance(due - timers.clock.now());
  }
  timers.advance(end - timers.clock.now());
  await flush();
}

test('servers go in at start; a stopped one is removed after its retry, and comes back', async (t) => {
  const f = fixture();
  const m = f.manager();
  const actions: string[] = [];
  m.on('action', (_id, a) => actions.push(`${a.op} ${a.addr}`));
  m.start();
  t.deepEqual(f.weights(), { '10.0.0.1': 2, '10.0.0.2': 1 });
  f.up.set('10.0.0.1', false);
  await advance(f.timers, 1000); // bootstrap: first check fails, retry in 1 s
  t.deepEqual(f.weights(), { '10.0.0.1': 2, '10.0.0.2': 1 });
  await advance(f.timers, 1000); // the retry fails: removed
  t.deepEqual(f.weights(), { '10.0.0.2': 1 });
  t.deepEqual(m.status()[0].realServers[0], {
    addr: '10.0.0.1',
    port: 80,
    alive: false,
    inTable: false,
    weight: 0,
    checkers: [{ kind: 'tcp', up: false, retryIt: 0 }],
  });
  f.up.set('10.0.0.1', true);
  await advance(f.timers, 6000);
  t.deepEqual(f.weights(), { '10.0.0.1': 2, '10.0.0.2': 1 });
  t.deepEqual(actions, ['add 10.0.0.1', 'add 10.0.0.2', 'del 10.0.0.1', 'add 10.0.0.1']);
  m.stop();
  t.is(f.timers.size, 0);
});

test('down within delay_loop × (retry + 1) of the failure', async (t) => {
  const f = fixture({ checks: [tcpCheck({ retry: 2, delayBeforeRetry: 2 })] });
  const m = f.manager();
  m.start();
  await advance(f.timers, 1000);
  f.up.set('10.0.0.2', false);
  // next regular check at +6 s, then two retries 2 s apart
  await advance(f.timers, 6000 + 2000);
  t.is(f.weights()['10.0.0.2'], 1, 'still in at full weight before the last retry');
  await advance(f.timers, 2000);
  t.false('10.0.0.2' in f.weights());
  m.stop();
});

test('inhibit_on_failure keeps the server in the table with weight 0', async (t) => {
  const f = fixture({ inhibit: true, checks: [tcpCheck({ retry: 0 })] });
  const m = f.manager();
  m.start();
  f.up.set('10.0.0.1', false);
  await advance(f.timers, 1000);
  t.deepEqual(f.weights(), { '10.0.0.1': 0, '10.0.0.2': 1 });
  f.up.set('10.0.0.1', true);
  await advance(f.timers, 6000);
  t.deepEqual(f.weights(), { '10.0.0.1': 2, '10.0.0.2': 1 });
  m.stop();
});

test('sorry server in the table while nothing is up, out when a server returns; quorum scripts run', async (t) => {
  const f = fixture({
    checks: [tcpCheck({ retry: 0 })],
    health: { sorryServer: { addr: '10.0.9.9', port: 80, inhibit: false }, quorumUp: 'up.sh', quorumDown: 'down.sh' },
  });
  const ran: string[] = [];
  const m = f.manager({
    runScript: (c) => ran.push(c),
  });
  m.start();
  f.up.set('10.0.0.1', false);
  f.up.set('10.0.0.2', false);
  await advance(f.timers, 1000);
  t.deepEqual(f.weights(), { '10.0.9.9': 1 });
  t.true(m.status()[0].sorryActive);
  t.is(f.table.get(VIP)?.dests[0].fwd, 'route');
  f.up.set('10.0.0.2', true);
  await advance(f.timers, 6000);
  t.deepEqual(f.weights(), { '10.0.0.2': 1 });
  t.deepEqual(ran, ['up.sh', 'down.sh', 'up.sh']);
  m.stop();
});

test('alpha: nothing goes in before the first successful check', async (t) => {
  const f = fixture({ health: { alpha: true } });
  const m = f.manager();
  f.up.set('10.0.0.2', false);
  m.start();
  t.deepEqual(f.weights(), {});
  await advance(f.timers, 1000);
  t.deepEqual(f.weights(), { '10.0.0.1': 2 });
  m.stop();
});

test('DR marks: probes go to VIP:port with the real server mark; connect_ip overrides', async (t) => {
  const f = fixture();
  const marks: Record<string, number> = { '10.0.0.1': 0x1001, '10.0.0.2': 0x1002 };
  const m = f.manager({
    markOf: (_svc, d) => marks[d.addr],
  });
  m.start();
  await advance(f.timers, 1000);
  t.deepEqual(
    f.targets.map((x) => [x.host, x.port, x.mark, x.timeoutMs]),
    [
      ['10.0.0.100', 80, 0x1001, 5000],
      ['10.0.0.100', 80, 0x1002, 5000],
    ],
  );
  m.stop();
  const g = fixture({ checks: [tcpCheck({ connectIp: '192.0.2.1', connectPort: 8080, bindTo: '10.0.0.50' })] });
  const m2 = g.manager();
  m2.start();
  await advance(g.timers, 1000);
  t.like(g.targets[0], { host: '192.0.2.1', port: 8080, bindTo: '10.0.0.50', mark: undefined });
  m2.stop();
});

test('misc_dynamic through the manager: the exit code sets the weight', async (t) => {
  const misc = { type: 'misc', path: '/usr/local/bin/chk', dynamic: true } as RealServerCheck;
  const f = fixture({ checks: [misc] });
  const m = f.manager();
  m.start();
  f.exit.set('/usr/local/bin/chk', 12);
  await advance(f.timers, 1000);
  t.deepEqual(f.weights(), { '10.0.0.1': 10, '10.0.0.2': 10 });
  f.exit.set('/usr/local/bin/chk', 1);
  await advance(f.timers, 6000);
  t.deepEqual(f.weights(), {});
  m.stop();
});

test('warmup spreads the first checks; stop() cancels everything', async (t) => {
  const f = fixture({ checks: [tcpCheck({ warmup: 10 })] });
  const m = f.manager({
    random: () => 0.5,
  });
  m.start();
  await advance(f.timers, 5999);
  t.is(f.targets.length, 0);
  await advance(f.timers, 1);
  t.is(f.targets.length, 2);
  m.stop();
  await advance(f.timers, 60_000);
  t.is(f.targets.length, 2);
});

test('listener ports of an LB node: one TCP_CHECK per port; one closed port takes the node out', async (t) => {
  const f = fixture({ checks: listenerPortChecks([80, 443, 8404], { retry: 0 }) });
  const closed = new Set<string>();
  f.probes.tcp = async (x) => {
    f.targets.push(x);
    return closed.has(`${x.host}:${x.port}`) ? { ok: false, reason: 'ECONNREFUSED' } : { ok: true };
  };
  const m = f.manager();
  m.start();
  await advance(f.timers, 1000);
  t.deepEqual(
    f.targets.filter((x) => x.host === '10.0.0.1').map((x) => x.port),
    [80, 443, 8404],
  );
  closed.add('10.0.0.1:8404');
  await advance(f.timers, 6000);
  t.deepEqual(f.weights(), { '10.0.0.2': 1 });
  closed.clear();
  await advance(f.timers, 6000);
  t.deepEqual(f.weights(), { '10.0.0.1': 2, '10.0.0.2': 1 });
  m.stop();
});

test('logs name the service as everywhere else (IPv6 bracketed: TCP [2001:db8::100]:80)', async (t) => {
  const id: ServiceId = { kind: 'tcp', family: 6, addr: '2001:db8::100', port: 80 };
  const timers = new ManualTimers();
  const table = new ServiceTable({ clock: timers.clock, random: Math.random });
  table.addService({ id, sched: 'wrr', flags: 0, timeout: 0, netmask: 128 });
  const lines: { msg: string; service?: string }[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  const m = new CheckManager({
    table,
    timers,
    log,
    probes: { tcp: async () => ({ ok: true }), http: async () => ({ ok: true }), misc: async () => ({ ok: true }) },
    services: [
      {
        spec: { id },
        dests: [{ addr: '2001:db8::1', port: 80, fwd: 'route', weight: 1, uThreshold: 0, lThreshold: 0 }],
        health: {
          ...fixture().svc.health,
          realServers: [{ addr: '2001:db8::1', port: 80, inhibitOnFailure: false, checks: [tcpCheck()] }],
        },
      },
    ],
  });
  m.start();
  m.stop();
  t.deepEqual(
    lines.map((l) => [l.msg, l.service]),
    [['gained quorum', 'TCP [2001:db8::100]:80']],
  );
});

test('ManualTimers: due timers run in due order, those due together in the order they were set', (t) => {
  const timers = new ManualTimers();
  const ran: string[] = [];
  timers.set(20, () => ran.push('b@20'));
  timers.set(10, () => ran.push('a@10'));
  timers.set(20, () => ran.push('c@20'));
  const gone = timers.set(5, () => ran.push('cleared'));
  timers.clear(gone);
  timers.set(10, () => timers.set(10, () => ran.push('d@20 (set at 10)')));
  timers.advance(25);
  t.deepEqual(ran, ['a@10', 'b@20', 'c@20', 'd@20 (set at 10)']);
  t.is(timers.clock.now(), 25);
  t.is(timers.size, 0);
});
