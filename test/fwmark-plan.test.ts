/** The director's mangle chain as rendered from a plan (pure). */
import test from 'ava';
import { KernelRules } from '../src/fwmark/kernel.js';
import { DIVERT_MARK, emptyPlan, MARK_PREF, REPLY_MARK, renderChain } from '../src/fwmark/plan.js';
import { recordingRunner } from '../src/sys/recording.js';

const rules = (text: string) => text.split('\n').filter((l) => l.startsWith('-A'));
const hex = (n: number) => `0x${n.toString(16)}`;

test('a port-zero service diverts every port of its VIP, not port 0', (t) => {
  const plan = emptyPlan(0);
  plan.services.push({ kind: 'tcp', family: 4, addr: '10.0.0.100', port: 0, fwmark: 0 });
  plan.services.push({ kind: 'udp', family: 6, addr: '2001:db8::100', port: 53, fwmark: 0 });
  t.deepEqual(rules(renderChain(plan, 4)), [
    `-A TIERLB_DIVERT -d 10.0.0.100/32 -p tcp -j MARK --set-xmark ${hex(DIVERT_MARK)}/0xffffffff`,
    `-A TIERLB_DIVERT -m mark --mark ${hex(DIVERT_MARK)} -j NFQUEUE --queue-num 0`,
  ]);
  t.deepEqual(rules(renderChain(plan, 6)), [
    `-A TIERLB_DIVERT -d 2001:db8::100/128 -p udp -m udp --dport 53 -j MARK --set-xmark ${hex(DIVERT_MARK)}/0xffffffff`,
    `-A TIERLB_DIVERT -m mark --mark ${hex(DIVERT_MARK)} -j NFQUEUE --queue-num 0`,
  ]);
});

test('NAT replies of a real server without a port (fwmark service, port 0) are marked from any source port', (t) => {
  const plan = emptyPlan(1, 2);
  plan.services.push({ kind: 'fwm', family: 4, addr: '0.0.0.0', port: 0, fwmark: 7 });
  plan.natSources.push({ family: 4, protocol: 'tcp', addr: '10.0.0.11', port: 0 });
  plan.natSources.push({ family: 4, protocol: 'udp', addr: '10.0.0.11', port: 0 });
  plan.natSources.push({ family: 4, protocol: 'tcp', addr: '10.0.0.12', port: 8080 });
  t.deepEqual(rules(renderChain(plan, 4)), [
    '-A TIERLB_DIVERT -m mark --mark 0x7 -j NFQUEUE --queue-balance 1:2',
    `-A TIERLB_DIVERT -s 10.0.0.11/32 -p tcp -j MARK --set-xmark ${hex(REPLY_MARK)}/0xffffffff`,
    `-A TIERLB_DIVERT -s 10.0.0.11/32 -p udp -j MARK --set-xmark ${hex(REPLY_MARK)}/0xffffffff`,
    `-A TIERLB_DIVERT -s 10.0.0.12/32 -p tcp -m tcp --sport 8080 -j MARK --set-xmark ${hex(REPLY_MARK)}/0xffffffff`,
    `-A TIERLB_DIVERT -m mark --mark ${hex(REPLY_MARK)} -j NFQUEUE --queue-balance 1:2`,
  ]);
});

test('fwmark services: the mark rules of their listener ports come before the queue rules that match the marks', (t) => {
  const plan = emptyPlan(0);
  plan.services.push({ kind: 'fwm', family: 4, addr: '0.0.0.0', port: 0, fwmark: 0x2711 });
  plan.services.push({ kind: 'fwm', family: 4, addr: '0.0.0.0', port: 0, fwmark: 0x2710 });
  plan.services.push({ kind: 'tcp', family: 4, addr: '10.77.1.100', port: 8080, fwmark: 0 });
  plan.matches = [
    { family: 4, addr: '10.77.1.100', protocol: 'tcp', port: 80, mark: 0x2710 },
    { family: 4, addr: '10.77.1.100', protocol: 'udp', port: 443, mark: 0x2711 },
    { family: 4, addr: '10.77.1.100', protocol: 'tcp', port: 443, mark: 0x2711 },
    // a mark no service of the family has (deleted live with tierlb adm): no rule
    { family: 4, addr: '10.77.1.100', protocol: 'tcp', port: 22, mark: 0x2712 },
    { family: 6, addr: '2001:db8::100', protocol: 'tcp', port: 80, mark: 0x2710 },
  ];
  t.deepEqual(rules(renderChain(plan, 4)), [
    '-A TIERLB_DIVERT -d 10.77.1.100/32 -p tcp -m tcp --dport 80 -j MARK --set-xmark 0x2710/0xffffffff',
    '-A TIERLB_DIVERT -d 10.77.1.100/32 -p udp -m udp --dport 443 -j MARK --set-xmark 0x2711/0xffffffff',
    '-A TIERLB_DIVERT -d 10.77.1.100/32 -p tcp -m tcp --dport 443 -j MARK --set-xmark 0x2711/0xffffffff',
    '-A TIERLB_DIVERT -m mark --mark 0x2710 -j NFQUEUE --queue-num 0',
    '-A TIERLB_DIVERT -m mark --mark 0x2711 -j NFQUEUE --queue-num 0',
    `-A TIERLB_DIVERT -d 10.77.1.100/32 -p tcp -m tcp --dport 8080 -j MARK --set-xmark ${hex(DIVERT_MARK)}/0xffffffff`,
    `-A TIERLB_DIVERT -m mark --mark ${hex(DIVERT_MARK)} -j NFQUEUE --queue-num 0`,
  ]);
  // the IPv6 chain has no fwmark service, so no mark rule either
  t.deepEqual(rules(renderChain(plan, 6)), []);
  // the whole chain in one transaction: declared, flushed, refilled
  t.deepEqual(renderChain(plan, 4).split('\n').slice(0, 3), ['*mangle', ':TIERLB_DIVERT - [0:0]', '-F TIERLB_DIVERT']);
});

test('KernelRules: a DR real server gets one mark rule and route; removed when it leaves the plan', async (t) => {
  const run = recordingRunner((argv) => {
    if (argv.includes('get')) return { code: 0, stdout: '[{"dev":"eth1"}]', stderr: '' };
    if (argv.includes('show')) return { code: 0, stdout: '[]', stderr: '' };
    return { code: 0, stdout: '', stderr: '' };
  });
  const k = new KernelRules(run);
  const ip = (c: string) => /^ip (-j )?-4 (rule|route) (get|replace|add|del|flush) .*(10\.0\.0\.11|5000)/.test(c);
  const plan = emptyPlan(0);
  plan.routes.push({ family: 4, rip: '10.0.0.11', mark: 0x544c0100, table: 5000 });
  await k.install(plan);
  t.deepEqual(run.lines().filter(ip), [
    'ip -j -4 route get 10.0.0.11',
    'ip -4 route replace default via 10.0.0.11 dev eth1 onlink table 5000',
    `ip -4 rule del pref ${MARK_PREF} fwmark ${0x544c0100} lookup 5000`,
    `ip -4 rule add pref ${MARK_PREF} fwmark ${0x544c0100} lookup 5000`,
  ]);
  run.clear();
  await k.apply(emptyPlan(0));
  t.deepEqual(run.lines().filter(ip), [
    `ip -4 rule del pref ${MARK_PREF} fwmark ${0x544c0100} lookup 5000`,
    'ip -4 route flush table 5000',
  ]);
});
