/**
 * ipvsadm's option parsing (parse_options and the checks at the top of process_options): which words are accepted,
 * in which order values are read (an -r without port takes the service port known at that point, -M before an IPv6
 * -t is read as an IPv4 mask, -6 must follow -f), the command/option compatibility table, and every message with its
 * exit code (fail(2, ...) for bad options, -1 i.e. 255 for popt errors and "Try ... -h").
 */

import { ipv6ToBytes, isMulticast4 } from '../../common/addr.js';
import { IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP } from '../../sys/constants.js';
import { DEFAULT_SCHEDULER } from '../schedulers/index.js';
import { SVC_F_ONEPACKET, SVC_F_PERSISTENT, SVC_F_SCHED1, SVC_F_SCHED2, SVC_F_SCHED3 } from '../service.js';
import {
  type AddrFields,
  atoi,
  inetAton,
  inetPton6,
  parseService,
  SERVICE_ADDR,
  stringToNumber,
  strtolWhole,
} from './cparse.js';
import { AdmExit, type AdmOutput, fail } from './exit.js';
import { POPT_ERRORS, PoptContext, type PoptOption } from './popt.js';
import type { Timeouts } from './target.js';
import { usageText, versionText } from './usage.js';

export const CMD_ADD = 1;
export const CMD_EDIT = 2;
export const CMD_DEL = 3;
export const CMD_FLUSH = 4;
export const CMD_LIST = 5;
export const CMD_ADDDEST = 6;
export const CMD_DELDEST = 7;
export const CMD_EDITDEST = 8;
export const CMD_TIMEOUT = 9;
export const CMD_STARTDAEMON = 10;
export const CMD_STOPDAEMON = 11;
export const CMD_RESTORE = 12;
export const CMD_SAVE = 13;
export const CMD_ZERO = 14;

const CMD_NAMES = [
  'add-service',
  'edit-service',
  'delete-service',
  'flush',
  'list',
  'add-server',
  'delete-server',
  'edit-server',
  'set',
  'start-daemon',
  'stop-daemon',
  'restore',
  'save',
  'zero',
];

export const OPTC = {
  NUMERIC: 0,
  CONNECTION: 1,
  SERVICE: 2,
  SCHEDULER: 3,
  PERSISTENT: 4,
  NETMASK: 5,
  SERVER: 6,
  FORWARD: 7,
  WEIGHT: 8,
  UTHRESHOLD: 9,
  LTHRESHOLD: 10,
  MCAST: 11,
  TIMEOUT: 12,
  DAEMON: 13,
  STATS: 14,
  RATE: 15,
  THRESHOLDS: 16,
  PERSISTENTCONN: 17,
  NOSORT: 18,
  SYNCID: 19,
  EXACT: 20,
  ONEPACKET: 21,
  PERSISTENCE_ENGINE: 22,
  SCHED_FLAGS: 23,
  MCAST_GROUP: 24,
  MCAST_PORT: 25,
  MCAST_TTL: 26,
  SYNC_MAXLEN: 27,
  TUN_INFO: 28,
  TUN_TYPE: 29,
  TUN_PORT: 30,
  TUN_NOCSUM: 31,
  TUN_CSUM: 32,
  TUN_REMCSUM: 33,
} as const;

const OPT_NAMES = [
  'numeric',
  'connection',
  'service-address',
  'scheduler',
  'persistent',
  'netmask',
  'real-server',
  'forwarding-method',
  'weight',
  'u-threshold',
  'l-threshold',
  'mcast-interface',
  'timeout',
  'daemon',
  'stats',
  'rate',
  'thresholds',
  'persistent-conn',
  'nosort',
  'syncid',
  'exact',
  'ops',
  'pe',
  'sched-flags',
  'mcast-group',
  'mcast-port',
  'mcast-ttl',
  'sync-maxlen',
  'tun-info',
  'tun-type',
  'tun-port',
  'tun-nocsum',
  'tun-csum',
  'tun-remcsum',
];

/**
 * Which options each command takes ('+' compulsory, 'x' illegal, '1' at most one of these, ' ' optional); one row per
 * command, one column per OPT_NAMES entry.
 */
const COMMANDS_V_OPTIONS = [
  /* ADD     */ 'xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx',
  /* EDIT    */ 'xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx',
  /* DEL     */ 'xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx',
  /* FLUSH   */ 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx',
  /* LIST    */ ' 11xxxxxxxxx11       xxxxxxx xxxxx',
  /* ADDSRV  */ 'xx+xxx+    xxxxxxxxxxxxxxxxxx     ',
  /* DELSRV  */ 'xx+xxx+xxxxxxxxxxxxxxxxxxxxxxxxxxx',
  /* EDITSRV */ 'xx+xxx+    xxxxxxxxxxxxxxxxxx     ',
  /* TIMEOUT */ 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx',
  /* STARTD  */ 'xxxxxxxxxxx xxxxxxx xxxx    xxxxxx',
  /* STOPD   */ 'xxxxxxxxxxxxxxxxxxx xxxxxxxxxxxxxx',
  /* RESTORE */ 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx',
  /* SAVE    */ ' xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx',
  /* ZERO    */ 'xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx',
];

const TUN_NAMES = ['ipip', 'gue', 'gre'];
/** tunnel option columns: tun-port, tun-nocsum, tun-csum, tun-remcsum */
const TUN_OPTS = [OPTC.TUN_PORT, OPTC.TUN_NOCSUM, OPTC.TUN_CSUM, OPTC.TUN_REMCSUM];
const TUNNEL_TYPES_V_OPTIONS = [/* ipip */ 'xxxx', /* gue */ '+111', /* gre */ 'x11x'];

/** printing format flags (FMT_*) */
export const FMT_NUMERIC = 0x0001;
export const FMT_RULE = 0x0002;
export const FMT_STATS = 0x0004;
export const FMT_RATE = 0x0008;
export const FMT_THRESHOLDS = 0x0010;
export const FMT_PERSISTENTCONN = 0x0020;
export const FMT_NOSORT = 0x0040;
export const FMT_EXACT = 0x0080;
export const FMT_TUN_INFO = 0x0100;

const MAX_TIMEOUT = 86400 * 31;
const DEFAULT_PERSISTENT_TIMEOUT = 6 * 60;
const SCHEDNAME_MAXLEN = 16;
const INT_MAX = 2147483647;

export { IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP };

/** ipvsadm's ipvs_service_t as the options fill it. */
export interface ParsedService extends AddrFields {
  fwmark: number;
  sched: string;
  flags: number;
  timeout: number;
  pe: string;
}

export type ParsedFwd = 'masq' | 'tunnel' | 'route';

export interface ParsedDest {
  af: 0 | 4 | 6;
  addr: string;
  port: number;
  fwd: ParsedFwd;
  weight: number;
  uThreshold: number;
  lThreshold: number;
  /** 0 ipip, 1 gue, 2 gre */
  tunType: number;
  tunPort: number;
  tunFlags: number;
}

/** ipvsadm's ipvs_daemon_t: 0 (or '') where an option was not given, so the kernel's default applies. */
export interface ParsedDaemon {
  state: 'master' | 'backup' | '';
  mcastIfn: string;
  syncid: number;
  /** --sync-maxlen */
  maxLen: number;
  /** --mcast-group (inet_ntop form; an IPv6 group contains ':') */
  group: string;
  /** --mcast-port */
  port: number;
  /** --mcast-ttl */
  ttl: number;
}

export interface AdmCommand {
  cmd: number;
  options: Set<number>;
  format: number;
  svc: ParsedService;
  dest: ParsedDest;
  timeouts: Timeouts;
  daemon: ParsedDaemon;
}

const TAG = {
  SET: 'set',
  START_DAEMON: 'start-daemon',
  STOP_DAEMON: 'stop-daemon',
  MCAST_INTERFACE: 'mcast-interface',
  TIMEOUT: 'timeout',
  DAEMON: 'daemon',
  STATS: 'stats',
  RATE: 'rate',
  THRESHOLDS: 'thresholds',
  PERSISTENTCONN: 'persistent-conn',
  SORT: 'sort',
  NO_SORT: 'nosort',
  PE: 'pe',
  SCTP_SERVICE: 'sctp-service',
  MCAST_GROUP: 'mcast-group',
  MCAST_PORT: 'mcast-port',
  MCAST_TTL: 'mcast-ttl',
  SYNC_MAXLEN: 'sync-maxlen',
  TUN_INFO: 'tun-info',
  TUN_TYPE: 'tun-type',
  TUN_PORT: 'tun-port',
  TUN_NOCSUM: 'tun-nocsum',
  TUN_CSUM: 'tun-csum',
  TUN_REMCSUM: 'tun-remcsum',
} as const;

/** ipvsadm's popt option table: long name, short name, argument. */
const OPTIONS: PoptOption[] = [
  { long: 'add-service', short: 'A', arg: 'none', val: 'A' },
  { long: 'edit-service', short: 'E', arg: 'none', val: 'E' },
  { long: 'delete-service', short: 'D', arg: 'none', val: 'D' },
  { long: 'clear', short: 'C', arg: 'none', val: 'C' },
  { long: 'list', short: 'L', arg: 'none', val: 'L' },
  { long: 'list', short: 'l', arg: 'none', val: 'l' },
  { long: 'zero', short: 'Z', arg: 'none', val: 'Z' },
  { long: 'add-server', short: 'a', arg: 'none', val: 'a' },
  { long: 'edit-server', short: 'e', arg: 'none', val: 'e' },
  { long: 'delete-server', short: 'd', arg: 'none', val: 'd' },
  { long: 'set', arg: 'none', val: TAG.SET },
  { long: 'help', short: 'h', arg: 'none', val: 'h' },
  { long: 'version', short: 'v', arg: 'none', val: 'v' },
  { long: 'restore', short: 'R', arg: 'none', val: 'R' },
  { long: 'save', short: 'S', arg: 'none', val: 'S' },
  { long: 'start-daemon', arg: 'required', val: TAG.START_DAEMON },
  { long: 'stop-daemon', arg: 'required', val: TAG.STOP_DAEMON },
  { long: 'tcp-service', short: 't', arg: 'required', val: 't' },
  { long: 'udp-service', short: 'u', arg: 'required', val: 'u' },
  { long: 'sctp-service', arg: 'required', val: TAG.SCTP_SERVICE },
  { long: 'fwmark-service', short: 'f', arg: 'required', val: 'f' },
  { long: 'scheduler', short: 's', arg: 'required', val: 's' },
  { long: 'persistent', short: 'p', arg: 'optional', val: 'p' },
  { long: 'netmask', short: 'M', arg: 'required', val: 'M' },
  { long: 'real-server', short: 'r', arg: 'required', val: 'r' },
  { long: 'masquerading', short: 'm', arg: 'none', val: 'm' },
  { long: 'ipip', short: 'i', arg: 'none', val: 'i' },
  { long: 'gatewaying', short: 'g', arg: 'none', val: 'g' },
  { long: 'weight', short: 'w', arg: 'required', val: 'w' },
  { long: 'u-threshold', short: 'x', arg: 'required', val: 'x' },
  { long: 'l-threshold', short: 'y', arg: 'required', val: 'y' },
  { long: 'numeric', short: 'n', arg: 'none', val: 'n' },
  { long: 'connection', short: 'c', arg: 'none', val: 'c' },
  { long: 'mcast-interface', arg: 'required', val: TAG.MCAST_INTERFACE },
  { long: 'syncid', arg: 'required', val: 'I' },
  { long: 'timeout', arg: 'none', val: TAG.TIMEOUT },
  { long: 'daemon', arg: 'none', val: TAG.DAEMON },
  { long: 'stats', arg: 'none', val: TAG.STATS },
  { long: 'rate', arg: 'none', val: TAG.RATE },
  { long: 'thresholds', arg: 'none', val: TAG.THRESHOLDS },
  { long: 'persistent-conn', arg: 'none', val: TAG.PERSISTENTCONN },
  { long: 'nosort', arg: 'none', val: TAG.NO_SORT },
  { long: 'sort', arg: 'none', val: TAG.SORT },
  { long: 'exact', short: 'X', arg: 'none', val: 'X' },
  { long: 'ipv6', short: '6', arg: 'none', val: '6' },
  { long: 'ops', short: 'o', arg: 'none', val: 'o' },
  { long: 'pe', arg: 'required', val: TAG.PE },
  { long: 'sched-flags', short: 'b', arg: 'required', val: 'b' },
  { long: 'mcast-group', arg: 'required', val: TAG.MCAST_GROUP },
  { long: 'mcast-port', arg: 'required', val: TAG.MCAST_PORT },
  { long: 'mcast-ttl', arg: 'required', val: TAG.MCAST_TTL },
  { long: 'sync-maxlen', arg: 'required', val: TAG.SYNC_MAXLEN },
  { long: 'tun-info', arg: 'none', val: TAG.TUN_INFO },
  { long: 'tun-type', arg: 'required', val: TAG.TUN_TYPE },
  { long: 'tun-port', arg: 'required', val: TAG.TUN_PORT },
  { long: 'tun-nocsum', arg: 'none', val: TAG.TUN_NOCSUM },
  { long: 'tun-csum', arg: 'none', val: TAG.TUN_CSUM },
  { long: 'tun-remcsum', arg: 'none', val: TAG.TUN_REMCSUM },
];

const FIRST_COMMANDS: Record<string, number> = {
  A: CMD_ADD,
  E: CMD_EDIT,
  D: CMD_DEL,
  a: CMD_ADDDEST,
  e: CMD_EDITDEST,
  d: CMD_DELDEST,
  C: CMD_FLUSH,
  L: CMD_LIST,
  l: CMD_LIST,
  Z: CMD_ZERO,
  [TAG.SET]: CMD_TIMEOUT,
  R: CMD_RESTORE,
  S: CMD_SAVE,
};

export function tryHelpText(prog: string): string {
  return `Try \`${prog} -h' or '${prog} --help' for more information.\n`;
}

function tryHelpExit(prog: string): never {
  throw new AdmExit(255, '', tryHelpText(prog));
}

function newCommand(): AdmCommand {
  return {
    cmd: 0,
    options: new Set(),
    format: 0,
    // the default persistence granularity is a /32 mask
    svc: {
      af: 0,
      protocol: 0,
      addr: '',
      port: 0,
      netmask: 0xffffffff,
      fwmark: 0,
      sched: '',
      flags: 0,
      timeout: 0,
      pe: '',
    },
    // default weight 1, direct routing, ipip
    dest: {
      af: 0,
      addr: '',
      port: 0,
      fwd: 'route',
      weight: 1,
      uThreshold: 0,
      lThreshold: 0,
      tunType: 0,
      tunPort: 0,
      tunFlags: 0,
    },
    timeouts: { tcp: 0, tcpfin: 0, udp: 0 },
    daemon: { state: '', mcastIfn: '', syncid: 0, maxLen: 0, group: '', port: 0, ttl: 0 },
  };
}

function setOption(ce: AdmCommand, optc: number): void {
  if (ce.options.has(optc)) fail(2, `multiple '${OPT_NAMES[optc]}' options specified`);
  ce.options.add(optc);
}

function protocolOf(val: string): number {
  return val === 't' ? IPPROTO_TCP : val === 'u' ? IPPROTO_UDP : IPPROTO_SCTP;
}

function parseTimeout(buf: string | undefined, min: number, max: number): number {
  if (buf === undefined) return DEFAULT_PERSISTENT_TIMEOUT;
  const i = stringToNumber(buf, min, max);
  if (i === -1) fail(2, `invalid timeout value \`${buf}' specified`);
  return i;
}

function parseFwmark(buf: string): number {
  const l = strtolWhole(buf);
  if (l === null || l <= 0 || l > 0xffffffff) fail(2, `invalid fwmark value \`${buf}' specified`);
  return l;
}

function parseSchedFlags(sched: string, arg: string): number {
  const s = sched || DEFAULT_SCHEDULER;
  let flags = 0;
  const words = arg.split(',').filter((w) => w !== '');
  if (words.length === 0) fail(2, `invalid scheduler flag \`${arg}'`);
  for (const flag of words) {
    if (flag === 'flag-1') flags |= SVC_F_SCHED1;
    else if (flag === 'flag-2') flags |= SVC_F_SCHED2;
    else if (flag === 'flag-3') flags |= SVC_F_SCHED3;
    else if (flag === 'sh-fallback' || flag === 'sh-port' || flag === 'mh-fallback' || flag === 'mh-port') {
      flags |= flag.endsWith('fallback') ? SVC_F_SCHED1 : SVC_F_SCHED2;
      if (s !== flag.slice(0, 2)) fail(2, `incompatible scheduler flag \`${flag}'`);
    } else fail(2, `invalid scheduler flag \`${flag}'`);
  }
  return flags;
}

/** Options without a value: the option they set and the listing format they add. */
const FLAG_OPTIONS: Record<string, [number, number]> = {
  c: [OPTC.CONNECTION, 0],
  n: [OPTC.NUMERIC, FMT_NUMERIC],
  [TAG.TIMEOUT]: [OPTC.TIMEOUT, 0],
  [TAG.DAEMON]: [OPTC.DAEMON, 0],
  [TAG.STATS]: [OPTC.STATS, FMT_STATS],
  [TAG.RATE]: [OPTC.RATE, FMT_RATE],
  [TAG.THRESHOLDS]: [OPTC.THRESHOLDS, FMT_THRESHOLDS],
  [TAG.PERSISTENTCONN]: [OPTC.PERSISTENTCONN, FMT_PERSISTENTCONN],
  [TAG.NO_SORT]: [OPTC.NOSORT, FMT_NOSORT],
  X: [OPTC.EXACT, FMT_EXACT],
  [TAG.TUN_INFO]: [OPTC.TUN_INFO, FMT_TUN_INFO],
  [TAG.TUN_NOCSUM]: [OPTC.TUN_NOCSUM, 0],
};

const FORWARD_OPTIONS: Record<string, ParsedFwd> = { i: 'tunnel', g: 'route', m: 'masq' };

/** Apply one option after the command word (the body of parse_options' second switch). */
function applyOption(ce: AdmCommand, val: string, optArg: string | undefined, ctx: PoptContext): void {
  const { svc, dest } = ce;
  const arg = optArg ?? '';
  if (Object.hasOwn(FLAG_OPTIONS, val)) {
    const [optc, fmt] = FLAG_OPTIONS[val];
    setOption(ce, optc);
    ce.format |= fmt;
    return;
  }
  if (Object.hasOwn(FORWARD_OPTIONS, val)) {
    setOption(ce, OPTC.FORWARD);
    dest.fwd = FORWARD_OPTIONS[val];
    return;
  }
  switch (val) {
    case 't':
    case 'u':
    case TAG.SCTP_SERVICE:
      setOption(ce, OPTC.SERVICE);
      svc.protocol = protocolOf(val);
      if (!(parseService(arg, svc) & SERVICE_ADDR)) fail(2, 'illegal virtual server address[:port] specified');
      break;
    case 'f':
      setOption(ce, OPTC.SERVICE);
      svc.af = 4;
      svc.protocol = IPPROTO_TCP;
      svc.fwmark = parseFwmark(arg);
      break;
    case 's':
      setOption(ce, OPTC.SCHEDULER);
      svc.sched = arg.slice(0, SCHEDNAME_MAXLEN - 1);
      break;
    case 'p':
      setOption(ce, OPTC.PERSISTENT);
      svc.flags |= SVC_F_PERSISTENT;
      svc.timeout = parseTimeout(optArg, 1, MAX_TIMEOUT);
      break;
    case 'M':
      setOption(ce, OPTC.NETMASK);
      if (svc.af !== 6) {
        const m = inetAton(arg);
        if (m === null) fail(2, 'illegal virtual server persistent mask specified');
        svc.netmask = m;
      } else {
        svc.netmask = atoi(arg);
        if (svc.netmask < 1 || svc.netmask > 128) fail(2, 'illegal ipv6 netmask specified');
      }
      break;
    case 'r': {
      setOption(ce, OPTC.SERVER);
      const t: AddrFields = { ...svc };
      const parse = parseService(arg, t);
      dest.af = t.af;
      dest.addr = t.addr;
      dest.port = t.port;
      if (!(parse & SERVICE_ADDR)) fail(2, 'illegal real server address[:port] specified');
      // copy vport to dport if not specified
      if (parse === SERVICE_ADDR) dest.port = svc.port;
      break;
    }
    case 'w':
      setOption(ce, OPTC.WEIGHT);
      dest.weight = stringToNumber(arg, 0, 65535);
      if (dest.weight === -1) fail(2, 'illegal weight specified');
      break;
    case 'x':
      setOption(ce, OPTC.UTHRESHOLD);
      dest.uThreshold = stringToNumber(arg, 0, INT_MAX);
      if (dest.uThreshold === -1) fail(2, 'illegal u_threshold specified');
      break;
    case 'y':
      setOption(ce, OPTC.LTHRESHOLD);
      dest.lThreshold = stringToNumber(arg, 0, INT_MAX);
      if (dest.lThreshold === -1) fail(2, 'illegal l_threshold specified');
      break;
    case TAG.MCAST_INTERFACE:
      setOption(ce, OPTC.MCAST);
      ce.daemon.mcastIfn = arg.slice(0, 15);
      break;
    case 'I':
      setOption(ce, OPTC.SYNCID);
      ce.daemon.syncid = stringToNumber(arg, 0, 255);
      if (ce.daemon.syncid === -1) fail(2, 'illegal syncid specified');
      break;
    case TAG.SORT:
      break; // sorting is the default; accepted for compatibility
    case '6':
      if (!svc.fwmark) fail(2, '-6 used before -f\n');
      svc.af = 6;
      svc.netmask = 128;
      break;
    case 'o':
      setOption(ce, OPTC.ONEPACKET);
      svc.flags |= SVC_F_ONEPACKET;
      break;
    case TAG.PE:
      setOption(ce, OPTC.PERSISTENCE_ENGINE);
      svc.pe = arg.slice(0, 16);
      break;
    case TAG.MCAST_GROUP:
    case TAG.MCAST_PORT:
    case TAG.MCAST_TTL:
    case TAG.SYNC_MAXLEN:
      applyDaemonOption(ce, val, arg);
      break;
    case TAG.TUN_TYPE: {
      setOption(ce, OPTC.TUN_TYPE);
      const t = TUN_NAMES.indexOf(arg);
      if (t < 0) fail(2, 'illegal tunnel type specified');
      dest.tunType = t;
      break;
    }
    case TAG.TUN_PORT:
      setOption(ce, OPTC.TUN_PORT);
      dest.tunPort = stringToNumber(arg, 1, 65535);
      if (dest.tunPort === -1) fail(2, 'illegal tunnel port specified');
      break;
    case TAG.TUN_CSUM:
      setOption(ce, OPTC.TUN_CSUM);
      dest.tunFlags |= 1;
      break;
    case TAG.TUN_REMCSUM:
      setOption(ce, OPTC.TUN_REMCSUM);
      dest.tunFlags |= 2;
      break;
    default:
      fail(2, `invalid option \`${ctx.badOption()}'`);
  }
}

/** The sync daemon's --mcast-group, --mcast-port, --mcast-ttl and --sync-maxlen, checked as ipvsadm checks them. */
function applyDaemonOption(ce: AdmCommand, val: string, arg: string): void {
  const d = ce.daemon;
  if (val === TAG.MCAST_GROUP) {
    setOption(ce, OPTC.MCAST_GROUP);
    // inet_pton, then IN6_IS_ADDR_MULTICAST / IN_MULTICAST
    if (arg.includes(':')) {
      const a = inetPton6(arg);
      if (a === null || ipv6ToBytes(a)[0] !== 0xff) fail(2, `invalid IPv6 mcast-group \`${arg}'`);
      d.group = a;
    } else {
      if (!isMulticast4(arg)) fail(2, `invalid IPv4 mcast-group \`${arg}'`);
      d.group = arg;
    }
  } else if (val === TAG.MCAST_PORT) {
    setOption(ce, OPTC.MCAST_PORT);
    d.port = stringToNumber(arg, 1, 65535);
    if (d.port === -1) fail(2, 'illegal mcast-port specified');
  } else if (val === TAG.MCAST_TTL) {
    setOption(ce, OPTC.MCAST_TTL);
    d.ttl = stringToNumber(arg, 1, 255);
    if (d.ttl === -1) fail(2, 'illegal mcast-ttl specified');
  } else {
    setOption(ce, OPTC.SYNC_MAXLEN);
    d.maxLen = stringToNumber(arg, 1, 65535 - 20 - 8);
    if (d.maxLen === -1) fail(2, 'illegal sync-maxlen specified');
  }
}

/**
 * generic_opt_check / tunnel_opt_check: `rules[j]` says what the option `cols[j]` may do for `what` (a command or a
 * tunnel type); the first offence, in column order, is reported.
 */
function checkCompat(rules: string, cols: readonly number[], options: Set<number>, what: string): void {
  let last = 0;
  let count = 0;
  for (let j = 0; j < cols.length; j++) {
    const k = cols[j];
    if (!options.has(k)) {
      if (rules[j] === '+') fail(2, `You need to supply the '${OPT_NAMES[k]}' option for the ${what}`);
      continue;
    }
    if (rules[j] === 'x') fail(2, `Illegal '${OPT_NAMES[k]}' option with the ${what}`);
    if (rules[j] === '1' && ++count > 1)
      fail(2, `The option '${OPT_NAMES[k]}' conflicts with the '${OPT_NAMES[last]}' option in the ${what}`);
    if (rules[j] === '1') last = k;
  }
}

const ALL_OPTS = OPT_NAMES.map((_, j) => j);

/**
 * Parse one ipvsadm command line (without the program name) and run process_options' checks. Returns the command, or
 * null after writing popt's error to `io` (ipvsadm then returns -1: exit 255, or the next line under -R). Throws
 * AdmExit where ipvsadm exits: fail(2, ...), "Try ... -h" (255), -h and -v (0).
 */
export function parseCommand(argv: readonly string[], io: AdmOutput, prog = 'ipvsadm'): AdmCommand | null {
  const ce = newCommand();
  const ctx = new PoptContext(argv, OPTIONS);
  let schedFlags: string | undefined;

  const first = ctx.getNextOpt();
  if (first.type !== 'opt') tryHelpExit(prog);
  switch (first.val) {
    case 'h':
      throw new AdmExit(0, versionText() + usageText(prog));
    case 'v':
      throw new AdmExit(0, versionText());
    case TAG.START_DAEMON:
    case TAG.STOP_DAEMON:
      ce.cmd = first.val === TAG.START_DAEMON ? CMD_STARTDAEMON : CMD_STOPDAEMON;
      if (first.arg === 'master' || first.arg === 'backup') ce.daemon.state = first.arg;
      else if (first.val === TAG.START_DAEMON) fail(2, 'illegal start-daemon parameter specified');
      else fail(2, 'illegal start_daemon specified');
      break;
    default:
      if (!Object.hasOwn(FIRST_COMMANDS, first.val)) tryHelpExit(prog);
      ce.cmd = FIRST_COMMANDS[first.val];
  }

  for (;;) {
    const ev = ctx.getNextOpt();
    if (ev.type === 'end') break;
    if (ev.type === 'error') {
      io.err(`${ctx.badOption()}: ${POPT_ERRORS[ev.error]}\n`);
      return null;
    }
    if (
      ev.val in FIRST_COMMANDS ||
      ev.val === 'h' ||
      ev.val === 'v' ||
      ev.val === TAG.START_DAEMON ||
      ev.val === TAG.STOP_DAEMON
    )
      fail(2, `invalid option \`${ctx.badOption()}'`);
    if (ev.val === 'b') {
      // -b is applied after all options are read, against the final scheduler name
      setOption(ce, OPTC.SCHED_FLAGS);
      schedFlags = (ev.arg ?? '').slice(0, 127);
    } else applyOption(ce, ev.val, ev.arg, ctx);
  }

  if (ce.cmd === CMD_TIMEOUT) {
    const a = ctx.getArg();
    const b = a !== undefined ? ctx.getArg() : undefined;
    const c = b !== undefined ? ctx.getArg() : undefined;
    if (a === undefined || b === undefined || c === undefined) fail(2, '--set option requires 3 timeout values');
    ce.timeouts = {
      tcp: parseTimeout(a, 0, MAX_TIMEOUT),
      tcpfin: parseTimeout(b, 0, MAX_TIMEOUT),
      udp: parseTimeout(c, 0, MAX_TIMEOUT),
    };
  }
  const extra = ctx.getArg();
  if (extra !== undefined) fail(2, `unexpected argument ${extra}`);

  if (schedFlags !== undefined) {
    ce.svc.flags &= ~(SVC_F_SCHED1 | SVC_F_SCHED2 | SVC_F_SCHED3);
    ce.svc.flags |= parseSchedFlags(ce.svc.sched, schedFlags);
  }

  checkCommand(ce);
  return ce;
}

/** process_options between parsing and running: option table, defaults, port and family rules. */
function checkCommand(ce: AdmCommand): void {
  checkCompat(COMMANDS_V_OPTIONS[ce.cmd - 1], ALL_OPTS, ce.options, `'${CMD_NAMES[ce.cmd - 1]}' command`);
  const { svc, dest } = ce;
  if (ce.cmd === CMD_ADD || ce.cmd === CMD_EDIT) {
    // a port-zero service must be persistent
    if (!svc.fwmark && !svc.port && !(svc.flags & SVC_F_PERSISTENT))
      fail(2, 'Zero port specified for non-persistent service');
    if (svc.flags & SVC_F_ONEPACKET && !svc.fwmark && svc.protocol !== IPPROTO_UDP)
      fail(2, 'One-Packet Scheduling is only for UDP virtual services');
    if (svc.sched === '') svc.sched = DEFAULT_SCHEDULER;
  }
  if (ce.cmd === CMD_STARTDAEMON && ce.daemon.mcastIfn === '') ce.daemon.mcastIfn = 'eth0';
  if (ce.cmd === CMD_ADDDEST || ce.cmd === CMD_EDITDEST) {
    // direct routing and tunnelling keep the service port (not for fwmark services)
    if (!svc.fwmark && (dest.fwd === 'tunnel' || dest.fwd === 'route')) dest.port = svc.port;
    if (dest.af !== svc.af && dest.fwd !== 'tunnel')
      fail(2, 'Different address family is allowed only for tunneling servers');
    const tunOpts = [OPTC.TUN_TYPE, OPTC.TUN_PORT, OPTC.TUN_NOCSUM, OPTC.TUN_CSUM, OPTC.TUN_REMCSUM];
    if (tunOpts.some((o) => ce.options.has(o)) && dest.fwd !== 'tunnel')
      fail(2, 'Tunnel options conflict with forward method');
    const tun = ce.dest.tunType;
    checkCompat(TUNNEL_TYPES_V_OPTIONS[tun], TUN_OPTS, ce.options, `'${TUN_NAMES[tun]}' tunnel type`);
  }
  if (ce.cmd === CMD_LIST) {
    const o = ce.options;
    const any = (...x: number[]) => x.some((k) => o.has(k));
    if (
      (any(OPTC.CONNECTION, OPTC.TIMEOUT, OPTC.DAEMON) && any(OPTC.STATS, OPTC.RATE, OPTC.THRESHOLDS)) ||
      (any(OPTC.TIMEOUT, OPTC.DAEMON) && o.has(OPTC.PERSISTENTCONN))
    )
      fail(2, 'options conflicts in the list command');
  }
}
