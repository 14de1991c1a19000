/**
 * A loaded config's TLS files, read into it (./tls-files.ts) by the one who loads configs for the workers (the
 * cluster primary, `tierlb listeners check`): each problem comes back with the path of the field it is about, for
 * the loader's file:line:col. The workers then use the material they are handed, the same for every worker of a
 * generation; a reload reads the files again (new certificates).
 */
import type { ListenersConfig } from './config.js';
import { readSslFiles, readTlsFiles, tlsFieldOf } from './tls-files.js';

export interface FileProblem {
  /** under the `listeners` section: ['listen', 0, 'tls', 'certs', 1, 'cert'] */
  path: (string | number)[];
  message: string;
}

/** Read every listener's TLS files and every server's CA into `cfg`; the problems found (none: all read). */
export function readListenerFiles(cfg: ListenersConfig): FileProblem[] {
  const problems: FileProblem[] = [];
  cfg.listeners.forEach((l, i) => {
    if (l.tls) {
      try {
        l.tls.material = readTlsFiles(l.tls);
      } catch (e) {
        problems.push({ path: ['listen', i, 'tls', ...(tlsFieldOf(e) ?? [])], message: (e as Error).message });
      }
    }
    l.servers.forEach((s, j) => {
      if (!s.ssl) return;
      try {
        s.ssl = readSslFiles(s.ssl);
      } catch (e) {
        problems.push({ path: ['listen', i, 'servers', j, 'ssl', 'ca'], message: (e as Error).message });
      }
    });
  });
  return problems;
}
