/** The timers moved to src/common/timers.ts (the listener workers use them too); this path stays for its importers. */
export { ManualTimers, RealTimers, type TimerHandle, type Timers } from '../../common/timers.js';
