/** `show info`: HAProxy's `Name: value` lines that its consumers read (process, uptime, connections). */
import os from 'node:os';
import type { StatRow } from '../stats.js';

export interface InfoContext {
  /** Date.now() at start */
  startedAt: number;
  workersAlive: number;
  workers: number;
  listeners: number;
  gen: number;
  stopping: boolean;
}

export function showInfo(rows: readonly StatRow[], c: InfoContext, now = Date.now()): [string, string | number][] {
  const fe = rows.filter((r) => r.svname === 'FRONTEND');
  const up = Math.max(0, Math.floor((now - c.startedAt) / 1000));
  const two = (n: number) => String(n).padStart(2, '0');
  const uptime = `${Math.floor(up / 86400)}d ${Math.floor((up % 86400) / 3600)}h${two(Math.floor((up % 3600) / 60))}m${two(up % 60)}s`;
  return [
    ['Name', 'tierlb'],
    ['Version', process.env.npm_package_version ?? '0.1.0'],
    ['Nbthread', c.workersAlive],
    ['Nbproc', 1],
    ['Process_num', 1],
    ['Pid', process.pid],
    ['Uptime', uptime],
    ['Uptime_sec', up],
    ['CurrConns', fe.reduce((a, r) => a + Number(r.scur), 0)],
    ['CumConns', fe.reduce((a, r) => a + Number(r.stot), 0)],
    ['Stopping', c.stopping ? 1 : 0],
    ['Node', os.hostname()],
    ['Listeners', c.listeners],
    ['Workers', c.workers],
    ['Generation', c.gen],
  ];
}
