// Process-level settings of the engine: threads, BLAS, malloc, the CPU allocator, autograd and
// inference mode, live-tensor accounting.
// Nothing in the library changes these behind the caller's back; configureRuntime is the one call
// that applies the settings the `ddpm` command runs with.
import { totalmem } from 'node:os';
import { native, nativeLoaded } from './native.js';
import { ArgumentError, checkInt } from './check.js';

/** libtorch's intra-op threads (torch.set_num_threads). */
export function setNumThreads(n: number): void { native.setNumThreads(checkInt('setNumThreads', n, 1)); }
export function getNumThreads(): number { return native.getNumThreads() as number; }

/** OpenBLAS's own threads (configureRuntime says why 1). Returns false without OpenBLAS. */
export function setBlasThreads(n: number): boolean { return native.setBlasThreads(checkInt('setBlasThreads', n, 1)) as boolean; }
/** OpenBLAS's thread count now, or null when the BLAS is not OpenBLAS. */
export function getBlasThreads(): number | null { return native.getBlasThreads() as number | null; }
/** The glibc malloc parameters set through this process's addon, as [param, value] pairs (glibc has no getter). */
export function mallocSettings(): [number, number][] { return native.malloptSettings() as [number, number][]; }

/** Whether libtorch is usable here: loads the addon if it is not loaded yet. */
export function libtorchAvailable(): boolean {
  try {
    native.getNumThreads();
    return true;
  } catch {
    return false;
  }
}

export interface RuntimeOptions {
  /** libtorch's intra-op threads; left as libtorch chose (one per core) when absent. */
  threads?: number;
  /** OpenBLAS's threads; default $OPENBLAS_NUM_THREADS, else 1. */
  blasThreads?: number;
  /** 'tensors' (default unless $DDPM_MALLOC=default) keeps freed memory and one arena; 'default' leaves glibc's. */
  malloc?: 'tensors' | 'default';
  /** libtorch's CPU allocator: 'caching' keeps freed blocks for reuse, 'default' is c10's. Default $DDPM_ALLOCATOR, else 'caching'. */
  allocator?: CpuAllocator;
  /** Most bytes of freed blocks the caching allocator keeps. Default $DDPM_ALLOCATOR_CAP (bytes, or with K, M or G), else defaultAllocatorCap(). */
  allocatorCapBytes?: number;
}

export interface RuntimeSettings {
  threads: number;
  blasThreads: number | null;
  malloc: 'tensors' | 'default';
  allocator: CpuAllocator;
  allocatorCapBytes: number;
}

export type CpuAllocator = 'caching' | 'default';

/** The caching allocator's counters (native/cpu-allocator.cc); bytes are of size classes, not requests. */
export interface AllocatorStats {
  /** Bytes of blocks it made that tensors hold now. */
  inUseBytes: number;
  /** Bytes of freed blocks kept for reuse. */
  cachedBytes: number;
  peakInUseBytes: number;
  /** The most inUseBytes + cachedBytes has been. */
  peakReservedBytes: number;
  /** Allocations served from the cache. */
  hits: number;
  /** Allocations that went to the system. */
  misses: number;
  /** Frees that went to the system because the cache held its cap. */
  overCapFrees: number;
  capBytes: number;
  /** Whether it is libtorch's CPU allocator now. */
  active: boolean;
}

/** The caching allocator's counters; all zero when it has never been on. */
export function allocatorStats(): AllocatorStats { return native.allocatorStats() as AllocatorStats; }

/** Returns every block the caching allocator keeps to the system; the bytes returned. Tensors alive are untouched. */
export function releaseCachedMemory(): number { return native.releaseCachedMemory() as number; }

/**
 * The caching allocator's cap when none is given: half of physical memory. The cache must hold a
 * workload's whole working set to pay: the ddpm preset sampling at batch 256 with guidance peaks near
 * 5 GB (512 images per model call at 28x28), and under a 2 GiB cap it still refaulted half its pages every
 * step (README, Speed). The blocks kept are the ones the workload's own peak needed, so a cap that
 * fits does not raise the peak.
 */
export function defaultAllocatorCap(): number { return Math.floor(totalmem() / 2); }

const UNITS: Record<string, number> = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30 };

function allocatorFromEnv(): { allocator?: CpuAllocator; capBytes?: number } {
  const kind = process.env.DDPM_ALLOCATOR;
  const cap = process.env.DDPM_ALLOCATOR_CAP;
  const out: { allocator?: CpuAllocator; capBytes?: number } = {};
  if (kind !== undefined && kind !== '') {
    if (kind !== 'caching' && kind !== 'default') throw new ArgumentError(`$DDPM_ALLOCATOR must be caching or default, got ${JSON.stringify(kind)}`);
    out.allocator = kind;
  }
  if (cap !== undefined && cap !== '') {
    const m = /^(\d+)([KMG]?)$/i.exec(cap.trim());
    if (!m) throw new ArgumentError(`$DDPM_ALLOCATOR_CAP must be a number of bytes, optionally with K, M or G (binary units), got ${JSON.stringify(cap)}; e.g. DDPM_ALLOCATOR_CAP=1G`);
    out.capBytes = Number(m[1]) * UNITS[m[2]!.toUpperCase()]!;
  }
  return out;
}

// glibc's mallopt parameters (malloc.h).
const M_TRIM_THRESHOLD = -1;
const M_MMAP_THRESHOLD = -3;
const M_ARENA_MAX = -8;

/**
 * Applies the settings `ddpm` runs with, for the whole process. Call it first, before anything that
 * uses libtorch and before starting worker threads. Measured on 2 cores (README, Speed):
 * - One OpenBLAS thread: OpenBLAS's threads fight libtorch's; two made training slower and `ddpm
 *   sample` 1.7x slower for dli02 (21.8 against 37.2 img/s, 500 images), 1.2x for the ddpm preset.
 *   OpenBLAS sizes its thread pool from $OPENBLAS_NUM_THREADS once, when libtorch loads it, so before
 *   the addon loads this sets that variable (children inherit it too) and then loads the addon;
 *   afterwards it can only call openblas_set_num_threads, and the pool OpenBLAS started stays.
 * - malloc 'tensors': glibc hands blocks above its mmap threshold back to the kernel on free, so every
 *   new activation tensor page-faulted all its pages again (slow on virtual machines). The mmap
 *   threshold goes to 32 MiB (glibc's largest) and up to 1 GiB of free heap top is kept: a training
 *   step of the conv stack became 2.7 times cheaper. One arena for every thread: a thread's own arena
 *   grows in 64 MiB heaps that glibc unmaps as soon as they empty, so a model run on a worker thread
 *   page-faulted its activations afresh every few steps; this must be set before any worker thread
 *   allocates.
 * - allocator 'caching' (native/cpu-allocator.cc): glibc still unmaps blocks above 32 MiB on free, and
 *   the ddpm preset's activations at batch 256 are such blocks; kept for reuse, the
 *   sampling step's minor faults fell from about 927,000 to 154 and sampling ran about twice as fast
 *   on a loaded machine, in less peak memory; dli02 at batch 500 faulted 22 times a step instead of 2,018
 *   and peaked at 369 instead of 515 MB (README, Speed). $DDPM_ALLOCATOR=default turns it off.
 */
export function configureRuntime(o: RuntimeOptions = {}): RuntimeSettings {
  const fromEnv = process.env.OPENBLAS_NUM_THREADS;
  const blas = o.blasThreads ?? (fromEnv !== undefined && /^[1-9]\d*$/.test(fromEnv) ? Number(fromEnv) : 1);
  checkInt('configureRuntime: blasThreads', blas, 1);
  if (o.threads !== undefined) checkInt('configureRuntime: threads', o.threads, 1);
  const malloc = o.malloc ?? (process.env.DDPM_MALLOC === 'default' ? 'default' : 'tensors');
  if (malloc !== 'tensors' && malloc !== 'default') throw new ArgumentError(`configureRuntime: malloc must be 'tensors' or 'default', got ${JSON.stringify(malloc)}`);
  const env = allocatorFromEnv();
  const allocator = o.allocator ?? env.allocator ?? 'caching';
  if (allocator !== 'caching' && allocator !== 'default') throw new ArgumentError(`configureRuntime: allocator must be 'caching' or 'default', got ${JSON.stringify(allocator)}`);
  const allocatorCapBytes = o.allocatorCapBytes ?? env.capBytes ?? defaultAllocatorCap();
  checkInt('configureRuntime: allocatorCapBytes', allocatorCapBytes, 0);
  if (!nativeLoaded()) process.env.OPENBLAS_NUM_THREADS = String(blas);
  if (malloc === 'tensors') {
    native.mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
    native.mallopt(M_TRIM_THRESHOLD, 1024 * 1024 * 1024);
    native.mallopt(M_ARENA_MAX, 1);
  }
  native.setBlasThreads(blas);
  if (o.threads !== undefined) native.setNumThreads(o.threads);
  native.setAllocatorCap(allocatorCapBytes);
  native.setCachingAllocator(allocator === 'caching');
  return { threads: getNumThreads(), blasThreads: getBlasThreads(), malloc, allocator, allocatorCapBytes };
}
export function blasInfo(): string { return native.blasInfo() as string; }
export function libtorchVersion(): string { return native.libtorchVersion() as string; }
export function parallelInfo(): string { return native.parallelInfo() as string; }
export function cudaAvailable(): boolean { return native.cudaAvailable() as boolean; }
/** The NVIDIA GPUs this libtorch sees (0 without CUDA): torch.cuda.device_count(). */
export function cudaDeviceCount(): number { return native.cudaDeviceCount() as number; }

/**
 * Refuses a device this libtorch cannot compute on, before anything is written: `cuda` and `cuda:N`
 * need the addon built against a CUDA libtorch, and N must be below the GPUs it sees. `where` names
 * the flag (e.g. "--device").
 */
export function checkDevice(device: string, where: string): void {
  if (device === 'cpu') return;
  if (!/^cuda(:\d+)?$/.test(device)) throw new ArgumentError(`${where} must be cpu, cuda or cuda:N, got ${JSON.stringify(device)}`);
  if (!cudaAvailable()) {
    throw new ArgumentError(`${where} ${device}: the addon was built against libtorch ${libtorchVersion()} without CUDA (or sees no NVIDIA GPU); ` +
      'rebuild it against a CUDA libtorch: LIBTORCH=/path/to/unpacked/libtorch-cuda npm run build:native, or install a CUDA build of torch for python3 (pip install torch) and run npm run build:native');
  }
  const n = device === 'cuda' ? 0 : Number(device.slice(5));
  const count = cudaDeviceCount();
  if (n >= count) throw new ArgumentError(`${where} ${device}: libtorch sees ${count} GPU${count === 1 ? '' : 's'} (cuda:0..cuda:${count - 1}); choose one of them (CUDA_VISIBLE_DEVICES, when set, hides the others)`);
}

/** Number of tensor handles alive in the addon (created and not yet released): flat in a healthy loop. */
export function liveTensors(): number { return native.liveCount() as number; }

export function isGradEnabled(): boolean { return native.isGradEnabled() as boolean; }

/** Runs fn with autograd recording off (torch.no_grad), restoring the previous mode after. */
export function noGrad<T>(fn: () => T): T {
  const prev = native.isGradEnabled() as boolean;
  native.setGradEnabled(false);
  try {
    return fn();
  } finally {
    native.setGradEnabled(prev);
  }
}

/** Whether this thread is inside inferenceMode now. */
export function isInferenceMode(): boolean { return native.isInferenceMode() as boolean; }

/**
 * Runs fn in libtorch's inference mode (torch.inference_mode), restoring the previous mode after:
 * autograd is off as in noGrad, and the tensors made skip version counting and view tracking. They
 * are inference tensors for good: autograd refuses to save one for backward, and an in-place update
 * of one outside inference mode is refused, so nothing made in here may be kept for training (clone
 * it outside first). `enabled: false` opens a normal (autograd-capable) scope inside one.
 */
export function inferenceMode<T>(fn: () => T, enabled = true): T {
  native.enterInferenceMode(enabled);
  try {
    return fn();
  } finally {
    native.exitInferenceMode();
  }
}

export function withGrad<T>(fn: () => T): T {
  const prev = native.isGradEnabled() as boolean;
  native.setGradEnabled(true);
  try {
    return fn();
  } finally {
    native.setGradEnabled(prev);
  }
}
