/** Applying a rule plan to the kernel, against src/sys's recording runner: every command, in order, and its errors. */
import test from 'ava';
import { KernelRules } from '../src/fwmark/kernel.js';
import { CHAIN, emptyPlan, LOCAL_PREF, MARK_PREF, renderChain, TABLE_BASE } from '../src/fwmark/plan.js';
import { ExecError } from '../src/sys/errors.js';
import { recordingRunner } from '../src/sys/recording.js';

/** A kernel with `lookup local` at pref 0 and nothing of ours. */
const fresh = (argv: readonly string[]) => {
  const line = argv.join(' ');
  if (/^ip -j -[46] rule show$/.test(line)) return '[{"priority":0,"table":"local"},{"priority":32766,"table":"main"}]';
  if (line.includes('route get')) return '[{"dev":"eth1"}]';
  if (line.includes('-C PREROUTING')) return { code: 1, stderr: 'iptables: Bad rule' };
  return undefined;
};

test('install: chains by iptables-nft-restore --noflush, the PREROUTING jumps, lookup local moved, the DR route', async (t) => {
  const run = recordingRunner(fresh);
  const k = new KernelRules(run);
  const plan = emptyPlan(0);
  plan.services.push({ kind: 'tcp', family: 4, addr: '10.0.0.100', port: 80, fwmark: 0 });
  plan.routes.push({ family: 4, rip: '10.0.0.11', mark: 0x544c0100, table: TABLE_BASE });
  await k.install(plan);
  const T = String(TABLE_BASE);
  t.deepEqual(run.lines(), [
    'iptables-nft-restore --noflush',
    `iptables-nft -t mangle -C PREROUTING -j ${CHAIN}`,
    `iptables-nft -t mangle -A PREROUTING -j ${CHAIN}`,
    'ip -j -4 rule show',
    `ip -4 rule add pref ${LOCAL_PREF} lookup local`,
    'ip -4 rule del pref 0 lookup local',
    'ip6tables-nft-restore --noflush',
    `ip6tables-nft -t mangle -C PREROUTING -j ${CHAIN}`,
    `ip6tables-nft -t mangle -A PREROUTING -j ${CHAIN}`,
    'ip -j -6 rule show',
    `ip -6 rule add pref ${LOCAL_PREF} lookup local`,
    'ip -6 rule del pref 0 lookup local',
    'ip -j -4 rule show',
    'ip -j -6 rule show',
    'iptables-nft-restore --noflush',
    'ip6tables-nft-restore --noflush',
    'ip -j -4 route get 10.0.0.11',
    `ip -4 route replace default via 10.0.0.11 dev eth1 onlink table ${T}`,
    `ip -4 rule del pref ${MARK_PREF} fwmark ${0x544c0100} lookup ${T}`,
    `ip -4 rule add pref ${MARK_PREF} fwmark ${0x544c0100} lookup ${T}`,
  ]);
  // the chain's rules go on stdin, and every command has a timeout
  const restores = run.calls.filter((c) => c.argv[0] === 'iptables-nft-restore');
  t.is(restores[1].input, renderChain(plan, 4));
  t.true(run.calls.every((c) => (c.timeoutMs ?? 0) > 0 && !c.sync));
});

test('a failing iptables-nft-restore throws ExecError with its stderr', async (t) => {
  const run = recordingRunner((argv) =>
    argv[0] === 'iptables-nft-restore'
      ? {
          code: 1,
          stderr:
            'iptables-nft-restore v1.8.9: line 2: CHAIN_ADD failed (No such file or directory)\nError occurred at line: 2\n',
        }
      : fresh(argv),
  );
  const e = await t.throwsAsync(new KernelRules(run).install(emptyPlan(0)), { instanceOf: ExecError });
  t.is(e.code, 'EEXEC_FAILED');
  t.is(
    e.message,
    'iptables-nft-restore --noflush: exit 1: iptables-nft-restore v1.8.9: line 2: CHAIN_ADD failed (No such file or directory) | Error occurred at line: 2',
  );
});

test('apply before install and a real server without a route are typed errors', async (t) => {
  const k = new KernelRules(recordingRunner(fresh));
  t.is((await t.throwsAsync(k.apply(emptyPlan(0))))?.message, 'KernelRules.apply before install');
  const noRoute = recordingRunner((argv) => (argv.includes('get') ? '[{}]' : fresh(argv)));
  const plan = emptyPlan(0);
  plan.routes.push({ family: 4, rip: '10.0.0.11', mark: 0x544c0100, table: TABLE_BASE });
  const e = await t.throwsAsync(new KernelRules(noRoute).install(plan));
  t.like(e, { code: 'EKERNEL_NO_ROUTE' });
});

test('removeAll: the jumps, the chain, our mark rules and tables go; lookup local goes back to pref 0', async (t) => {
  const T = TABLE_BASE + 1;
  let jumps = 2;
  const run = recordingRunner((argv) => {
    const line = argv.join(' ');
    if (line === 'ip -j -4 rule show')
      return JSON.stringify([
        { priority: MARK_PREF, fwmark: '0x544c0101', table: String(T) },
        { priority: LOCAL_PREF, table: 'local' },
      ]);
    if (line.startsWith('ip -j -6 rule show')) return '[{"priority":0,"table":"local"}]';
    if (line === `iptables-nft -t mangle -D PREROUTING -j ${CHAIN}`) return jumps-- > 0 ? '' : { code: 1 };
    if (line.includes('-D PREROUTING')) return { code: 1 };
    return undefined;
  });
  await new KernelRules(run).removeAll();
  t.deepEqual(run.lines(), [
    `iptables-nft -t mangle -D PREROUTING -j ${CHAIN}`,
    `iptables-nft -t mangle -D PREROUTING -j ${CHAIN}`,
    `iptables-nft -t mangle -D PREROUTING -j ${CHAIN}`,
    `iptables-nft -t mangle -F ${CHAIN}`,
    `iptables-nft -t mangle -X ${CHAIN}`,
    `ip6tables-nft -t mangle -D PREROUTING -j ${CHAIN}`,
    `ip6tables-nft -t mangle -F ${CHAIN}`,
    `ip6tables-nft -t mangle -X ${CHAIN}`,
    'ip -j -4 rule show',
    `ip -4 rule del pref ${MARK_PREF} lookup ${T}`,
    `ip -4 route flush table ${T}`,
    'ip -j -6 rule show',
    'ip -j -4 rule show',
    'ip -4 rule add pref 0 lookup local',
    `ip -4 rule del pref ${LOCAL_PREF} lookup local`,
    'ip -j -6 rule show',
  ]);
});
