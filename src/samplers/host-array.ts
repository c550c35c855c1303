// The samplers' array interface on a plain Float32Array (row-major), for the engines that hand
// buffers back and forth (ONNX Runtime in Node and in the browser). Every result is rounded to
// float32 as libtorch's float32 kernels round it; scalars are rounded to float32 first, as libtorch
// casts a double scalar for a float tensor. Broadcasting follows numpy's rules (trailing dims align).
import { ArgumentError } from '../tensor/check.js';
import type { NdArray } from '../tensor/ndarray.js';
import type { ArrayOps } from './array.js';
import { PhiloxNormal } from './philox.js';

const size = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);
const f32 = Math.fround;

export class HostArray implements NdArray<HostArray> {
  readonly shape: number[];

  constructor(readonly data: Float32Array, shape: readonly number[]) {
    if (shape.some((d) => !Number.isInteger(d) || d < 0)) throw new ArgumentError(`HostArray: shape [${shape.join(', ')}] must be non-negative integers`);
    if (size(shape) !== data.length) throw new ArgumentError(`HostArray: shape [${shape.join(', ')}] holds ${size(shape)} values, but the data has ${data.length}`);
    this.shape = [...shape];
  }

  static zeros(shape: readonly number[]): HostArray { return new HostArray(new Float32Array(size(shape)), shape); }

  get rank(): number { return this.shape.length; }

  item(): number {
    if (this.data.length !== 1) throw new ArgumentError(`HostArray.item: expected one element, got shape [${this.shape.join(', ')}]`);
    return this.data[0]!;
  }

  #map(f: (v: number) => number): HostArray {
    const out = new Float32Array(this.data.length);
    for (let i = 0; i < out.length; i++) out[i] = f(this.data[i]!);
    return new HostArray(out, this.shape);
  }

  #binary(other: HostArray | number, f: (a: number, b: number) => number, what: string): HostArray {
    if (typeof other === 'number') {
      const s = f32(other);
      return this.#map((v) => f(v, s));
    }
    if (other.shape.join() === this.shape.join()) {
      const out = new Float32Array(this.data.length);
      for (let i = 0; i < out.length; i++) out[i] = f(this.data[i]!, other.data[i]!);
      return new HostArray(out, this.shape);
    }
    const rank = Math.max(this.rank, other.rank);
    const pad = (s: number[]): number[] => [...new Array<number>(rank - s.length).fill(1), ...s];
    const [sa, sb] = [pad(this.shape), pad(other.shape)];
    const shape = sa.map((d, i) => {
      const e = sb[i]!;
      if (d !== e && d !== 1 && e !== 1) throw new ArgumentError(`HostArray.${what}: shapes [${this.shape.join(', ')}] and [${other.shape.join(', ')}] cannot broadcast (size ${d} vs ${e} at dim ${i - rank})`);
      return Math.max(d, e);
    });
    const strides = (s: number[]): number[] => {
      const st = new Array<number>(rank);
      let acc = 1;
      for (let i = rank - 1; i >= 0; i--) { st[i] = s[i] === 1 ? 0 : acc; acc *= s[i]!; }
      return st;
    };
    const [ta, tb] = [strides(sa), strides(sb)];
    const out = new Float32Array(size(shape));
    const idx = new Array<number>(rank).fill(0);
    for (let i = 0; i < out.length; i++) {
      let ia = 0;
      let ib = 0;
      for (let d = 0; d < rank; d++) { ia += idx[d]! * ta[d]!; ib += idx[d]! * tb[d]!; }
      out[i] = f(this.data[ia]!, other.data[ib]!);
      for (let d = rank - 1; d >= 0; d--) { if (++idx[d]! < shape[d]!) break; idx[d] = 0; }
    }
    return new HostArray(out, shape);
  }

  add(o: HostArray | number): HostArray { return this.#binary(o, (a, b) => a + b, 'add'); }
  sub(o: HostArray | number): HostArray { return this.#binary(o, (a, b) => a - b, 'sub'); }
  mul(o: HostArray | number): HostArray { return this.#binary(o, (a, b) => a * b, 'mul'); }
  div(o: HostArray | number): HostArray { return this.#binary(o, (a, b) => a / b, 'div'); }
  maximum(o: HostArray): HostArray { return this.#binary(o, (a, b) => (Number.isNaN(a) || Number.isNaN(b) ? NaN : Math.max(a, b)), 'maximum'); }
  minimum(o: HostArray): HostArray { return this.#binary(o, (a, b) => (Number.isNaN(a) || Number.isNaN(b) ? NaN : Math.min(a, b)), 'minimum'); }
  neg(): HostArray { return this.#map((v) => -v); }
  abs(): HostArray { return this.#map(Math.abs); }
  square(): HostArray { return this.#map((v) => v * v); }
  sqrt(): HostArray { return this.#map(Math.sqrt); }
  exp(): HostArray { return this.#map(Math.exp); }

  clamp(min?: number | null, max?: number | null): HostArray {
    const lo = min ?? -Infinity;
    const hi = max ?? Infinity;
    return this.#map((v) => (Number.isNaN(v) ? v : Math.min(Math.max(v, lo), hi)));
  }

  reshape(shape: number[]): HostArray {
    const free = shape.indexOf(-1);
    const known = size(shape.filter((d) => d !== -1));
    const full = free < 0 ? shape : shape.map((d) => (d === -1 ? this.data.length / known : d));
    if (size(full) !== this.data.length || !full.every(Number.isInteger)) throw new ArgumentError(`HostArray.reshape: cannot view [${this.shape.join(', ')}] (${this.data.length} values) as [${shape.join(', ')}]`);
    return new HostArray(this.data, full);
  }

  /** (outer, n, inner) around dim, for reductions and slices along it. */
  #around(dim: number, what: string): { outer: number; n: number; inner: number } {
    if (!Number.isInteger(dim) || dim < 0 || dim >= this.rank) throw new ArgumentError(`HostArray.${what}: dim ${dim} is out of range for rank ${this.rank}`);
    return { outer: size(this.shape.slice(0, dim)), n: this.shape[dim]!, inner: size(this.shape.slice(dim + 1)) };
  }

  #reduce(dim: number, what: string, f: (values: Float64Array) => number): HostArray {
    const { outer, n, inner } = this.#around(dim, what);
    const out = new Float32Array(outer * inner);
    const values = new Float64Array(n);
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < inner; i++) {
        for (let k = 0; k < n; k++) values[k] = this.data[(o * n + k) * inner + i]!;
        out[o * inner + i] = f(values);
      }
    }
    return new HostArray(out, this.shape.filter((_, d) => d !== dim));
  }

  sum(dim: number): HostArray { return this.#reduce(dim, 'sum', (v) => v.reduce((a, b) => a + b, 0)); }

  /** torch.quantile's default (linear): sorted v at position q (n - 1), interpolated between neighbours. */
  quantile(q: number, dim: number): HostArray {
    if (!(q >= 0 && q <= 1)) throw new ArgumentError(`HostArray.quantile: q must be in [0, 1], got ${q}`);
    return this.#reduce(dim, 'quantile', (v) => {
      const sorted = Float64Array.from(v).sort();
      const pos = q * (sorted.length - 1);
      const lo = Math.floor(pos);
      const hi = Math.min(lo + 1, sorted.length - 1);
      return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
    });
  }

  narrow(dim: number, start: number, length: number): HostArray {
    const { outer, n, inner } = this.#around(dim, 'narrow');
    if (!Number.isInteger(start) || !Number.isInteger(length) || start < 0 || length < 0 || start + length > n) {
      throw new ArgumentError(`HostArray.narrow: [${start}, ${start + length}) is outside dim ${dim} of size ${n}`);
    }
    const out = new Float32Array(outer * length * inner);
    for (let o = 0; o < outer; o++) out.set(this.data.subarray((o * n + start) * inner, (o * n + start + length) * inner), o * length * inner);
    return new HostArray(out, this.shape.map((d, i) => (i === dim ? length : d)));
  }

  clone(): HostArray { return new HostArray(Float32Array.from(this.data), this.shape); }
}

/** Concatenation along dim; the other dims must agree. */
export function catHost(parts: HostArray[], dim: number): HostArray {
  const first = parts[0];
  if (!first) throw new ArgumentError('catHost: nothing to concatenate');
  parts.forEach((p, i) => {
    if (p.rank !== first.rank || p.shape.some((d, k) => k !== dim && d !== first.shape[k])) {
      throw new ArgumentError(`catHost: array ${i} has shape [${p.shape.join(', ')}], which does not match array 0's [${first.shape.join(', ')}] outside dim ${dim}`);
    }
  });
  const outer = size(first.shape.slice(0, dim));
  const inner = size(first.shape.slice(dim + 1));
  const total = parts.reduce((a, p) => a + p.shape[dim]!, 0);
  const out = new Float32Array(outer * total * inner);
  let at = 0;
  for (let o = 0; o < outer; o++) {
    for (const p of parts) {
      const len = p.shape[dim]! * inner;
      out.set(p.data.subarray(o * len, (o + 1) * len), at);
      at += len;
    }
  }
  return new HostArray(out, first.shape.map((d, k) => (k === dim ? total : d)));
}

/** The samplers' operations on host arrays, with noise from a Philox generator seeded with `seed`. */
export function hostOps(seed: number): ArrayOps<HostArray> {
  const noise = new PhiloxNormal(seed);
  return {
    cat: catHost,
    randn: (shape) => new HostArray(noise.randn(size(shape)), shape),
    randnLike: (like) => new HostArray(noise.randn(like.data.length), like.shape),
    scope: (fn) => fn(),
    keep: (a) => a,
    release: () => undefined,
  };
}
