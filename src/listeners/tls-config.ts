/**
 * A loaded config's TLS files, read into it (./tls-files.ts) by the one who loads configs for the workers (the
 * cluster primary, `tierlb listeners check`): each problem comes back with the path of the field it is about, for
 * the loader's file:line:col. The workers then use the material they are handed, the same for every worker of a
 * generation; a reload reads the files again (new certificates).
 */
import type { GroupSpec, ListenersConfig } from './config.js';
import { loadCert, loadDir, readCa, readSslFiles, type TlsCert, tlsFieldOf } from './tls-files.js';

export interface FileProblem {
  /** under the `listeners` section: ['listen', 0, 'tls', 'certs', 1, 'cert'] */
  path: (string | number)[];
  message: string;
}

/** Where each named group sits in the section (['listen', 0, 'groups', 1] or ['groups', 2]), noted by the resolver
 * so that a server's bad CA file is reported at its line; outside the plan itself (deep-equal plans stay equal). */
const groupPaths = new WeakMap<GroupSpec, (string | number)[]>();
export function noteGroupPath(g: GroupSpec, path: (string | number)[]): void {
  groupPaths.set(g, path);
}

function readServerFiles(g: { servers: GroupSpec['servers'] }, at: (string | number)[], problems: FileProblem[]): void {
  g.servers.forEach((s, j) => {
    if (!s.ssl) return;
    try {
      s.ssl = readSslFiles(s.ssl);
    } catch (e) {
      problems.push({ path: [...at, 'servers', j, 'ssl', 'ca'], message: (e as Error).message });
    }
  });
}

/** Read every listener's TLS files and every server's CA into `cfg`; the problems found (none: all read). */
export function readListenerFiles(cfg: ListenersConfig): FileProblem[] {
  const problems: FileProblem[] = [];
  cfg.listeners.forEach((l, i) => {
    const t = l.tls;
    if (t) {
      // each file on its own, so that every bad one is named at once
      const at = ['listen', i, 'tls'];
      const tryRead = <T>(read: () => T): T | undefined => {
        try {
          return read();
        } catch (e) {
          problems.push({ path: [...at, ...(tlsFieldOf(e) ?? [])], message: (e as Error).message });
          return undefined;
        }
      };
      const certs = t.certs.map((c, j) => tryRead(() => loadCert(c.cert, c.key, ['certs', j, 'cert'])));
      const dir = t.certDir ? tryRead(() => loadDir(t.certDir!)) : [];
      const clientCa = t.clientCa ? tryRead(() => readCa(t.clientCa!, ['client_ca'])) : undefined;
      if (dir && certs.every((c) => c !== undefined) && (clientCa !== undefined || !t.clientCa))
        t.material = { certs: [...(certs as TlsCert[]), ...dir], clientCa };
    }
    readServerFiles(l, ['listen', i], problems);
  });
  const own = new Set(cfg.listeners.map((l) => l.servers));
  for (const g of cfg.groups) {
    const at = groupPaths.get(g);
    if (!own.has(g.servers)) readServerFiles(g, at ?? ['groups', g.name], problems);
  }
  return problems;
}
