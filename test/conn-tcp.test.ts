import test from 'ava';
import {
  nextTcpState,
  TCP_DEFAULT_TIMEOUTS_MS,
  TCP_STATE_ACTIVE,
  TCP_STATE_NAMES,
  type TcpDir,
  tcpStateByName,
  tcpStateIdx,
} from '../src/l4/conn/tcp.js';
import { ACK, FIN, PSH, RST, SYN } from './engine-fixture.js';

// The kernel's tables (ip_vs_proto_tcp.c), transcribed independently of src/ as two-letter names:
// columns NO ES SS SR FW TW CL CW LA LI SA, rows syn fin ack rst.
const COLS = ['NO', 'ES', 'SS', 'SR', 'FW', 'TW', 'CL', 'CW', 'LA', 'LI', 'SA'];
const FULL: Record<string, string> = {
  NO: 'NONE',
  ES: 'ESTABLISHED',
  SS: 'SYN_SENT',
  SR: 'SYN_RECV',
  FW: 'FIN_WAIT',
  TW: 'TIME_WAIT',
  CL: 'CLOSE',
  CW: 'CLOSE_WAIT',
  LA: 'LAST_ACK',
  LI: 'LISTEN',
  SA: 'SYNACK',
};
const ROW_FLAGS: Record<string, number> = { syn: SYN, fin: FIN, ack: ACK, rst: RST };

const NORMAL: Record<TcpDir, Record<string, string>> = {
  input: {
    syn: 'SR ES ES SR SR SR SR SR SR SR SR',
    fin: 'CL CW SS TW TW TW CL CW LA LI TW',
    ack: 'ES ES SS ES FW TW CL CW CL LI ES',
    rst: 'CL CL CL SR CL CL CL CL LA LI SR',
  },
  output: {
    syn: 'SS ES SS SR SS SS SS SS SS LI SR',
    fin: 'TW FW SS TW FW TW CL TW LA LI TW',
    ack: 'ES ES SS ES FW TW CL CW LA ES ES',
    rst: 'CL CL SS CL CL TW CL CL CL CL CL',
  },
  'input-only': {
    syn: 'SR ES ES SR SR SR SR SR SR SR SR',
    fin: 'CL FW SS TW FW TW CL CW LA LI TW',
    ack: 'ES ES SS ES FW TW CL CW CL LI ES',
    rst: 'CL CL CL SR CL CL CL CL LA LI CL',
  },
};
const DOS: Record<TcpDir, Record<string, string>> = {
  input: {
    syn: 'SR ES ES SR SR SR SR SR SR SR SA',
    fin: 'CL CW SS TW TW TW CL CW LA LI SA',
    ack: 'ES ES SS SR FW TW CL CW CL LI SA',
    rst: 'CL CL CL SR CL CL CL CL LA LI CL',
  },
  output: {
    syn: 'SS ES SS SA SS SS SS SS SS LI SA',
    fin: 'TW FW SS TW FW TW CL TW LA LI TW',
    ack: 'ES ES SS ES FW TW CL CW LA ES ES',
    rst: 'CL CL SS CL CL TW CL CL CL CL CL',
  },
  'input-only': {
    syn: 'SA ES ES SR SA SA SA SA SA SA SA',
    fin: 'CL FW SS TW FW TW CL CW LA LI TW',
    ack: 'ES ES SS ES FW TW CL CW CL LI ES',
    rst: 'CL CL CL SR CL CL CL CL LA LI CL',
  },
};

for (const [label, tables, secure] of [
  ['normal', NORMAL, false],
  ['secure_tcp', DOS, true],
] as const) {
  for (const dir of ['input', 'output', 'input-only'] as const) {
    test(`${label} ${dir} table: every transition`, (t) => {
      for (const [row, line] of Object.entries(tables[dir])) {
        const to = line.split(' ');
        COLS.forEach((from, i) => {
          const got = TCP_STATE_NAMES[nextTcpState(tcpStateByName(FULL[from]), dir, ROW_FLAGS[row], secure)];
          t.is(got, FULL[to[i]], `${dir} ${row} from ${FULL[from]}`);
        });
      }
    });
  }
}

test('flag priority: rst > syn > fin > ack; nothing → CLOSE', (t) => {
  t.is(tcpStateIdx(RST | SYN | FIN | ACK), 3);
  t.is(tcpStateIdx(SYN | FIN | ACK), 0);
  t.is(tcpStateIdx(FIN | ACK), 1);
  t.is(tcpStateIdx(ACK | PSH), 2);
  t.is(tcpStateIdx(PSH), -1);
  const es = tcpStateByName('ESTABLISHED');
  t.is(TCP_STATE_NAMES[nextTcpState(es, 'input', PSH)], 'CLOSE');
  t.is(TCP_STATE_NAMES[nextTcpState(es, 'input', SYN | ACK)], 'ESTABLISHED');
  t.is(TCP_STATE_NAMES[nextTcpState(es, 'input', RST | ACK)], 'CLOSE');
});

const seq = (dir: (TcpDir | number)[], secure = false): string[] => {
  let s = 0;
  const out: string[] = [];
  for (let i = 0; i < dir.length; i += 2) {
    s = nextTcpState(s, dir[i] as TcpDir, dir[i + 1] as number, secure);
    out.push(TCP_STATE_NAMES[s]);
  }
  return out;
};

test('NAT sequences (input + output tables)', (t) => {
  // client SYN, server SYN+ACK, client ACK, data, client FIN, server ACK, server FIN, client ACK
  t.deepEqual(
    seq([
      'input',
      SYN,
      'output',
      SYN | ACK,
      'input',
      ACK,
      'input',
      ACK | PSH,
      'input',
      FIN | ACK,
      'output',
      ACK,
      'output',
      FIN | ACK,
      'input',
      ACK,
    ]),
    ['SYN_RECV', 'SYN_RECV', 'ESTABLISHED', 'ESTABLISHED', 'CLOSE_WAIT', 'CLOSE_WAIT', 'TIME_WAIT', 'TIME_WAIT'],
  );
  // server closes first
  t.deepEqual(
    seq(['input', SYN, 'output', SYN | ACK, 'input', ACK, 'output', FIN | ACK, 'input', FIN | ACK, 'output', ACK]),
    ['SYN_RECV', 'SYN_RECV', 'ESTABLISHED', 'FIN_WAIT', 'TIME_WAIT', 'TIME_WAIT'],
  );
  // server refuses
  t.deepEqual(seq(['input', SYN, 'output', RST | ACK]), ['SYN_RECV', 'CLOSE']);
  // client resets an established connection
  t.deepEqual(seq(['input', SYN, 'input', ACK, 'input', RST]), ['SYN_RECV', 'ESTABLISHED', 'CLOSE']);
});

test('DR/TUN sequences (input-only table)', (t) => {
  t.deepEqual(
    seq(['input-only', SYN, 'input-only', ACK, 'input-only', ACK | PSH, 'input-only', FIN | ACK, 'input-only', ACK]),
    ['SYN_RECV', 'ESTABLISHED', 'ESTABLISHED', 'FIN_WAIT', 'FIN_WAIT'],
  );
  t.deepEqual(seq(['input-only', SYN, 'input-only', RST]), ['SYN_RECV', 'SYN_RECV']);
  t.deepEqual(seq(['input-only', SYN, 'input-only', ACK, 'input-only', RST]), ['SYN_RECV', 'ESTABLISHED', 'CLOSE']);
  // secure_tcp keeps a SYN that was not answered in SYNACK; the final ACK establishes it
  t.deepEqual(seq(['input-only', SYN, 'input-only', SYN, 'input-only', ACK], true), [
    'SYNACK',
    'SYNACK',
    'ESTABLISHED',
  ]);
  // in the secure input table an ACK alone does not establish a SYN_RECV connection
  t.deepEqual(seq(['input', SYN, 'input', ACK], true), ['SYN_RECV', 'SYN_RECV']);
});

test('default timeouts and active states', (t) => {
  const s = Object.fromEntries(TCP_STATE_NAMES.map((n, i) => [n, TCP_DEFAULT_TIMEOUTS_MS[i] / 1000]));
  t.deepEqual(s, {
    NONE: 2,
    ESTABLISHED: 900,
    SYN_SENT: 120,
    SYN_RECV: 60,
    FIN_WAIT: 120,
    TIME_WAIT: 120,
    CLOSE: 10,
    CLOSE_WAIT: 60,
    LAST_ACK: 30,
    LISTEN: 120,
    SYNACK: 120,
  });
  t.deepEqual(
    TCP_STATE_NAMES.filter((_, i) => TCP_STATE_ACTIVE[i]),
    ['ESTABLISHED', 'SYN_SENT', 'SYN_RECV', 'SYNACK'],
  );
});
