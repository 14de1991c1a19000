/** Entry of a listeners cluster worker (forked by ./primary.ts). */
import { setFlagsFromString } from 'node:v8';
import { runWorker } from './worker/worker.js';

// V8 pretenures the objects of an allocation site it once saw surviving (a request's head and exchange, after the
// first bursts) and from then on allocates every request's in the old generation: ~10 MB/s under HTTP load and a
// mark-compact every ~2 s stopping the worker for 4-8 ms. A request's objects die young: without pretenuring the
// workers ran no mark-compact under load, with ~12% less CPU per request (README, the HTTP relay).
// TIERLB_PRETENURE=1 keeps V8's default, for side-by-side runs.
if (process.env.TIERLB_PRETENURE !== '1') setFlagsFromString('--no-allocation-site-pretenuring');
runWorker();
