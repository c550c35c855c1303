// Tensor: a typed handle to a libtorch tensor, with torch's method names in camelCase.
// Every method validates its arguments here, then makes one addon call.
import { native, type Handle } from './native.js';
import {
  type AnyTypedArray, type DType, DTYPE_CODE, arrayFromBuffer, dtypeFromCode, dtypeOfArray,
} from './dtype.js';
import { track, type Disposable } from './scope.js';
import { ArgumentError, broadcastShapes, checkInt, checkShape, describe, fail, normDim } from './check.js';
import type { Generator } from './generator.js';

export type Device = 'cpu' | 'cuda' | `cuda:${number}`;
export type Scalar = number;
/** How a 4-D tensor's values lie in memory: row-major NCHW, or NHWC strides ("channels last"). */
export type MemoryFormat = 'contiguous' | 'channelsLast';
export type TensorLike = Tensor | number;

export interface CreateOptions {
  dtype?: DType;
  device?: Device;
  requiresGrad?: boolean;
}
export interface RandomOptions extends CreateOptions {
  generator?: Generator;
}

export class Tensor implements Disposable {
  #handle: Handle | null;
  #shape: number[] | undefined;

  /** @internal Wraps a handle the addon returned; use the factory functions instead. */
  constructor(handle: Handle) {
    this.#handle = handle;
    track(this);
  }

  /** @internal */
  get handle(): Handle {
    if (this.#handle === null) throw new ArgumentError('this tensor was disposed and cannot be used; keep() it or return it from tidy() to use it later');
    return this.#handle;
  }

  get isDisposed(): boolean {
    return this.#handle === null;
  }

  /** Frees the tensor's memory now (its one release path; the GC frees undisposed ones later). */
  dispose(): void {
    if (this.#handle !== null) {
      native.dispose(this.#handle);
      this.#handle = null;
    }
  }

  // ------------------------------------------------------------------ metadata
  get shape(): number[] {
    this.#shape ??= native.shape(this.handle) as number[];
    return this.#shape.slice();
  }
  get rank(): number { return (this.#shape ??= native.shape(this.handle) as number[]).length; }
  get dtype(): DType { return dtypeFromCode(native.dtype(this.handle)); }
  get device(): Device { return native.device(this.handle) as Device; }
  get numel(): number { return this.shape.reduce((a, b) => a * b, 1); }
  size(dim: number): number { const s = this.shape; return s[normDim('size', dim, s.length)]!; }
  get requiresGrad(): boolean { return native.requiresGrad(this.handle); }
  get isLeaf(): boolean { return native.isLeaf(this.handle); }
  /** Made inside inferenceMode (runtime.ts): autograd will not save it, and it cannot be updated in place outside. */
  get isInference(): boolean { return native.isInference(this.handle); }
  /** Whether the values lie densely in the given order (torch's is_contiguous(memory_format=...)). */
  isContiguous(memoryFormat: MemoryFormat = 'contiguous'): boolean {
    return memoryFormat === 'channelsLast' ? native.isChannelsLast(this.handle) : native.isContiguous(this.handle);
  }
  toString(): string { return `Tensor(shape=[${this.shape.join(', ')}], dtype=${this.dtype}, device=${this.device})`; }

  // ------------------------------------------------------------------ data out
  /** The values as a typed array (a copy, on the CPU, contiguous). */
  dataSync(): AnyTypedArray {
    return arrayFromBuffer(this.dtype, native.toBuffer(this.handle) as ArrayBuffer);
  }
  /** The values as plain numbers (int64 converted, exact below 2^53). */
  toArray(): number[] {
    const d = this.dataSync();
    return d instanceof BigInt64Array ? Array.from(d, Number) : Array.from(d as ArrayLike<number>);
  }
  item(): number {
    if (this.numel !== 1) throw new ArgumentError(`item(): expected a tensor with one element, got shape [${this.shape.join(', ')}]`);
    return native.item(this.handle) as number;
  }

  // ------------------------------------------------------------------ conversion
  to(dtypeOrDevice: DType | Device, device?: Device): Tensor {
    const isDevice = (s: string): s is Device => s === 'cpu' || s.startsWith('cuda');
    const dtype = isDevice(dtypeOrDevice) ? this.dtype : dtypeOrDevice;
    const dev = isDevice(dtypeOrDevice) ? dtypeOrDevice : device ?? this.device;
    if (!(dtype in DTYPE_CODE)) fail('to', 'a dtype or a device', dtypeOrDevice);
    return new Tensor(native.to(this.handle, DTYPE_CODE[dtype], dev));
  }
  float(): Tensor { return this.to('float32'); }
  double(): Tensor { return this.to('float64'); }
  long(): Tensor { return this.to('int64'); }
  clone(): Tensor { return new Tensor(native.clone(this.handle)); }
  /** The values laid out densely: row-major, or channels-last (NHWC strides for a 4-D tensor). */
  contiguous(memoryFormat: MemoryFormat = 'contiguous'): Tensor {
    return new Tensor(native.contiguous(this.handle, memoryFormat === 'channelsLast'));
  }
  detach(): Tensor { return new Tensor(native.detach(this.handle)); }
  /**
   * torch's `t.data = src`: this tensor (its handle, autograd leaf status, requiresGrad) stays, and
   * takes src's storage and strides; src must have this tensor's shape and dtype. Used to change a
   * parameter's memory format or device in place (Module.toMemoryFormat, Module.to), as torch's
   * Module._apply does, so optimizers and hooks holding the tensor keep holding it.
   */
  setData(src: Tensor): this {
    if (src.shape.join() !== this.shape.join() || src.dtype !== this.dtype) {
      throw new ArgumentError(`setData: source ${src.toString()} does not match ${this.toString()}: shape and dtype must agree`);
    }
    native.setData(this.handle, src.handle);
    return this;
  }

  // ------------------------------------------------------------------ arithmetic (broadcasting)
  add(other: TensorLike): Tensor { return this.#binary('add', other, 'add', 'addScalar'); }
  sub(other: TensorLike): Tensor {
    return typeof other === 'number' ? new Tensor(native.addScalar(this.handle, -other)) : this.#binary('sub', other, 'sub');
  }
  /** other - this, for a scalar. */
  rsub(other: number): Tensor { return new Tensor(native.rsubScalar(this.handle, other)); }
  mul(other: TensorLike): Tensor { return this.#binary('mul', other, 'mul', 'mulScalar'); }
  div(other: TensorLike): Tensor { return this.#binary('div', other, 'div', 'divScalar'); }
  pow(exponent: TensorLike): Tensor { return this.#binary('pow', exponent, 'pow', 'powScalar'); }
  maximum(other: Tensor): Tensor { return this.#binary('maximum', other, 'maximum'); }
  minimum(other: Tensor): Tensor { return this.#binary('minimum', other, 'minimum'); }
  eq(other: TensorLike): Tensor { return this.#binary('eq', other, 'eq', 'eqScalar'); }
  ne(other: TensorLike): Tensor { return this.#binary('ne', other, 'ne', 'neScalar'); }
  lt(other: TensorLike): Tensor { return this.#binary('lt', other, 'lt', 'ltScalar'); }
  le(other: TensorLike): Tensor { return this.#binary('le', other, 'le', 'leScalar'); }
  gt(other: TensorLike): Tensor { return this.#binary('gt', other, 'gt', 'gtScalar'); }
  ge(other: TensorLike): Tensor { return this.#binary('ge', other, 'ge', 'geScalar'); }

  #binary(op: string, other: TensorLike, tensorFn: string, scalarFn?: string): Tensor {
    if (typeof other === 'number') {
      if (scalarFn === undefined) fail(op, 'a tensor', other);
      return new Tensor(native[scalarFn]!(this.handle, other));
    }
    if (!(other instanceof Tensor)) fail(op, 'a tensor or a number', other);
    checkSameDevice(op, this, other);
    broadcastShapes(op, this.shape, other.shape);
    return new Tensor(native[tensorFn]!(this.handle, other.handle));
  }

  // ------------------------------------------------------------------ elementwise
  neg(): Tensor { return this.#unary('neg'); }
  exp(): Tensor { return this.#unary('exp'); }
  log(): Tensor { return this.#unary('log'); }
  sqrt(): Tensor { return this.#unary('sqrt'); }
  rsqrt(): Tensor { return this.#unary('rsqrt'); }
  abs(): Tensor { return this.#unary('abs'); }
  square(): Tensor { return this.#unary('square'); }
  reciprocal(): Tensor { return this.#unary('reciprocal'); }
  sign(): Tensor { return this.#unary('sign'); }
  floor(): Tensor { return this.#unary('floor'); }
  round(): Tensor { return this.#unary('round'); }
  sin(): Tensor { return this.#unary('sin'); }
  cos(): Tensor { return this.#unary('cos'); }
  relu(): Tensor { return this.#unary('relu'); }
  silu(): Tensor { return this.#unary('silu'); }
  sigmoid(): Tensor { return this.#unary('sigmoid'); }
  tanh(): Tensor { return this.#unary('tanh'); }
  gelu(approximate: 'none' | 'tanh' = 'none'): Tensor { return new Tensor(native.gelu(this.handle, approximate)); }
  isfinite(): Tensor { return this.#unary('isfinite'); }
  isnan(): Tensor { return this.#unary('isnan'); }
  logicalNot(): Tensor { return this.#unary('logicalNot'); }
  /** this + value * a * b, broadcast, in one pass (torch.addcmul). */
  addcmul(a: Tensor, b: Tensor, value = 1): Tensor { return new Tensor(native.addcmul(this.handle, a.handle, b.handle, value)); }
  clamp(min?: number | null, max?: number | null): Tensor {
    if ((min ?? null) === null && (max ?? null) === null) fail('clamp', 'at least one of min and max', [min, max]);
    return new Tensor(native.clamp(this.handle, min ?? null, max ?? null));
  }
  #unary(fn: string): Tensor { return new Tensor(native[fn]!(this.handle)); }

  // ------------------------------------------------------------------ reductions
  sum(dim?: number | number[], keepdim = false): Tensor { return this.#reduce('sum', dim, keepdim); }
  mean(dim?: number | number[], keepdim = false): Tensor { return this.#reduce('mean', dim, keepdim); }
  /** Variance; unbiased (Bessel's correction) by default, as torch.var. */
  var(dim?: number | number[], opts: { unbiased?: boolean; keepdim?: boolean } = {}): Tensor {
    const dims = dim === undefined ? null : this.#dims('var', dim);
    return new Tensor(native.var(this.handle, dims, opts.unbiased ?? true, opts.keepdim ?? false));
  }
  /** max over all elements, or [values, indices] along dim. */
  max(): Tensor;
  max(dim: number, keepdim?: boolean): [Tensor, Tensor];
  max(dim?: number, keepdim = false): Tensor | [Tensor, Tensor] {
    if (dim === undefined) return new Tensor(native.max(this.handle));
    const [v, i] = native.max(this.handle, normDim('max', dim, this.rank), keepdim) as Handle[];
    return [new Tensor(v!), new Tensor(i!)];
  }
  min(): Tensor;
  min(dim: number, keepdim?: boolean): [Tensor, Tensor];
  min(dim?: number, keepdim = false): Tensor | [Tensor, Tensor] {
    if (dim === undefined) return new Tensor(native.min(this.handle));
    const [v, i] = native.min(this.handle, normDim('min', dim, this.rank), keepdim) as Handle[];
    return [new Tensor(v!), new Tensor(i!)];
  }
  argmax(dim?: number, keepdim = false): Tensor {
    return new Tensor(native.argmax(this.handle, dim === undefined ? null : normDim('argmax', dim, this.rank), keepdim));
  }
  all(): Tensor { return this.#unary('all'); }
  any(): Tensor { return this.#unary('any'); }
  /** The p-norm of all elements (2 by default). */
  norm(p = 2): Tensor { return new Tensor(native.norm(this.handle, p)); }
  cumsum(dim: number): Tensor { return new Tensor(native.cumsum(this.handle, normDim('cumsum', dim, this.rank))); }
  /** torch.quantile along one dim (linear interpolation); q in [0, 1]. Float32/float64 only. */
  quantile(q: number, dim: number, keepdim = false): Tensor {
    if (!(q >= 0 && q <= 1)) throw new ArgumentError(`quantile: q must lie in [0, 1], got ${q}`);
    return new Tensor(native.quantile(this.handle, q, normDim('quantile', dim, this.rank), keepdim));
  }
  /** The k largest (or smallest) values along dim and their indices, sorted. */
  topk(k: number, dim = -1, largest = true): [Tensor, Tensor] {
    const d = normDim('topk', dim, this.rank);
    if (!Number.isInteger(k) || k < 0 || k > this.shape[d]!) throw new ArgumentError(`topk: k must be an integer in [0, ${this.shape[d]}], got ${k}`);
    const [v, i] = native.topk(this.handle, k, d, largest) as [Handle, Handle];
    return [new Tensor(v), new Tensor(i)];
  }

  #reduce(op: string, dim: number | number[] | undefined, keepdim: boolean): Tensor {
    if (dim === undefined) return new Tensor(native[op]!(this.handle));
    return new Tensor(native[op]!(this.handle, this.#dims(op, dim), keepdim));
  }
  #dims(op: string, dim: number | number[]): number[] {
    const r = this.rank;
    return (Array.isArray(dim) ? dim : [dim]).map((d) => normDim(op, d, r));
  }

  // ------------------------------------------------------------------ linear algebra
  matmul(other: Tensor): Tensor {
    checkSameDevice('matmul', this, other);
    const a = this.shape;
    const b = other.shape;
    const k1 = a[a.length - 1];
    const k2 = b.length === 1 ? b[0] : b[b.length - 2];
    if (a.length === 0 || b.length === 0 || k1 !== k2) {
      throw new ArgumentError(`matmul: shapes [${a.join(', ')}] and [${b.join(', ')}] do not match: the last dim of the first (${k1}) must equal the ${b.length === 1 ? 'only' : 'second-to-last'} dim of the second (${k2})`);
    }
    return new Tensor(native.matmul(this.handle, other.handle));
  }

  // ------------------------------------------------------------------ shapes
  reshape(shape: number[]): Tensor {
    const s = this.shape;
    const numel = s.reduce((x, y) => x * y, 1);
    const known = shape.filter((d) => d !== -1).reduce((x, y) => x * y, 1);
    const infer = shape.filter((d) => d === -1).length;
    if (infer > 1 || shape.some((d) => !Number.isInteger(d) || d < -1) || (infer === 0 ? known !== numel : known === 0 || numel % known !== 0)) {
      throw new ArgumentError(`reshape: cannot reshape a tensor of shape [${s.join(', ')}] (${numel} elements) to [${shape.join(', ')}]`);
    }
    return new Tensor(native.reshape(this.handle, shape));
  }
  view(shape: number[]): Tensor { return this.reshape(shape); }
  permute(dims: number[]): Tensor {
    const r = this.rank;
    const d = dims.map((x) => normDim('permute', x, r));
    if (d.length !== r || new Set(d).size !== r) fail('permute', `a permutation of ${r} dims`, dims);
    return new Tensor(native.permute(this.handle, d));
  }
  transpose(dim0: number, dim1: number): Tensor {
    return new Tensor(native.transpose(this.handle, normDim('transpose', dim0, this.rank), normDim('transpose', dim1, this.rank)));
  }
  flatten(startDim = 0, endDim = -1): Tensor {
    const r = Math.max(this.rank, 1);
    return new Tensor(native.flatten(this.handle, normDim('flatten', startDim, r), normDim('flatten', endDim, r)));
  }
  squeeze(dim?: number): Tensor {
    return new Tensor(native.squeeze(this.handle, dim === undefined ? null : normDim('squeeze', dim, Math.max(this.rank, 1))));
  }
  unsqueeze(dim: number): Tensor { return new Tensor(native.unsqueeze(this.handle, normDim('unsqueeze', dim, this.rank, 1))); }
  chunk(chunks: number, dim = 0): Tensor[] {
    checkInt('chunk: chunks', chunks, 1);
    return (native.chunk(this.handle, chunks, normDim('chunk', dim, this.rank)) as Handle[]).map((h) => new Tensor(h));
  }
  split(sizes: number[], dim = 0): Tensor[] {
    const d = normDim('split', dim, this.rank);
    const total = sizes.reduce((a, b) => a + b, 0);
    if (total !== this.shape[d]) throw new ArgumentError(`split: sizes [${sizes.join(', ')}] sum to ${total}, but dim ${d} has size ${this.shape[d]}`);
    return (native.split(this.handle, sizes, d) as Handle[]).map((h) => new Tensor(h));
  }
  narrow(dim: number, start: number, length: number): Tensor {
    const d = normDim('narrow', dim, this.rank);
    const n = this.shape[d]!;
    if (!Number.isInteger(start) || !Number.isInteger(length) || start < 0 || length < 0 || start + length > n) {
      throw new ArgumentError(`narrow: start ${start} and length ${length} do not fit dim ${d} of size ${n}`);
    }
    return new Tensor(native.narrow(this.handle, d, start, length));
  }
  select(dim: number, index: number): Tensor {
    const d = normDim('select', dim, this.rank);
    const n = this.shape[d]!;
    checkInt(`select: index for dim ${d} of size ${n}`, index, -n, n - 1);
    return new Tensor(native.select(this.handle, d, index));
  }
  indexSelect(dim: number, index: Tensor): Tensor {
    checkIndexTensor('indexSelect', index, 1);
    return new Tensor(native.indexSelect(this.handle, normDim('indexSelect', dim, this.rank), index.handle));
  }
  gather(dim: number, index: Tensor): Tensor {
    checkIndexTensor('gather', index, this.rank);
    return new Tensor(native.gather(this.handle, normDim('gather', dim, this.rank), index.handle));
  }
  expand(shape: number[]): Tensor {
    const s = this.shape;
    const ok = shape.length >= s.length && s.every((d, i) => {
      const t = shape[shape.length - s.length + i]!;
      return t === -1 || d === 1 || d === t;
    });
    if (!ok) throw new ArgumentError(`expand: cannot expand shape [${s.join(', ')}] to [${shape.join(', ')}]`);
    return new Tensor(native.expand(this.handle, shape));
  }
  repeat(times: number[]): Tensor { return new Tensor(native.repeat(this.handle, times)); }
  flip(dims: number[]): Tensor { return new Tensor(native.flip(this.handle, dims.map((d) => normDim('flip', d, this.rank)))); }

  // ------------------------------------------------------------------ autograd
  requiresGrad_(flag = true): this {
    native.setRequiresGrad(this.handle, flag);
    return this;
  }
  /** d(this)/d(leaves); `this` must be a scalar unless a gradient is given. */
  backward(gradient?: Tensor, opts: { retainGraph?: boolean } = {}): void {
    if (!gradient && this.numel !== 1) {
      throw new ArgumentError(`backward: grad can be implicitly created only for a scalar, got shape [${this.shape.join(', ')}]; pass a gradient of the same shape`);
    }
    if (!this.requiresGrad) throw new ArgumentError('backward: this tensor does not require grad and has no grad_fn (was it computed inside noGrad, or from tensors without requiresGrad?)');
    native.backward(this.handle, gradient?.handle ?? null, opts.retainGraph ?? false);
  }
  /** The accumulated gradient (a new handle sharing its storage), or null. */
  get grad(): Tensor | null {
    const h = native.grad(this.handle) as Handle | null;
    return h === null ? null : new Tensor(h);
  }
  set grad(g: Tensor | null) {
    native.setGrad(this.handle, g === null ? null : g.handle);
  }

  // ------------------------------------------------------------------ in place (no autograd history; for optimizers)
  copy_(src: Tensor): this {
    broadcastShapes('copy_', this.shape, src.shape);
    native.copy_(this.handle, src.handle);
    return this;
  }
  zero_(): this { native.zero_(this.handle); return this; }
  fill_(v: number): this { native.fill_(this.handle, v); return this; }
  mul_(v: number): this { native.mulScalar_(this.handle, v); return this; }
  /** this += alpha * other */
  add_(other: Tensor, alpha = 1): this { native.add_(this.handle, other.handle, alpha); return this; }
  /** this += value * a * b */
  addcmul_(a: Tensor, b: Tensor, value = 1): this { native.addcmul_(this.handle, a.handle, b.handle, value); return this; }
  /** this += value * a / b */
  addcdiv_(a: Tensor, b: Tensor, value = 1): this { native.addcdiv_(this.handle, a.handle, b.handle, value); return this; }
  /** this += weight * (end - this) */
  lerp_(end: Tensor, weight: number): this { native.lerp_(this.handle, end.handle, weight); return this; }
  /** silu in place: for inference, where no autograd graph needs the input. */
  silu_(): this { native.silu_(this.handle); return this; }
  /** gelu in place: for inference, where no autograd graph needs the input. */
  gelu_(approximate: 'none' | 'tanh' = 'none'): this { native.gelu_(this.handle, approximate); return this; }
  uniform_(from: number, to: number, generator?: Generator): this {
    native.uniform_(this.handle, from, to, generator?.handle ?? null);
    return this;
  }
  normal_(mean = 0, std = 1, generator?: Generator): this {
    native.normal_(this.handle, mean, std, generator?.handle ?? null);
    return this;
  }
}

export function checkSameDevice(op: string, a: Tensor, b: Tensor): void {
  const da = a.device;
  const db = b.device;
  if (da !== db) throw new ArgumentError(`${op}: tensors are on different devices: ${da} and ${db}; move one with .to('${da}')`);
}

function checkIndexTensor(op: string, index: Tensor, rank: number): void {
  if (!(index instanceof Tensor)) fail(op, 'an index tensor', index);
  if (index.dtype !== 'int64') throw new ArgumentError(`${op}: index must be int64, got ${index.dtype}; use .long()`);
  if (index.rank !== rank) throw new ArgumentError(`${op}: index must have rank ${rank}, got shape [${index.shape.join(', ')}]`);
}

// ------------------------------------------------------------------ factories
function opts(where: string, o: CreateOptions, defaultDtype: DType = 'float32'): [number, Device] {
  const dtype = o.dtype ?? defaultDtype;
  if (!(dtype in DTYPE_CODE)) fail(`${where}: dtype`, `one of ${Object.keys(DTYPE_CODE).join(', ')}`, dtype);
  return [DTYPE_CODE[dtype], o.device ?? 'cpu'];
}

function finish(t: Tensor, o: CreateOptions): Tensor {
  if (o.requiresGrad) t.requiresGrad_(true);
  return t;
}

/** A tensor holding a copy of `data`, of the given shape (1-D by default). */
export function tensor(data: AnyTypedArray | number[], shape?: number[], o: CreateOptions = {}): Tensor {
  let arr: AnyTypedArray;
  let dtype: DType;
  if (Array.isArray(data)) {
    dtype = o.dtype ?? 'float32';
    arr = toTypedArray(data, dtype);
  } else {
    arr = data;
    dtype = o.dtype ?? dtypeOfArray(data);
    if (o.dtype === 'bool' && !(data instanceof Uint8Array)) fail('tensor', 'a Uint8Array for dtype bool', describe(data));
  }
  const s = checkShape('tensor: shape', shape ?? [arr.length]);
  const n = s.reduce((a, b) => a * b, 1);
  if (n !== arr.length) throw new ArgumentError(`tensor: ${arr.length} values cannot fill shape [${s.join(', ')}] (${n} elements)`);
  const expected = dtypeOfArray(arr);
  if (expected !== dtype && !(dtype === 'bool' && expected === 'uint8')) {
    throw new ArgumentError(`tensor: a ${arr.constructor.name} holds ${expected}, not ${dtype}; convert with .to('${dtype}') after creating it`);
  }
  return finish(new Tensor(native.fromBuffer(arr, s, DTYPE_CODE[dtype], o.device ?? null)), o);
}

function toTypedArray(data: number[], dtype: DType): AnyTypedArray {
  switch (dtype) {
    case 'float32': return Float32Array.from(data);
    case 'float64': return Float64Array.from(data);
    case 'int64': return BigInt64Array.from(data, (x) => BigInt(Math.trunc(x)));
    case 'int32': return Int32Array.from(data);
    case 'int16': return Int16Array.from(data);
    case 'int8': return Int8Array.from(data);
    case 'uint8': case 'bool': return Uint8Array.from(data);
    default: return fail('tensor', 'a dtype creatable from numbers', dtype);
  }
}

export function scalarTensor(v: number, o: CreateOptions = {}): Tensor { return tensor([v], [], o); }
export function zeros(shape: number[], o: CreateOptions = {}): Tensor {
  return finish(new Tensor(native.zeros(checkShape('zeros', shape), ...opts('zeros', o))), o);
}
export function ones(shape: number[], o: CreateOptions = {}): Tensor {
  return finish(new Tensor(native.ones(checkShape('ones', shape), ...opts('ones', o))), o);
}
export function empty(shape: number[], o: CreateOptions = {}): Tensor {
  return finish(new Tensor(native.empty(checkShape('empty', shape), ...opts('empty', o))), o);
}
export function full(shape: number[], value: number, o: CreateOptions = {}): Tensor {
  return finish(new Tensor(native.full(checkShape('full', shape), value, ...opts('full', o))), o);
}
/** Zeros with t's shape, dtype, device and (as torch's preserve_format) channels-last layout. */
export function zerosLike(t: Tensor): Tensor {
  const z = zeros(t.shape, { dtype: t.dtype, device: t.device });
  if (t.rank !== 4 || t.isContiguous() || !t.isContiguous('channelsLast')) return z;
  const laidOut = z.contiguous('channelsLast');
  z.dispose();
  return laidOut;
}
export function onesLike(t: Tensor): Tensor { return ones(t.shape, { dtype: t.dtype, device: t.device }); }
/** [start, end) in steps; integer arguments give int64, as torch.arange does. */
export function arange(start: number, end?: number, step = 1, o: CreateOptions = {}): Tensor {
  const [s, e] = end === undefined ? [0, start] : [start, end];
  if (step === 0) fail('arange: step', 'a non-zero number', step);
  const ints = [s, e, step].every(Number.isInteger);
  return finish(new Tensor(native.arange(s, e, step, ...opts('arange', o, ints ? 'int64' : 'float32'))), o);
}
export function linspace(start: number, end: number, steps: number, o: CreateOptions = {}): Tensor {
  checkInt('linspace: steps', steps, 0);
  return finish(new Tensor(native.linspace(start, end, steps, ...opts('linspace', o))), o);
}
/** Standard normal draws from `generator` (torch's default generator when absent). */
export function randn(shape: number[], o: RandomOptions = {}): Tensor {
  return finish(new Tensor(native.randn(checkShape('randn', shape), o.generator?.handle ?? null, ...opts('randn', o))), o);
}
export function randnLike(t: Tensor, generator?: Generator): Tensor {
  return randn(t.shape, { dtype: t.dtype, device: t.device, ...(generator ? { generator } : {}) });
}
export function rand(shape: number[], o: RandomOptions = {}): Tensor {
  return finish(new Tensor(native.rand(checkShape('rand', shape), o.generator?.handle ?? null, ...opts('rand', o))), o);
}
/** Integers in [low, high). */
export function randint(low: number, high: number, shape: number[], o: RandomOptions = {}): Tensor {
  checkInt('randint: low', low);
  checkInt('randint: high', high, low + 1);
  return new Tensor(native.randint(low, high, checkShape('randint', shape), o.generator?.handle ?? null, ...opts('randint', o, 'int64')));
}
export function randperm(n: number, o: RandomOptions = {}): Tensor {
  checkInt('randperm: n', n, 0);
  return new Tensor(native.randperm(n, o.generator?.handle ?? null, ...opts('randperm', o, 'int64')));
}

export function cat(tensors: Tensor[], dim = 0): Tensor {
  if (tensors.length === 0) fail('cat', 'a non-empty list of tensors', tensors);
  const first = tensors[0]!;
  const d = normDim('cat', dim, first.rank);
  const s0 = first.shape;
  tensors.forEach((t, i) => {
    checkSameDevice('cat', first, t);
    const s = t.shape;
    if (s.length !== s0.length || s.some((x, k) => k !== d && x !== s0[k])) {
      throw new ArgumentError(`cat: tensor ${i} has shape [${s.join(', ')}], which does not match tensor 0's [${s0.join(', ')}] outside dim ${d}`);
    }
  });
  return new Tensor(native.cat(tensors.map((t) => t.handle), d));
}
export function stack(tensors: Tensor[], dim = 0): Tensor {
  if (tensors.length === 0) fail('stack', 'a non-empty list of tensors', tensors);
  const s0 = tensors[0]!.shape;
  tensors.forEach((t, i) => {
    if (t.shape.join() !== s0.join()) throw new ArgumentError(`stack: tensor ${i} has shape [${t.shape.join(', ')}], tensor 0 has [${s0.join(', ')}]; all must be equal`);
  });
  return new Tensor(native.stack(tensors.map((t) => t.handle), normDim('stack', dim, s0.length, 1)));
}
export function where(condition: Tensor, a: Tensor, b: Tensor): Tensor {
  if (condition.dtype !== 'bool') throw new ArgumentError(`where: condition must be bool, got ${condition.dtype}`);
  broadcastShapes('where', broadcastShapes('where', condition.shape, a.shape), b.shape);
  return new Tensor(native.where(condition.handle, a.handle, b.handle));
}
