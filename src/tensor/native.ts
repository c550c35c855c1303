// Loads the libtorch addon (native/addon.cc, built by node-gyp into build/Release).
// The addon is a thin shim; this module only finds it and types its entry points as opaque.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

/** An opaque handle to a libtorch tensor owned by the addon. */
export type Handle = { readonly __tensorHandle: unique symbol };
/** An opaque handle to a libtorch generator. */
export type GeneratorHandle = { readonly __generatorHandle: unique symbol };

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type NativeFn = (...args: any[]) => any;

function findAddon(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  // src/tensor -> repo root is ../..; dist/src/tensor -> ../../..
  for (const up of ['../..', '../../..']) {
    const candidate = path.resolve(here, up, 'build', 'Release', 'ddpm_torch.node');
    if (existsSync(candidate)) return candidate;
  }
  throw new Error(
    'ddpm-ts: the libtorch addon is not built (build/Release/ddpm_torch.node is missing).\n' +
      'Run `npm run setup` (installs libtorch on Debian when root, then builds), or `npm run build:native`.',
  );
}

const require = createRequire(import.meta.url);
// One OpenBLAS thread unless the environment says otherwise: OpenBLAS's threads fight libtorch's, and
// two made training slower and `ddpm sample` 1.7x slower for dli02 (21.8 against 37.2 img/s, 500
// images) and 1.2x for the ddpm preset here. OpenBLAS reads this once when it loads; a caller can
// still change it later with setBlasThreads.
if (process.env.OPENBLAS_NUM_THREADS === undefined) process.env.OPENBLAS_NUM_THREADS = '1';

export const native: Record<string, NativeFn> = require(findAddon());

// glibc's malloc, tuned for tensors (native/addon.cc, mallopt). DDPM_MALLOC=default leaves glibc's own settings.
// - Keep freed tensor memory in the heap instead of returning it to the kernel after every op: glibc
//   hands blocks above its mmap threshold back on free, so each new activation tensor page-faults all
//   its pages again, and page faults are slow on virtual machines. 32 MiB is glibc's largest mmap
//   threshold; up to 1 GiB of free heap top is kept.
// - One arena for every thread: a thread's own arena grows in 64 MiB heaps that glibc unmaps as soon
//   as they empty, so a model replica in a worker thread (models/data-parallel.ts) page-faulted its
//   activations afresh every few steps. Set before any worker thread allocates.
const M_TRIM_THRESHOLD = -1;
const M_MMAP_THRESHOLD = -3;
const M_ARENA_MAX = -8;
if (process.env.DDPM_MALLOC !== 'default') {
  native.mallopt!(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
  native.mallopt!(M_TRIM_THRESHOLD, 1024 * 1024 * 1024);
  native.mallopt!(M_ARENA_MAX, 1);
}
