/**
 * A stand-in worker for test/listeners-shared.test.ts: maps the primary's region, picks N times on a listener
 * (roundrobin or leastconn), holds or releases, and reports its tally to the parent.
 */

import { openRegion } from '../src/listeners/shared.js';
import { SharedPicker } from '../src/listeners/shared-picker.js';

interface Job {
  path: string;
  worker: number;
  lslot: number;
  slots: number[];
  balance: string;
  picks: number;
  /** keep every slot taken (do not release) */
  hold?: boolean;
}

process.on('message', (job: Job) => {
  const words = openRegion(job.path);
  const picker = new SharedPicker(
    words,
    job.lslot,
    job.slots.map((slot, i) => ({ name: `s${i}`, maxconn: 0, slot })),
    job.worker,
    { balance: job.balance, maxqueue: 0, queueTimeout: 1000 },
  );
  const tally: number[] = job.slots.map(() => 0);
  for (let i = 0; i < job.picks; i++) {
    const s = picker.pick({});
    if (s < 0) throw new Error(`pick failed: ${s}`);
    tally[s]!++;
    if (!job.hold) picker.release(s);
  }
  process.send!({ tally }, () => {
    // a holder stays alive until killed (its slots must be given back by the primary's reclaim)
    if (!job.hold) process.exit(0);
  });
});

// a message sent before the listener exists would be lost: say when to send the job
process.send!({ ready: true });
