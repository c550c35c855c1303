// The array methods the diffusion formulas and samplers call, as a type: a libtorch Tensor has them
// all, and so does the samplers' Float32Array-backed HostArray, so one copy of each formula serves
// libtorch and ONNX Runtime. Types only: importing this file loads nothing (the web page bundles it).

/** The element-wise and reduction methods the samplers call; results are new arrays. */
export interface NdArray<A> {
  readonly shape: number[];
  readonly rank: number;
  add(other: A | number): A;
  sub(other: A | number): A;
  mul(other: A | number): A;
  div(other: A | number): A;
  neg(): A;
  abs(): A;
  square(): A;
  sqrt(): A;
  exp(): A;
  clamp(min?: number | null, max?: number | null): A;
  maximum(other: A): A;
  minimum(other: A): A;
  reshape(shape: number[]): A;
  /** Sum over one dim, which is dropped. */
  sum(dim: number): A;
  /** The q-quantile over one dim (linear interpolation, as torch.quantile), which is dropped. */
  quantile(q: number, dim: number): A;
  narrow(dim: number, start: number, length: number): A;
  clone(): A;
  /** The value of a one-element array. */
  item(): number;
}
