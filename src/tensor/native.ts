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
// OpenBLAS reads this once when it loads; a caller can still change it later with setBlasThreads.
if (process.env.OPENBLAS_NUM_THREADS === undefined) process.env.OPENBLAS_NUM_THREADS = '1';

export const native: Record<string, NativeFn> = require(findAddon());

// Keep freed tensor memory in the heap instead of returning it to the kernel after every op
// (native/addon.cc, setMallocThresholds): 32 MiB is glibc's largest mmap threshold, and up to
// 1 GiB of free heap top is kept. DDPM_MALLOC=default leaves glibc's own dynamic thresholds.
if (process.env.DDPM_MALLOC !== 'default') native.setMallocThresholds!(32 * 1024 * 1024, 1024 * 1024 * 1024);
