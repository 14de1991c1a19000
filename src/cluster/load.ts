/**
 * A cluster file (a tierlb config with a `cluster` section) → the node configs, with the fwmark allocation kept in
 * a marks file beside it (`<file stem>.marks.json`: `{"listener": mark}`), so that edits never renumber a listener.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import { loadConfigFile } from '../config/load.js';
import './config-schema.js'; // registers the cluster section with the loader
import type { ClusterConfig } from './config-schema.js';
import { ClusterError } from './errors.js';
import { allocateFwmarks, FWMARK_BASE } from './fwmark.js';
import { type NodeRole, nodeRole, ROLE_NAMES, renderNodeYaml } from './render.js';

const article = (s: string) => `${/^[aeiouL]/.test(s) ? 'an' : 'a'} ${s}`;

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
  const cfg = (await loadConfigFile(file, { sections: ['cluster'] })).config;
  if (!cfg.cluster)
    throw new ClusterError(
      'ECLUSTER_NO_SECTION',
      `${file}: no cluster section (a cluster file starts with 'cluster:')`,
    );
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

/**
 * Render `node`'s config from the cluster file into `out` (for `tierlb director --cluster FILE --node NAME`): the
 * marks file is read, never written (run `tierlb cluster marks` after an edit to record new listeners' marks).
 */
export async function renderNodeFile(clusterFile: string, node: string, out: string, role?: NodeRole): Promise<string> {
  const c = await loadCluster(clusterFile);
  const is = nodeRole(c.cluster, node);
  if (role && is && is !== role)
    throw new ClusterError(
      'ECLUSTER_ROLE',
      `${node} is ${article(ROLE_NAMES[is])} in ${clusterFile}, not ${article(ROLE_NAMES[role])}`,
    );
  writeFileSync(out, renderNodeYaml(c.cluster, node, c.marks, clusterFile), { mode: 0o600 });
  return out;
}
