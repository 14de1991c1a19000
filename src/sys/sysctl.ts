/**
 * sysctl read and write through /proc/sys, in the current network namespace. Keys are written as sysctl(8) takes
 * them: dots separate, and a slash stands for a dot inside a name (`net.ipv4.conf.eth0/100.rp_filter`); a key that
 * starts with /proc/sys/ is taken as the path.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { TierlbError } from '../common/errors.js';

export class SysctlError extends TierlbError {
  constructor(
    override readonly code: 'ESYSCTL_MISSING' | 'ESYSCTL_DENIED' | 'ESYSCTL_WRITE',
    readonly key: string,
    message: string,
  ) {
    super(code, message);
    this.name = 'SysctlError';
  }
}

export function sysctlPath(key: string): string {
  if (key.startsWith('/proc/sys/')) return key;
  return `/proc/sys/${key.replace(/[./]/g, (c) => (c === '.' ? '/' : '.'))}`;
}

/** The value (trimmed), or undefined when the key does not exist here (no such interface, module not loaded). */
export function readSysctl(key: string): string | undefined {
  try {
    return readFileSync(sysctlPath(key), 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** Write a value; throws SysctlError naming the key, the cause and the fix. */
export function writeSysctl(key: string, value: string | number): void {
  const path = sysctlPath(key);
  try {
    writeFileSync(path, String(value));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT')
      throw new SysctlError(
        'ESYSCTL_MISSING',
        key,
        `sysctl ${key}: ${path} does not exist (kernel module not loaded?)`,
      );
    if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS')
      throw new SysctlError(
        'ESYSCTL_DENIED',
        key,
        `sysctl ${key}=${value}: ${code}: run as root, with /proc/sys writable`,
      );
    throw new SysctlError('ESYSCTL_WRITE', key, `sysctl ${key}=${value}: ${code ?? (e as Error).message}`);
  }
}
