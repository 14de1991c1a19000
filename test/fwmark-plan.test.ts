/** The director's mangle chain as rendered from a plan (pure). */
import test from 'ava';
import { DIVERT_MARK, emptyPlan, REPLY_MARK, renderChain } from '../src/fwmark/plan.js';

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
