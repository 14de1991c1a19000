/**
 * A cluster file (a tierlb config with a `cluster` section) → the node configs, with the fwmark allocation kept in
 * a marks file beside it (`<file stem>.marks.json`: `{"listener": mark}`), so that edits never renumber a listener.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import { loadConfigFile } from '../config/load.js';
import type { ClusterConfig } from './config-schema.js';
import { allocateFwmarks, FWMARK_BASE } from './fwmark.js';

export function defaultMarksFile(clusterFile: string): string {
  return join(dirname(clusterFile), `${basename(clusterFile, extname(clusterFile))}.marks.json`);
}

export interface LoadedCluster {
  cluster: ClusterConfig;
  marks: Record<string, number>;
  /** the marks file changed (new listeners got marks, removed ones left) */
  marksChanged: boolean;
}

/** Load and check the file (throws ConfigError with file:line problems); allocate the marks against the marks file. */
export async function loadCluster(file: string, marksFile = defaultMarksFile(file)): Promise<LoadedCluster> {
  const cfg = (await loadConfigFile(file)).config;
  if (!cfg.cluster) throw new Error(`${file}: no cluster section`);
  const cluster = cfg.cluster as ClusterConfig;
  const previous = existsSync(marksFile) ? (JSON.parse(readFileSync(marksFile, 'utf8')) as Record<string, number>) : {};
  const marks = allocateFwmarks(
    cluster.listeners.map((l) => ({ name: l.name, pinned: l.fwmark })),
    previous,
    cluster.fwmark_base ?? FWMARK_BASE,
  );
  return { cluster, marks, marksChanged: JSON.stringify(marks) !== JSON.stringify(previous) };
}

export function saveMarks(marksFile: string, marks: Record<string, number>): void {
  writeFileSync(marksFile, `${JSON.stringify(marks, null, 2)}\n`);
}
