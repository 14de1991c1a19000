/** tierlb's ipvsadm: the pure command runner, its output formats, save/restore and the admin-socket handler. */

export { dumpRules, loadRules } from './rules-file.js';
export { type AdmIo, type AdmResult, runAdm } from './run.js';
export { type AdmRequest, handleAdmRequest, parseAdmRequest } from './server.js';
export { DEFAULT_TIMEOUTS, TableTarget } from './table-target.js';
export type { AdmTarget, ConnRow, SyncDaemonInfo, Timeouts } from './target.js';
