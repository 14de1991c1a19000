/**
 * One pass of the data-path worker's hot loop, apart from the socket so it is tested without a kernel: wait for a
 * datagram, then keep draining what is pending (without waiting) for a bounded number of datagrams, so the caller can
 * poll its control port between passes. Every message received is handed over before the pass returns — a queued
 * packet that is received and dropped on the floor never gets a verdict and stays in the kernel queue for good (the
 * client sees a lost SYN and retransmits after 1 s; the queue slot is never freed). Verdicts are sent in batches of
 * `flushEvery` and at the end of the pass.
 */
import type { NlMessage, QueuedPacket } from './nfqmsg.js';

export interface PacketSource {
  /** Receive one datagram into `out` (cleared first); `wait` false returns [] at once when nothing is pending. */
  receive(wait: boolean, out: NlMessage[]): NlMessage[];
  /** Pending verdicts queued since the last flush. */
  readonly pendingVerdicts: number;
  /** Send the queued verdicts. */
  flush(): void;
}

export interface PumpOptions {
  /** datagrams handled before the pass returns to let the caller poll its control port (default 64) */
  maxRounds?: number;
  /** queued verdicts that trigger a send in the middle of a pass (default 32) */
  flushEvery?: number;
}

/** Run one pass; returns how many packets were handed to `handle`. */
export function pump(
  src: PacketSource,
  msgs: NlMessage[],
  handle: (pkt: QueuedPacket) => void,
  o: PumpOptions = {},
): number {
  const maxRounds = o.maxRounds ?? 64;
  const flushEvery = o.flushEvery ?? 32;
  let handled = 0;
  src.receive(true, msgs);
  for (let round = 1; msgs.length > 0; round++) {
    for (let i = 0; i < msgs.length; i++) {
      const m = msgs[i];
      if (m.kind === 'packet') {
        handle(m.pkt);
        handled++;
      }
    }
    if (src.pendingVerdicts >= flushEvery) src.flush();
    // stop before receiving again: what is received must be handled in this pass
    if (round >= maxRounds) break;
    src.receive(false, msgs);
  }
  src.flush();
  return handled;
}
