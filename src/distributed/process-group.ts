// A c10d process group (native/distributed.cc): torch.distributed's init_process_group, all_reduce,
// broadcast, barrier and destroy_process_group for ddpm-ts tensors. Rank 0 hosts the rendezvous
// store (a c10d TCPStore at MASTER_ADDR:MASTER_PORT); Gloo moves CPU tensors, NCCL CUDA tensors.
// Collectives block until done, as synchronous torch.distributed calls do. A collective that fails
// because a peer died is turned into an error naming the lost rank (see #lostRanks).
import { createHash } from 'node:crypto';
import { native } from '../tensor/native.js';
import { Tensor, cudaAvailable, ArgumentError } from '../tensor/index.js';

export type Backend = (typeof BACKENDS)[number];
export const BACKENDS = ['gloo', 'nccl'] as const;
export type ReduceOp = 'sum' | 'max' | 'min' | 'product';
// c10d::ReduceOp::RedOpType (torch/csrc/distributed/c10d/Types.hpp).
const REDUCE_CODE: Record<ReduceOp, number> = { sum: 0, product: 2, min: 3, max: 4 };

/** torch.distributed's default timeout is 30 min; a training step here takes seconds, so a lost rank is noticed sooner. */
export const DEFAULT_TIMEOUT_MS = 60_000;

export interface InitOptions {
  rank: number;
  worldSize: number;
  /** Where rank 0's store listens (MASTER_ADDR). */
  masterAddr: string;
  /** MASTER_PORT; rank 0 listens there. */
  masterPort: number;
  /** Default: nccl when device is cuda, else gloo (torch.distributed's choice). */
  backend?: Backend;
  device?: 'cpu' | 'cuda';
  /** How long to wait for the other ranks: to join, and in every collective (default 60 s). */
  timeoutMs?: number;
}

type Native = { __distHandle: unknown };

/** Backends this libtorch was built with. */
export function availableBackends(): Backend[] {
  return native.distBackends() as Backend[];
}

export class DistributedError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'DistributedError';
  }
}

export class ProcessGroup {
  readonly rank: number;
  readonly worldSize: number;
  readonly backend: Backend;
  readonly timeoutMs: number;
  readonly #where: string;
  #store: Native | null;
  #pg: Native | null;

  constructor(o: InitOptions) {
    checkInit(o);
    this.rank = o.rank;
    this.worldSize = o.worldSize;
    this.timeoutMs = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.backend = o.backend ?? (o.device === 'cuda' ? 'nccl' : 'gloo');
    this.#where = `${o.masterAddr}:${o.masterPort}`;
    if (this.backend === 'nccl' && !cudaAvailable()) {
      throw new DistributedError('--backend nccl needs CUDA, but this libtorch sees no CUDA device; use --backend gloo (CPU tensors), or a CUDA build of libtorch on a machine with an NVIDIA GPU');
    }
    if (!availableBackends().includes(this.backend)) {
      throw new DistributedError(`--backend ${this.backend}: this libtorch was built without it (it has ${availableBackends().join(', ') || 'none'})`);
    }
    this.#store = openStore(o, this.timeoutMs);
    try {
      // Gloo binds its own sockets to the address the other ranks reach this machine at; on one machine that is loopback.
      const host = isLoopback(o.masterAddr) ? '127.0.0.1' : '';
      this.#pg = native.distProcessGroup(this.#store, o.rank, o.worldSize, this.backend, this.timeoutMs, host) as Native;
    } catch (e) {
      native.distDestroy(this.#store);
      throw new DistributedError(`rank ${o.rank}: could not form the ${this.backend} process group of ${o.worldSize} ranks at ${this.#where} within ${this.timeoutMs / 1000} s: ${(e as Error).message}`, { cause: e });
    }
  }

  /** In place: every tensor becomes the reduction (sum by default) of its copies on all ranks. */
  allReduce(tensors: Tensor[], op: ReduceOp = 'sum'): void {
    if (!(op in REDUCE_CODE)) throw new ArgumentError(`allReduce: op must be one of ${Object.keys(REDUCE_CODE).join(', ')}, got ${JSON.stringify(op)}`);
    this.#collective('allreduce', () => native.distAllReduce(this.#group(), checkTensors('allReduce', tensors, this.backend), REDUCE_CODE[op]));
  }

  /**
   * A new tensor holding the sum of `x` over the ranks, through which gradients flow: its backward
   * sums the ranks' gradients (torch.distributed.nn.functional.all_reduce). Every rank must call it,
   * and later run backward, at the same point.
   */
  allReduceWithGrad(x: Tensor): Tensor {
    let out: Tensor | undefined;
    checkTensors('allReduceWithGrad', [x], this.backend);
    this.#collective('allreduce', () => { out = new Tensor(native.distAllReduceGrad(this.#group(), x.handle)); });
    return out!;
  }

  /** In place: every tensor takes rank `src`'s values. */
  broadcast(tensors: Tensor[], src = 0): void {
    if (!(Number.isInteger(src) && src >= 0 && src < this.worldSize)) throw new ArgumentError(`broadcast: src must be a rank in [0, ${this.worldSize}), got ${src}`);
    this.#collective('broadcast', () => native.distBroadcast(this.#group(), checkTensors('broadcast', tensors, this.backend), src));
  }

  /** Returns once every rank has called it. */
  barrier(): void {
    this.#collective('barrier', () => native.distBarrier(this.#group()));
  }

  /**
   * Refuses to go on unless every rank passed the same value (compared by SHA-256 of its JSON), naming
   * the first field that differs and the ranks. Rank r publishes its value in the store; each rank
   * reads all of them.
   */
  agree(what: string, value: unknown): void {
    const json = JSON.stringify(value);
    const hash = createHash('sha256').update(json).digest('hex');
    this.#storeCall(() => native.distStoreSet(this.#storeHandle(), `agree/${what}/${this.rank}`, json));
    for (let r = 0; r < this.worldSize; r++) {
      if (r === this.rank) continue;
      const theirs = this.#storeCall(() => native.distStoreGet(this.#storeHandle(), `agree/${what}/${r}`) as string);
      if (createHash('sha256').update(theirs).digest('hex') !== hash) {
        const diff = firstDifference(JSON.parse(json), JSON.parse(theirs), '');
        throw new DistributedError(`rank ${this.rank}: the ranks' ${what} differ: ${diff.path || what} is ${diff.mine} on rank ${this.rank} but ${diff.theirs} on rank ${r}; start every rank with the same run-defining flags`);
      }
    }
  }

  /** Frees the process group and the store (torch.distributed.destroy_process_group). A second call does nothing. */
  destroy(): void {
    if (this.#pg) native.distDestroy(this.#pg);
    if (this.#store) native.distDestroy(this.#store);
    this.#pg = null;
    this.#store = null;
  }

  get destroyed(): boolean { return this.#pg === null; }

  #group(): Native {
    if (!this.#pg) throw new DistributedError('the process group was destroyed (destroyProcessGroup) and cannot be used');
    return this.#pg;
  }
  #storeHandle(): Native {
    if (!this.#store) throw new DistributedError('the process group was destroyed (destroyProcessGroup) and cannot be used');
    return this.#store;
  }

  #storeCall<T>(fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      if (e instanceof ArgumentError || e instanceof DistributedError) throw e;
      throw new DistributedError(`rank ${this.rank}: the store at ${this.#where} did not answer within ${this.timeoutMs / 1000} s (rank 0, which holds it, may be gone): ${(e as Error).message}`, { cause: e });
    }
  }

  #collective(op: string, fn: () => void): void {
    try {
      fn();
    } catch (e) {
      if (e instanceof ArgumentError || e instanceof DistributedError) throw e;
      const lost = this.#lostRanks();
      const who = lost.length === 0 ? 'no rank was found missing'
        : `lost rank${lost.length > 1 ? 's' : ''} ${lost.join(', ')} of ${this.worldSize} (killed, crashed, or unreachable)`;
      throw new DistributedError(`rank ${this.rank}: ${op} failed: ${who}: ${(e as Error).message}`, { cause: e });
    }
  }

  /**
   * After a failed collective: the ranks that do not check in. Each surviving rank writes an
   * "alive" key and waits a little for the others'; a rank killed outright never writes one. When
   * the store itself is gone, rank 0 (its host) is the one lost.
   */
  #lostRanks(): number[] {
    const store = this.#store;
    if (!store) return [];
    const key = (r: number): string => `alive/${r}`;
    try {
      native.distStoreSet(store, key(this.rank), '1');
      // Long enough for a peer still computing its step to reach the failed collective and check in.
      const deadline = Date.now() + Math.min(this.timeoutMs / 2, 10_000);
      let missing = [...Array(this.worldSize).keys()].filter((r) => r !== this.rank);
      while (missing.length > 0 && Date.now() < deadline) {
        missing = missing.filter((r) => !(native.distStoreCheck(store, [key(r)]) as boolean));
        if (missing.length > 0) sleepSync(100);
      }
      return missing;
    } catch {
      return this.rank === 0 ? [] : [0];
    }
  }
}

function checkInit(o: InitOptions): void {
  const where = 'initProcessGroup';
  if (!(Number.isInteger(o.worldSize) && o.worldSize >= 1)) throw new ArgumentError(`${where}: worldSize must be an integer >= 1, got ${String(o.worldSize)}`);
  if (!(Number.isInteger(o.rank) && o.rank >= 0 && o.rank < o.worldSize)) throw new ArgumentError(`${where}: rank must be an integer in [0, ${o.worldSize}), got ${String(o.rank)}`);
  if (typeof o.masterAddr !== 'string' || o.masterAddr === '') throw new ArgumentError(`${where}: masterAddr must be a host name or address, got ${JSON.stringify(o.masterAddr)}`);
  if (!(Number.isInteger(o.masterPort) && o.masterPort >= 1 && o.masterPort <= 65535)) throw new ArgumentError(`${where}: masterPort must be a TCP port in [1, 65535], got ${String(o.masterPort)}`);
  if (o.backend !== undefined && !BACKENDS.includes(o.backend)) throw new ArgumentError(`${where}: backend must be one of ${BACKENDS.join(', ')}, got ${JSON.stringify(o.backend)}`);
  if (o.timeoutMs !== undefined && !(Number.isInteger(o.timeoutMs) && o.timeoutMs >= 1)) throw new ArgumentError(`${where}: timeoutMs must be a positive integer, got ${String(o.timeoutMs)}`);
}

function openStore(o: InitOptions, timeoutMs: number): Native {
  const where = `${o.masterAddr}:${o.masterPort}`;
  try {
    return native.distStore(o.masterAddr, o.masterPort, o.rank === 0, o.worldSize, timeoutMs) as Native;
  } catch (e) {
    const m = (e as Error).message;
    if (o.rank === 0 && /address already in use|EADDRINUSE|errno: 98/i.test(m)) {
      throw new DistributedError(`rank 0: the master port ${o.masterPort} on ${o.masterAddr} is in use (another run or program listens there); choose another --master-port (MASTER_PORT)`, { cause: e });
    }
    if (o.rank === 0) {
      throw new DistributedError(`rank 0: not all ${o.worldSize} ranks joined the store at ${where} within ${timeoutMs / 1000} s (--dist-timeout): ${m}`, { cause: e });
    }
    throw new DistributedError(`rank ${o.rank}: could not reach the master at ${where} within ${timeoutMs / 1000} s (--dist-timeout); check MASTER_ADDR/--master-addr and MASTER_PORT/--master-port, and that rank 0 is running: ${m}`, { cause: e });
  }
}

function checkTensors(op: string, tensors: Tensor[], backend: Backend): unknown[] {
  if (!Array.isArray(tensors) || tensors.length === 0 || !tensors.every((t) => t instanceof Tensor)) {
    throw new ArgumentError(`${op}: expected a non-empty array of tensors, got ${Array.isArray(tensors) ? `an array of ${tensors.length}` : typeof tensors}`);
  }
  tensors.forEach((t, i) => {
    if (!t.isContiguous()) throw new ArgumentError(`${op}: tensor ${i} is not contiguous; c10d moves contiguous memory (call .contiguous() and copy the result back)`);
    const want = backend === 'nccl' ? 'cuda' : 'cpu';
    if (!t.device.startsWith(want)) throw new ArgumentError(`${op}: tensor ${i} is on ${t.device}, but the ${backend} backend moves ${want} tensors`);
  });
  return tensors.map((t) => t.handle);
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || /^127\./.test(host) || host === '::1';
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function firstDifference(a: unknown, b: unknown, path: string): { path: string; mine: string; theirs: string } {
  if (a !== null && b !== null && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    for (const k of keys) {
      const av = (a as Record<string, unknown>)[k];
      const bv = (b as Record<string, unknown>)[k];
      if (JSON.stringify(av) !== JSON.stringify(bv)) return firstDifference(av, bv, path ? `${path}.${k}` : k);
    }
  }
  return { path, mine: JSON.stringify(a) ?? 'absent', theirs: JSON.stringify(b) ?? 'absent' };
}

// ---------------------------------------------------------------- torch.distributed's module-level API
let defaultGroup: ProcessGroup | null = null;

/** Joins (or, on rank 0, hosts) a process group and makes it the default one for the functions below. */
export function initProcessGroup(o: InitOptions): ProcessGroup {
  if (defaultGroup && !defaultGroup.destroyed) throw new DistributedError('initProcessGroup: a default process group already exists; call destroyProcessGroup() first');
  defaultGroup = new ProcessGroup(o);
  return defaultGroup;
}

function group(g: ProcessGroup | undefined, op: string): ProcessGroup {
  const pg = g ?? defaultGroup;
  if (!pg || pg.destroyed) throw new DistributedError(`${op}: no process group; call initProcessGroup first`);
  return pg;
}

export function allReduce(tensors: Tensor | Tensor[], o: { op?: ReduceOp; group?: ProcessGroup } = {}): void {
  group(o.group, 'allReduce').allReduce(Array.isArray(tensors) ? tensors : [tensors], o.op ?? 'sum');
}
export function broadcast(tensors: Tensor | Tensor[], o: { src?: number; group?: ProcessGroup } = {}): void {
  group(o.group, 'broadcast').broadcast(Array.isArray(tensors) ? tensors : [tensors], o.src ?? 0);
}
export function barrier(o: { group?: ProcessGroup } = {}): void { group(o.group, 'barrier').barrier(); }
export function getRank(o: { group?: ProcessGroup } = {}): number { return group(o.group, 'getRank').rank; }
export function getWorldSize(o: { group?: ProcessGroup } = {}): number { return group(o.group, 'getWorldSize').worldSize; }
export function destroyProcessGroup(o: { group?: ProcessGroup } = {}): void {
  const pg = o.group ?? defaultGroup;
  pg?.destroy();
  if (pg === defaultGroup) defaultGroup = null;
}
