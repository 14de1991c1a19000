/**
 * The IPVS TCP state machine (ip_vs_proto_tcp.c): eleven states, one transition table per direction (input, output,
 * input-only) in a normal and a secure_tcp ("dos") variant, the per-state timeouts and which states count as
 * ActiveConn. The table contents follow current mainline, including its later fixes (an ACK in NONE leads to
 * ESTABLISHED for sloppy_tcp, and SYN_SENT/SYN_RECV/SYNACK count as active like ESTABLISHED).
 */

export const TCP_S_NONE = 0;
export const TCP_S_ESTABLISHED = 1;
export const TCP_S_SYN_SENT = 2;
export const TCP_S_SYN_RECV = 3;
export const TCP_S_FIN_WAIT = 4;
export const TCP_S_TIME_WAIT = 5;
export const TCP_S_CLOSE = 6;
export const TCP_S_CLOSE_WAIT = 7;
export const TCP_S_LAST_ACK = 8;
export const TCP_S_LISTEN = 9;
export const TCP_S_SYNACK = 10;
export const TCP_S_LAST = 11;

export const TCP_STATE_NAMES: readonly string[] = [
  'NONE',
  'ESTABLISHED',
  'SYN_SENT',
  'SYN_RECV',
  'FIN_WAIT',
  'TIME_WAIT',
  'CLOSE',
  'CLOSE_WAIT',
  'LAST_ACK',
  'LISTEN',
  'SYNACK',
];

/** tcp_state_active_table: the states a connection is counted in ActiveConn for. */
export const TCP_STATE_ACTIVE: readonly boolean[] = [
  false, // NONE
  true, // ESTABLISHED
  true, // SYN_SENT
  true, // SYN_RECV
  false, // FIN_WAIT
  false, // TIME_WAIT
  false, // CLOSE
  false, // CLOSE_WAIT
  false, // LAST_ACK
  false, // LISTEN
  true, // SYNACK
];

/** Default timeouts in milliseconds, indexed by state (tcp_timeouts). */
export const TCP_DEFAULT_TIMEOUTS_MS: readonly number[] = [
  2_000, // NONE
  900_000, // ESTABLISHED
  120_000, // SYN_SENT
  60_000, // SYN_RECV
  120_000, // FIN_WAIT
  120_000, // TIME_WAIT
  10_000, // CLOSE
  60_000, // CLOSE_WAIT
  30_000, // LAST_ACK
  120_000, // LISTEN
  120_000, // SYNACK
];

/** TCP header flag bits as they are in the flag byte. */
export const TH_FIN = 0x01;
export const TH_SYN = 0x02;
export const TH_RST = 0x04;
export const TH_PSH = 0x08;
export const TH_ACK = 0x10;

/** Row index within a direction's table: rst beats syn beats fin beats ack; -1 for none of them (tcp_state_idx). */
export function tcpStateIdx(flags: number): number {
  if (flags & TH_RST) return 3;
  if (flags & TH_SYN) return 0;
  if (flags & TH_FIN) return 1;
  if (flags & TH_ACK) return 2;
  return -1;
}

/** Direction of a packet relative to the connection (IP_VS_DIR_*). */
export type TcpDir = 'input' | 'output' | 'input-only';

const DIR_OFF: Record<TcpDir, number> = { input: 0, output: 4, 'input-only': 8 };

const sES = TCP_S_ESTABLISHED;
const sSS = TCP_S_SYN_SENT;
const sSR = TCP_S_SYN_RECV;
const sFW = TCP_S_FIN_WAIT;
const sTW = TCP_S_TIME_WAIT;
const sCL = TCP_S_CLOSE;
const sCW = TCP_S_CLOSE_WAIT;
const sLA = TCP_S_LAST_ACK;
const sLI = TCP_S_LISTEN;
const sSA = TCP_S_SYNACK;

/* biome-ignore format: state tables read as a grid */
/** Rows: input syn/fin/ack/rst, output syn/fin/ack/rst, input-only syn/fin/ack/rst. Columns: current state. */
export const TCP_STATES: readonly (readonly number[])[] = [
  //       sNO  sES  sSS  sSR  sFW  sTW  sCL  sCW  sLA  sLI  sSA
  /*syn*/ [sSR, sES, sES, sSR, sSR, sSR, sSR, sSR, sSR, sSR, sSR],
  /*fin*/ [sCL, sCW, sSS, sTW, sTW, sTW, sCL, sCW, sLA, sLI, sTW],
  /*ack*/ [sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sCL, sLI, sES],
  /*rst*/ [sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sSR],
  // output
  /*syn*/ [sSS, sES, sSS, sSR, sSS, sSS, sSS, sSS, sSS, sLI, sSR],
  /*fin*/ [sTW, sFW, sSS, sTW, sFW, sTW, sCL, sTW, sLA, sLI, sTW],
  /*ack*/ [sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sLA, sES, sES],
  /*rst*/ [sCL, sCL, sSS, sCL, sCL, sTW, sCL, sCL, sCL, sCL, sCL],
  // input-only
  /*syn*/ [sSR, sES, sES, sSR, sSR, sSR, sSR, sSR, sSR, sSR, sSR],
  /*fin*/ [sCL, sFW, sSS, sTW, sFW, sTW, sCL, sCW, sLA, sLI, sTW],
  /*ack*/ [sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sCL, sLI, sES],
  /*rst*/ [sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sCL],
];

/* biome-ignore format: state tables read as a grid */
/** The secure_tcp table (tcp_states_dos): half-open connections stay in SYN_RECV/SYNACK until the handshake is seen. */
export const TCP_STATES_DOS: readonly (readonly number[])[] = [
  //       sNO  sES  sSS  sSR  sFW  sTW  sCL  sCW  sLA  sLI  sSA
  /*syn*/ [sSR, sES, sES, sSR, sSR, sSR, sSR, sSR, sSR, sSR, sSA],
  /*fin*/ [sCL, sCW, sSS, sTW, sTW, sTW, sCL, sCW, sLA, sLI, sSA],
  /*ack*/ [sES, sES, sSS, sSR, sFW, sTW, sCL, sCW, sCL, sLI, sSA],
  /*rst*/ [sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sCL],
  // output
  /*syn*/ [sSS, sES, sSS, sSA, sSS, sSS, sSS, sSS, sSS, sLI, sSA],
  /*fin*/ [sTW, sFW, sSS, sTW, sFW, sTW, sCL, sTW, sLA, sLI, sTW],
  /*ack*/ [sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sLA, sES, sES],
  /*rst*/ [sCL, sCL, sSS, sCL, sCL, sTW, sCL, sCL, sCL, sCL, sCL],
  // input-only
  /*syn*/ [sSA, sES, sES, sSR, sSA, sSA, sSA, sSA, sSA, sSA, sSA],
  /*fin*/ [sCL, sFW, sSS, sTW, sFW, sTW, sCL, sCW, sLA, sLI, sTW],
  /*ack*/ [sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sCL, sLI, sES],
  /*rst*/ [sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sCL],
];

/**
 * The next state for a packet with `flags` seen in direction `dir` (already resolved to input-only when the
 * connection has seen no output). A packet with none of rst/syn/fin/ack moves the connection to CLOSE, as the kernel
 * does.
 */
export function nextTcpState(state: number, dir: TcpDir, flags: number, secure = false): number {
  const idx = tcpStateIdx(flags);
  if (idx < 0) return TCP_S_CLOSE;
  return (secure ? TCP_STATES_DOS : TCP_STATES)[DIR_OFF[dir] + idx][state];
}

export function tcpStateName(state: number): string {
  return state < TCP_S_LAST ? TCP_STATE_NAMES[state] : 'ERR!';
}

/** Look a state up by its ipvsadm name; -1 when unknown. */
export function tcpStateByName(name: string): number {
  return TCP_STATE_NAMES.indexOf(name.toUpperCase());
}
