/** Entry of a listeners cluster worker (forked by ./primary.ts). */
import { runWorker } from './worker/worker.js';

runWorker();
