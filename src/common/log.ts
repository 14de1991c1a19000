/** Structured pino JSON logs on stderr (stdout stays free for command output). TIERLB_LOG_LEVEL sets the level. */
import { pino } from 'pino';

export const log = pino(
  { level: process.env.TIERLB_LOG_LEVEL ?? 'info', base: { pid: process.pid } },
  pino.destination(2),
);

export type Logger = typeof log;
