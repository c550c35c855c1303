// Process-level settings of the engine: threads, BLAS, autograd mode, live-tensor accounting.
import { native } from './native.js';
import { checkInt } from './check.js';

/** libtorch's intra-op threads (torch.set_num_threads). */
export function setNumThreads(n: number): void { native.setNumThreads(checkInt('setNumThreads', n, 1)); }
export function getNumThreads(): number { return native.getNumThreads() as number; }

/** OpenBLAS's own threads (DESIGN.md: 1 is best for training dli02 here, 2 for sampling). Returns false without OpenBLAS. */
export function setBlasThreads(n: number): boolean { return native.setBlasThreads(checkInt('setBlasThreads', n, 1)) as boolean; }
export function blasInfo(): string { return native.blasInfo() as string; }
export function libtorchVersion(): string { return native.libtorchVersion() as string; }
export function parallelInfo(): string { return native.parallelInfo() as string; }
export function cudaAvailable(): boolean { return native.cudaAvailable() as boolean; }

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

export function withGrad<T>(fn: () => T): T {
  const prev = native.isGradEnabled() as boolean;
  native.setGradEnabled(true);
  try {
    return fn();
  } finally {
    native.setGradEnabled(prev);
  }
}
