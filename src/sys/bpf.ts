/**
 * BPF through libbpf (Debian libbpf1, 1.1.x) by koffi: open and load an object, find its maps and programs, read and
 * write maps, attach a program at tc ingress and run it on a test packet (BPF_PROG_TEST_RUN). Nothing is pinned:
 * every map, program and link is a file descriptor of this process, so they all go when it exits.
 *
 * Attaching prefers a tcx link (bpf_link_create with BPF_TCX_INGRESS = 46; libbpf 1.1 has no attach_tcx helper but
 * its generic link_create passes the type through); where tcx is missing it falls back to a clsact qdisc filter
 * (bpf_tc_hook_create + bpf_tc_attach), which, unlike a link, would outlive a crash, so detach() removes it.
 *
 * libbpf prints its warnings (and the verifier log) on stderr only when TIERLB_BPF_DEBUG is set;
 * TIERLB_BPF_ATTACH=clsact skips tcx (for kernels whose tcx misbehaves, and to test the fallback).
 */
import { closeSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import koffi from 'koffi';
import { TierlbError } from '../common/errors.js';

export type BpfErrorCode =
  /** libbpf.so.1 cannot be loaded */
  | 'BPF_NO_LIBBPF'
  /** the compiled object is not there */
  | 'BPF_NO_OBJECT'
  /** the kernel refused for lack of privilege */
  | 'BPF_PERM'
  /** open/load failed (verifier, BTF, kernel without BPF) */
  | 'BPF_LOAD'
  /** a map or program name the object lacks */
  | 'BPF_NOT_FOUND'
  /** attaching to an interface failed */
  | 'BPF_ATTACH'
  /** a map operation failed */
  | 'BPF_MAP'
  /** BPF_PROG_TEST_RUN failed */
  | 'BPF_TEST_RUN';

export class BpfError extends TierlbError {
  constructor(
    override readonly code: BpfErrorCode,
    message: string,
    readonly errno = 0,
  ) {
    super(code, message);
    this.name = 'BpfError';
  }
}

const EPERM = 1;
const ENOENT = 2;
const EACCES = 13;
const EEXIST = 17;
const EINVAL = 22;
const EOPNOTSUPP = 95;

/** BPF_SK_SKB_VERDICT (linux 5.13): an sk_skb program run on every skb a socket of a sockmap/sockhash receives */
export const BPF_SK_SKB_VERDICT = 38;
/** BPF_TCX_INGRESS (linux 6.6); libbpf 1.1's enum stops earlier, the kernel takes the number */
export const BPF_TCX_INGRESS = 46;
const BPF_TC_INGRESS = 1;
const BPF_TC_EGRESS = 2;
const BPF_ANY = 0;

function errnoText(e: number): string {
  switch (e) {
    case EPERM:
      return 'EPERM';
    case EACCES:
      return 'EACCES';
    case ENOENT:
      return 'ENOENT';
    case EINVAL:
      return 'EINVAL';
    case EEXIST:
      return 'EEXIST';
    case EOPNOTSUPP:
      return 'EOPNOTSUPP';
    default:
      return `errno ${e}`;
  }
}

const PRIV_FIX = 'run the director as root (it needs CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON)';

function permOr(code: BpfErrorCode, what: string, errno: number, fix: string): BpfError {
  if (errno === EPERM || errno === EACCES)
    return new BpfError('BPF_PERM', `${what}: ${errnoText(errno)}; ${PRIV_FIX}`, errno);
  return new BpfError(code, `${what}: ${errnoText(errno)}; ${fix}`, errno);
}

interface Lib {
  open: (path: string, opts: null) => unknown;
  load: (obj: unknown) => number;
  close: (obj: unknown) => void;
  findMap: (obj: unknown, name: string) => unknown;
  findProg: (obj: unknown, name: string) => unknown;
  mapFd: (map: unknown) => number;
  setMaxEntries: (map: unknown, n: number) => number;
  progFd: (prog: unknown) => number;
  update: (fd: number, key: Buffer, value: Buffer, flags: number) => number;
  lookup: (fd: number, key: Buffer, value: Buffer) => number;
  del: (fd: number, key: Buffer) => number;
  nextKey: (fd: number, key: Buffer | null, next: Buffer) => number;
  linkCreate: (progFd: number, target: number, type: number, opts: null) => number;
  progAttach: (progFd: number, target: number, type: number, flags: number) => number;
  tcHookCreate: (hook: Buffer) => number;
  tcHookDestroy: (hook: Buffer) => number;
  tcAttach: (hook: Buffer, opts: Buffer) => number;
  tcDetach: (hook: Buffer, opts: Buffer) => number;
  testRun: (fd: number, opts: Buffer) => number;
  possibleCpus: () => number;
}

let lib: Lib | undefined;

/** libbpf.so.1, loaded on first use; throws BpfError BPF_NO_LIBBPF when it is not installed. */
function libbpf(): Lib {
  if (lib) return lib;
  let so: ReturnType<typeof koffi.load>;
  try {
    so = koffi.load('libbpf.so.1');
  } catch (e) {
    throw new BpfError(
      'BPF_NO_LIBBPF',
      `libbpf.so.1 cannot be loaded (${(e as Error).message}); fix: apt-get install libbpf1`,
    );
  }
  const f = (sig: string) => so.func(sig);
  const setPrint = f('void *libbpf_set_print(void *fn)');
  if (!process.env.TIERLB_BPF_DEBUG) setPrint(null);
  lib = {
    open: f('void *bpf_object__open_file(const char *path, const void *opts)'),
    load: f('int bpf_object__load(void *obj)'),
    close: f('void bpf_object__close(void *obj)'),
    findMap: f('void *bpf_object__find_map_by_name(void *obj, const char *name)'),
    findProg: f('void *bpf_object__find_program_by_name(void *obj, const char *name)'),
    mapFd: f('int bpf_map__fd(void *map)'),
    setMaxEntries: f('int bpf_map__set_max_entries(void *map, uint32_t n)'),
    progFd: f('int bpf_program__fd(void *prog)'),
    update: f('int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags)'),
    lookup: f('int bpf_map_lookup_elem(int fd, const void *key, _Out_ void *value)'),
    del: f('int bpf_map_delete_elem(int fd, const void *key)'),
    nextKey: f('int bpf_map_get_next_key(int fd, const void *key, _Out_ void *next)'),
    linkCreate: f('int bpf_link_create(int prog_fd, int target_fd, int type, const void *opts)'),
    progAttach: f('int bpf_prog_attach(int prog_fd, int target_fd, int type, unsigned int flags)'),
    tcHookCreate: f('int bpf_tc_hook_create(void *hook)'),
    tcHookDestroy: f('int bpf_tc_hook_destroy(void *hook)'),
    tcAttach: f('int bpf_tc_attach(const void *hook, _Inout_ void *opts)'),
    tcDetach: f('int bpf_tc_detach(const void *hook, const void *opts)'),
    testRun: f('int bpf_prog_test_run_opts(int fd, _Inout_ void *opts)'),
    possibleCpus: f('int libbpf_num_possible_cpus(void)'),
  } as unknown as Lib;
  return lib;
}

/** A map of a loaded object: raw key/value buffers, sizes checked by the kernel. */
/**
 * Where a compiled BPF object is: `$envVar` when set, else beside the module that loads it (`moduleUrl`, in dist/),
 * else (that module run from src/ by tsx) where `npm run build` put it: dist/`dir`/`file`.
 */
export function builtObjectPath(envVar: string, moduleUrl: string, dir: string, file: string): string {
  const env = process.env[envVar];
  if (env) return env;
  const here = fileURLToPath(new URL(`./${file}`, moduleUrl));
  if (existsSync(here)) return here;
  // (this file is src/sys/bpf.ts or dist/sys/bpf.js: the repository is two levels up)
  return fileURLToPath(new URL(`../../dist/${dir}/${file}`, import.meta.url));
}

export class BpfMap {
  constructor(
    readonly name: string,
    readonly fd: number,
  ) {}

  /** BPF_MAP_UPDATE_ELEM (BPF_ANY). */
  update(key: Buffer, value: Buffer, flags = BPF_ANY): void {
    const r = libbpf().update(this.fd, key, value, flags);
    if (r < 0) throw permOr('BPF_MAP', `bpf_map_update_elem(${this.name})`, -r, 'the map may be full');
  }

  /** BPF_MAP_UPDATE_ELEM of a sockmap/sockhash: the value is the socket's file descriptor (the map keeps the socket,
   * not the fd). */
  updateSocket(key: Buffer, fd: number, flags = BPF_ANY): void {
    const v = Buffer.alloc(8);
    v.writeUInt32LE(fd, 0);
    this.update(key, v, flags);
  }

  /** BPF_MAP_LOOKUP_ELEM into `value`; false when the key is absent. */
  lookup(key: Buffer, value: Buffer): boolean {
    const r = libbpf().lookup(this.fd, key, value);
    if (r === -ENOENT) return false;
    if (r < 0) throw permOr('BPF_MAP', `bpf_map_lookup_elem(${this.name})`, -r, 'a bug: report it');
    return true;
  }

  /** BPF_MAP_DELETE_ELEM; false when the key was absent. */
  delete(key: Buffer): boolean {
    const r = libbpf().del(this.fd, key);
    if (r === -ENOENT) return false;
    if (r < 0) throw permOr('BPF_MAP', `bpf_map_delete_elem(${this.name})`, -r, 'a bug: report it');
    return true;
  }

  /** Every key (BPF_MAP_GET_NEXT_KEY), each a fresh buffer of `keySize` bytes. */
  keys(keySize: number): Buffer[] {
    const out: Buffer[] = [];
    let prev: Buffer | null = null;
    for (;;) {
      const next = Buffer.alloc(keySize);
      const r = libbpf().nextKey(this.fd, prev, next);
      if (r === -ENOENT) return out;
      if (r < 0) throw permOr('BPF_MAP', `bpf_map_get_next_key(${this.name})`, -r, 'a bug: report it');
      out.push(next);
      prev = next;
    }
  }
}

export interface TestRunResult {
  retval: number;
  /** the packet after the program */
  data: Buffer;
  /** the context after the program (struct __sk_buff), when one was passed in */
  ctx?: Buffer;
}

/** An attachment made by attachIngress; detach() undoes it. */
export interface BpfAttachment {
  ifindex: number;
  kind: 'tcx' | 'clsact';
  detach(): void;
}

/** A loaded BPF object: its maps and programs live until close(). */
export class BpfObject {
  private obj: unknown;
  private readonly attachments = new Set<BpfAttachment>();

  private constructor(obj: unknown) {
    this.obj = obj;
  }

  /**
   * Open and load an object file. `maxEntries` resizes maps before the load (name → entries). Throws BpfError:
   * BPF_NO_LIBBPF, BPF_NO_OBJECT, BPF_PERM, BPF_LOAD.
   */
  static load(path: string, maxEntries: Record<string, number> = {}): BpfObject {
    if (!existsSync(path))
      throw new BpfError(
        'BPF_NO_OBJECT',
        `${path} is missing: the fast path's BPF program was not built; fix: npm run build (needs clang and libbpf-dev: scripts/install-deps.sh)`,
      );
    const l = libbpf();
    const obj = l.open(path, null);
    if (!obj) throw permOr('BPF_LOAD', `bpf_object__open_file(${path})`, koffi.errno(), 'rebuild it: npm run build');
    for (const [name, n] of Object.entries(maxEntries)) {
      const m = l.findMap(obj, name);
      if (m) l.setMaxEntries(m, n);
    }
    const r = l.load(obj);
    if (r < 0) {
      l.close(obj);
      throw permOr(
        'BPF_LOAD',
        `bpf_object__load(${path})`,
        -r,
        'the kernel refused the program (set TIERLB_BPF_DEBUG=1 to see the verifier log)',
      );
    }
    return new BpfObject(obj);
  }

  private get handle(): unknown {
    if (!this.obj) throw new BpfError('BPF_NOT_FOUND', 'the BPF object is closed');
    return this.obj;
  }

  map(name: string): BpfMap {
    const m = libbpf().findMap(this.handle, name);
    if (!m) throw new BpfError('BPF_NOT_FOUND', `the BPF object has no map ${name}; fix: npm run build`);
    return new BpfMap(name, libbpf().mapFd(m));
  }

  programFd(name: string): number {
    const p = libbpf().findProg(this.handle, name);
    if (!p) throw new BpfError('BPF_NOT_FOUND', `the BPF object has no program ${name}; fix: npm run build`);
    return libbpf().progFd(p);
  }

  /**
   * Attach a program at the tc ingress of `ifindex`: a tcx link, else (tcx missing) a clsact filter. Throws BPF_PERM
   * or BPF_ATTACH.
   */
  attachIngress(progName: string, ifindex: number): BpfAttachment {
    const l = libbpf();
    const fd = this.programFd(progName);
    const link =
      process.env.TIERLB_BPF_ATTACH === 'clsact' ? -EOPNOTSUPP : l.linkCreate(fd, ifindex, BPF_TCX_INGRESS, null);
    if (link >= 0) {
      const a: BpfAttachment = {
        ifindex,
        kind: 'tcx',
        detach: () => {
          if (!this.attachments.delete(a)) return;
          closeSync(link);
        },
      };
      this.attachments.add(a);
      return a;
    }
    if (-link === EPERM || -link === EACCES) throw permOr('BPF_ATTACH', 'bpf_link_create(tcx)', -link, '');
    // struct bpf_tc_hook { size_t sz; int ifindex; enum attach_point; __u32 parent; } (24 bytes)
    const hook = Buffer.alloc(24);
    hook.writeBigUInt64LE(24n, 0);
    hook.writeInt32LE(ifindex, 8);
    hook.writeUInt32LE(BPF_TC_INGRESS, 12);
    const h = l.tcHookCreate(hook);
    const created = h === 0;
    if (h < 0 && -h !== EEXIST)
      throw permOr('BPF_ATTACH', `tcx link: ${errnoText(-link)}; clsact qdisc`, -h, 'the kernel lacks tcx and clsact');
    // struct bpf_tc_opts { size_t sz; int prog_fd; __u32 flags, prog_id, handle, priority; } (32 bytes)
    const opts = Buffer.alloc(32);
    opts.writeBigUInt64LE(32n, 0);
    opts.writeInt32LE(fd, 8);
    // libbpf destroys the clsact qdisc itself only for attach point INGRESS|EGRESS (INGRESS alone flushes filters)
    const destroyQdisc = () => {
      const all = Buffer.from(hook);
      all.writeUInt32LE(BPF_TC_INGRESS | BPF_TC_EGRESS, 12);
      l.tcHookDestroy(all);
    };
    const r = l.tcAttach(hook, opts);
    if (r < 0) {
      if (created) destroyQdisc();
      throw permOr('BPF_ATTACH', `tcx link: ${errnoText(-link)}; clsact filter`, -r, 'the kernel refused both');
    }
    const a: BpfAttachment = {
      ifindex,
      kind: 'clsact',
      detach: () => {
        if (!this.attachments.delete(a)) return;
        const d = Buffer.alloc(32);
        d.writeBigUInt64LE(32n, 0);
        d.writeUInt32LE(opts.readUInt32LE(20), 20); // handle
        d.writeUInt32LE(opts.readUInt32LE(24), 24); // priority
        l.tcDetach(hook, d);
        // the qdisc goes only if this attach made it (another tool's filters stay)
        if (created) destroyQdisc();
      },
    };
    this.attachments.add(a);
    return a;
  }

  /**
   * Attach a program to a map (bpf_prog_attach; e.g. an sk_skb verdict program to a sockhash, BPF_SK_SKB_VERDICT).
   * The map holds the program until it is freed, so it goes with close(). Throws BPF_PERM or BPF_ATTACH.
   */
  attachToMap(progName: string, map: BpfMap, attachType: number): void {
    const r = libbpf().progAttach(this.programFd(progName), map.fd, attachType, 0);
    if (r < 0)
      throw permOr('BPF_ATTACH', `bpf_prog_attach(${progName}, ${map.name})`, -r, 'the kernel lacks sockmap support');
  }

  /** BPF_PROG_TEST_RUN on one packet (Ethernet frame); `ctx` is an optional struct __sk_buff. */
  testRun(progName: string, packet: Buffer, ctx?: Buffer): TestRunResult {
    const out = Buffer.alloc(packet.length + 256);
    // struct bpf_test_run_opts (libbpf 1.1): sz, data_in, data_out, data_size_in, data_size_out, ctx_in, ctx_out,
    // ctx_size_in, ctx_size_out, retval, repeat, duration, flags, cpu, batch_size
    const o = Buffer.alloc(80);
    o.writeBigUInt64LE(80n, 0);
    o.writeBigUInt64LE(koffi.address(packet) as bigint, 8);
    o.writeBigUInt64LE(koffi.address(out) as bigint, 16);
    o.writeUInt32LE(packet.length, 24);
    o.writeUInt32LE(out.length, 28);
    const ctxOut = ctx ? Buffer.alloc(ctx.length) : undefined;
    if (ctx && ctxOut) {
      o.writeBigUInt64LE(koffi.address(ctx) as bigint, 32);
      o.writeBigUInt64LE(koffi.address(ctxOut) as bigint, 40);
      o.writeUInt32LE(ctx.length, 48);
      o.writeUInt32LE(ctxOut.length, 52);
    }
    o.writeInt32LE(1, 60); // repeat
    const r = libbpf().testRun(this.programFd(progName), o);
    if (r < 0) throw permOr('BPF_TEST_RUN', `bpf_prog_test_run_opts(${progName})`, -r, 'a bug: report it');
    return {
      retval: o.readUInt32LE(56),
      data: out.subarray(0, o.readUInt32LE(28)),
      ctx: ctxOut?.subarray(0, o.readUInt32LE(52)),
    };
  }

  /** Detach everything, then close every map and program fd. */
  close(): void {
    for (const a of [...this.attachments]) a.detach();
    if (this.obj) libbpf().close(this.obj);
    this.obj = undefined;
  }
}

/** Possible CPUs (the value count of a per-CPU map). */
export function possibleCpus(): number {
  return libbpf().possibleCpus();
}
