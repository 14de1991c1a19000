/**
 * Thrown errors are TierlbError subclasses with a stable code: one thrown error of each room converted to the family
 * (common, l4, director, ha, overlay, lab).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { AddressError, canonicalAddr } from '../src/common/addr.js';
import { ManualClock } from '../src/common/clock.js';
import { TierlbError } from '../src/common/errors.js';
import { request } from '../src/director/client.js';
import { runDirector } from '../src/director/daemon.js';
import { DirectorError } from '../src/director/errors.js';
import { RemoteTable } from '../src/director/ha.js';
import { startMetrics } from '../src/director/metrics.js';
import { CheckTableError } from '../src/ha/checks/manager.js';
import { SyncDaemonError, startFromAdm } from '../src/ha/sync/daemon.js';
import { VrrpError } from '../src/ha/vrrp/errors.js';
import { pickSource } from '../src/ha/vrrp/instance.js';
import { instanceDefaults } from '../src/ha/vrrp/types.js';
import { AdmExit, fail } from '../src/l4/adm/exit.js';
import type { ParsedDaemon } from '../src/l4/adm/parse.js';
import { runAdm } from '../src/l4/adm/run.js';
import { AdmRequestError, parseAdmRequest } from '../src/l4/adm/server.js';
import { TableTarget } from '../src/l4/adm/table-target.js';
import { DatapathError } from '../src/l4/datapath/errors.js';
import { Forwarder } from '../src/l4/datapath/forward.js';
import { Engine } from '../src/l4/engine.js';
import { LAB_DEFAULTS } from '../src/lab/config-schema.js';
import { vrrpYaml } from '../src/lab/derive.js';
import { LabError } from '../src/lab/errors.js';
import { sh } from '../src/lab/netns.js';
import { PcapError, parsePcap } from '../src/lab/pcap.js';
import { buildPlan, host } from '../src/lab/plan.js';
import { traceContext } from '../src/lab/trace-run.js';
import { OverlayStateError, parseIpLinks } from '../src/overlay/state.js';
import { ExecError } from '../src/sys/errors.js';

function tmp(t: ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'tierlb-errors-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** t.throws for a TierlbError of class C with the given code. */
function throwsCode(t: ExecutionContext, fn: () => unknown, C: new (...a: never[]) => TierlbError, code: string) {
  const e = t.throws(fn, { instanceOf: C });
  t.true(e instanceof TierlbError, `${e?.name} is a TierlbError`);
  t.is(e?.code, code);
}

test('common: an invalid address', (t) => {
  throwsCode(t, () => canonicalAddr('10.0.0'), AddressError, 'EADDR_INVALID');
});

test('l4 adm: AdmExit keeps the exit status apart from its code', (t) => {
  const e = t.throws(() => fail(2, 'bad'), { instanceOf: AdmExit });
  t.true(e instanceof TierlbError);
  t.is(e?.code, 'EADM_EXIT');
  t.is(e?.status, 2);
  t.is(e?.stderr, 'bad\n');
  // runAdm still exits with the status: -x below -y is ERANGE (an AdmError), a bad option 255, -h 0
  const target = new TableTarget();
  t.is(runAdm(['-A', '-t', '10.0.0.1:80'], target).code, 0);
  const r = runAdm(['-a', '-t', '10.0.0.1:80', '-r', '10.0.1.1', '-x', '1', '-y', '2'], target);
  t.deepEqual(r, { code: 255, stdout: '', stderr: 'Numerical result out of range\n' });
  t.is(runAdm(['-A', '--bogus'], target).code, 255, '"Try ... -h"');
  t.is(runAdm(['-h'], target).code, 0, '-h');
});

test('l4 adm: a bad admin-socket request', (t) => {
  throwsCode(t, () => parseAdmRequest('{"argv": 1}'), AdmRequestError, 'EADM_REQUEST');
  throwsCode(t, () => parseAdmRequest('not json'), AdmRequestError, 'EADM_REQUEST');
});

test('l4 datapath: out of real-server marks', (t) => {
  const f = new Forwarder(new Engine({ clock: new ManualClock(0) }), { verdict: () => {}, sendRaw: () => true });
  for (let i = 0; i < 3000; i++) f.markFor(`10.${i >> 8}.${i & 255}.1`);
  t.is(f.markFor('10.0.0.1'), f.markFor('10.0.0.1'), 'a known address keeps its mark');
  throwsCode(t, () => f.markFor('192.0.2.1'), DatapathError, 'EDEST_MARKS_FULL');
});

test('director: a bad metrics address, a check table without the service', async (t) => {
  const e = await t.throwsAsync(startMetrics('nowhere:http', { snapshot: async () => ({}) } as never), {
    instanceOf: DirectorError,
  });
  t.is(e?.code, 'EDIRECTOR_METRICS_ADDRESS');
  const remote = new RemoteTable(async () => ({ code: 0, stderr: '' }), []);
  const id = { kind: 'tcp', family: 4, addr: '10.0.0.1', port: 80 } as const;
  throwsCode(
    t,
    () => remote.addDest(id, { addr: '10.0.1.1', port: 80, fwd: 'route', weight: 1, uThreshold: 0, lThreshold: 0 }),
    CheckTableError,
    'ECHECK_NO_SERVICE',
  );
});

test('director: the admin-socket client times out or gets no answer; a second director is refused', async (t) => {
  const sock = join(tmp(t), 'director.sock');
  const server = createServer((s) => {
    s.once('data', (d) => {
      const line = d.toString();
      if (line.includes('"op":"ping"')) s.end('{"ok":true}\n');
      else if (line.includes('"op":"rules"')) s.end();
      // stats: never answered
    });
  });
  await new Promise<void>((r) => server.listen(sock, r));
  t.teardown(() => server.close());
  const timeout = await t.throwsAsync(request(sock, { op: 'stats' }, 50), { instanceOf: DirectorError });
  t.is(timeout?.code, 'EDIRECTOR_TIMEOUT');
  const closed = await t.throwsAsync(request(sock, { op: 'rules' }), { instanceOf: DirectorError });
  t.is(closed?.code, 'EDIRECTOR_NO_ANSWER');
  // refused before anything starts (no data path, no sysctl)
  const running = await t.throwsAsync(runDirector({ socket: sock, queue: 0, sysctl: false }), {
    instanceOf: DirectorError,
  });
  t.is(running?.code, 'EDIRECTOR_RUNNING');
  t.regex(running?.message ?? '', /already answers on .*another --socket/);
});

test('ha: a VRRP instance without a source address; a bad sync daemon command', (t) => {
  const c = instanceDefaults({
    name: 'VI_1',
    interface: 'eth0',
    virtualRouterId: 1,
    virtualIpaddress: [{ addr: '10.0.0.100', prefixLen: 24 }],
  });
  const ifc = { name: 'eth0', index: 2, mac: Buffer.alloc(6), primaryIp: undefined, addresses: [], addresses6: [] };
  throwsCode(t, () => pickSource(c, ifc), VrrpError, 'EVRRP_NO_SOURCE');
  throwsCode(t, () => startFromAdm({ state: '' } as ParsedDaemon), SyncDaemonError, 'EINVAL');
});

test('overlay: ip -j output that is not a JSON array', (t) => {
  throwsCode(t, () => parseIpLinks('{}'), OverlayStateError, 'EOVERLAY_STATE');
  throwsCode(t, () => parseIpLinks('Usage: ip link'), OverlayStateError, 'EOVERLAY_STATE');
});

test('lab: unknown hosts and ports, a failed command, a file that is not a pcap', (t) => {
  const plan = buildPlan(LAB_DEFAULTS);
  throwsCode(t, () => host(plan, 'nosuch'), LabError, 'ELAB_NO_HOST');
  throwsCode(t, () => vrrpYaml(plan, plan.cfg.clients[0].name), LabError, 'ELAB_NO_HOST');
  throwsCode(t, () => traceContext(plan, 1), LabError, 'ELAB_NO_LISTENER');
  // the lab's commands run through src/sys: a failed one is an ExecError that keeps its stderr
  throwsCode(t, () => sh(process.execPath, ['-e', 'process.exit(3)']), ExecError, 'EEXEC_FAILED');
  throwsCode(t, () => parsePcap(Buffer.alloc(40)), PcapError, 'EPCAP_FORMAT');
});
