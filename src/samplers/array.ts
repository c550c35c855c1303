// The small array interface every sampler formula is written against, so that one copy of each
// formula runs on libtorch tensors (ddpm sample, the studio) and on Float32Array-backed arrays fed to
// ONNX Runtime (ddpm sample --model, the web page). A libtorch Tensor provides it as it is; HostArray
// (host-array.ts) provides it in plain TypeScript. Nothing here may import the addon: the page bundles it.

import type { NdArray } from '../tensor/ndarray.js';

export type { NdArray };

/** What the samplers make that is not a method of an existing array: the engine's constructors. */
export interface ArrayOps<A extends NdArray<A>> {
  cat(parts: A[], dim: number): A;
  /** Standard normal noise of a shape, from the sampling's seeded generator. */
  randn(shape: number[]): A;
  /** Standard normal noise shaped like an array, from the same generator. */
  randnLike(like: A): A;
  /**
   * Runs fn and frees what it made except what it returns (libtorch's tidy; a plain call where the
   * garbage collector frees arrays). Scopes never span a model call, which may be asynchronous.
   */
  scope<T>(fn: () => T): T;
  /** Takes an array out of every scope: it lives until release(). */
  keep(a: A): A;
  release(a: A): void;
}

/** Noise shaped like x, drawn from the sampling's generator. */
export type NoiseLike<A> = (like: A) => A;
