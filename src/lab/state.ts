/**
 * The lab's state file (<state_dir>/<prefix>/state.json): what `lab up` made, written before each step so `lab down`
 * can remove everything even when `up` crashed or was killed half-way. `down` also scans by name prefix, so a step
 * that ran before its record was written is found all the same.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LabConfig } from './config-schema.js';

export interface ProcRecord {
  id: string;
  host: string;
  ns: string;
  pid: number;
  argv: string[];
  log: string;
}

export interface LabState {
  version: 1;
  prefix: string;
  dir: string;
  configFile: string | null;
  startedAt: string;
  phase: 'building' | 'ready' | 'failed';
  /** how the VIP is held: by VRRP, statically on the master director (vrrp.enabled: false), or announced over BGP (ecmp) */
  vipMode: 'vrrp' | 'static' | 'bgp' | null;
  namespaces: string[];
  rootLinks: string[];
  processes: ProcRecord[];
  config: LabConfig;
}

export const stateFile = (dir: string) => join(dir, 'state.json');

export function readState(dir: string): LabState | null {
  try {
    return JSON.parse(readFileSync(stateFile(dir), 'utf8')) as LabState;
  } catch {
    return null;
  }
}

/** Atomic: a reader never sees half a file. */
export function writeState(st: LabState): void {
  mkdirSync(st.dir, { recursive: true });
  const tmp = `${stateFile(st.dir)}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(st, null, 2)}\n`);
  renameSync(tmp, stateFile(st.dir));
}
