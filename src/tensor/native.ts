// Loads the libtorch addon (native/addon.cc, built by node-gyp into build/Release) on first use,
// not at import: `import 'ddpm-ts'` works without libtorch, and so does everything that needs no
// tensors (safetensors, PNG/GIF, the float64 schedule math). The first call that needs libtorch
// loads the addon, or throws the one-line hint of native/find-libtorch.cjs on how to get it.
// Importing changes nothing process-wide; the tuned settings are one explicit call (runtime.ts,
// configureRuntime).
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

const require = createRequire(import.meta.url);

/** The package root: src/tensor is two folders below it, dist/src/tensor three. */
function packageRoot(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  for (const up of ['../..', '../../..']) {
    const root = path.resolve(here, up);
    if (existsSync(path.join(root, 'native', 'find-libtorch.cjs'))) return root;
  }
  throw new Error(`ddpm-ts: native/find-libtorch.cjs is missing above ${here}; the package is incomplete (reinstall ddpm-ts)`);
}

/** Thrown by the first call that needs libtorch when the addon is not built or does not load. */
export class LibtorchUnavailableError extends Error {
  override name = 'LibtorchUnavailableError';
}

let addon: Record<string, NativeFn> | undefined;

function load(): Record<string, NativeFn> {
  const root = packageRoot();
  const { LIBTORCH_MISSING } = require(path.join(root, 'native', 'find-libtorch.cjs')) as { LIBTORCH_MISSING: string };
  const file = path.join(root, 'build', 'Release', 'ddpm_torch.node');
  if (!existsSync(file)) throw new LibtorchUnavailableError(LIBTORCH_MISSING);
  try {
    return require(file) as Record<string, NativeFn>;
  } catch (e) {
    // Built, but libtorch moved or was removed since: the loader's own words say which library.
    throw new LibtorchUnavailableError(`ddpm-ts: the libtorch addon ${file} did not load (${(e as Error).message.split('\n')[0]}). ${LIBTORCH_MISSING}`);
  }
}

/** True once the addon (and with it libtorch and OpenBLAS) is loaded into this process. */
export function nativeLoaded(): boolean {
  return addon !== undefined;
}

function ensureLoaded(): Record<string, NativeFn> {
  if (addon === undefined) {
    addon = load();
    // Own properties from now on: a call no longer passes through the proxy below (a proxy trap
    // doubled the cost of a small call, ~190 to ~370 ns, measured on a shared 2-core machine).
    Object.assign(native, addon);
  }
  return addon;
}

/** The addon's entry points; the first access loads it (through the proxy on its prototype). */
export const native: Record<string, NativeFn> = Object.create(new Proxy({}, {
  get: (_target, name: string | symbol) => (typeof name === 'string' ? ensureLoaded()[name] : undefined),
})) as Record<string, NativeFn>;

/** The names of the addon's entry points (loads it): for the boundary fuzzer (tools/fuzz-native.ts). */
export function nativeEntryPoints(): string[] {
  return Object.keys(ensureLoaded());
}
