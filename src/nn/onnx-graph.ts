// Builds an ONNX graph from a module tree. Each module lowers its own forward pass (an `onnx` method
// beside `forward`) through the ops here, which track every value's static shape, with null for the
// dynamic batch dimension, so a lowering can compute what its forward reads off its tensors' shapes.
// Ops are those of the default domain at opset 17, which onnxruntime-web supports on WASM and WebGPU.
import { type Tensor, ArgumentError } from '../tensor/index.js';
import type { Module } from './module.js';
import type { OnnxAttribute, OnnxElemType, OnnxGraphData, OnnxInitializer, OnnxNode, OnnxValueInfo } from './onnx-ir.js';

export const ONNX_OPSET = 17;

/** A dimension: a size, or null for the dynamic batch. */
export type Dim = number | null;

/** A value of the graph under construction (a graph input, an initializer or a node output). */
export interface OnnxValue { readonly name: string; readonly type: OnnxElemType; readonly shape: readonly Dim[] }

export interface OnnxGraphOptions {
  /**
   * How transposed convolutions are written: 'subPixel' as Conv + DepthToSpace (nn/sub-pixel.ts), or
   * 'convTranspose' as ONNX's ConvTranspose.
   */
  convTranspose: 'subPixel' | 'convTranspose';
}

type Attrs = Record<string, OnnxAttribute>;

function numel(shape: readonly Dim[]): number { return shape.reduce<number>((a, d) => a * (d ?? 1), 1); }

function broadcast(op: string, a: readonly Dim[], b: readonly Dim[]): Dim[] {
  const n = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < n; i++) {
    const x = i < n - a.length ? 1 : a[i - (n - a.length)]!;
    const y = i < n - b.length ? 1 : b[i - (n - b.length)]!;
    if (x === y || y === 1) out.push(x);
    else if (x === 1) out.push(y);
    else throw new ArgumentError(`ONNX ${op}: shapes [${a.join(', ')}] and [${b.join(', ')}] do not broadcast`);
  }
  return out;
}

/** How far up an instance's prototype chain a method is defined (0: its own class), and by which class. */
function definedAt(m: object, method: string): { depth: number; className: string } {
  let depth = 0;
  for (let p = Object.getPrototypeOf(m) as object | null; p; p = Object.getPrototypeOf(p) as object | null, depth++) {
    if (Object.prototype.hasOwnProperty.call(p, method)) return { depth, className: (p.constructor as { name: string }).name };
  }
  return { depth: Infinity, className: '' };
}

export class OnnxGraph {
  readonly #nodes: OnnxNode[] = [];
  readonly #initializers = new Map<string, OnnxInitializer>();
  readonly #inputs: OnnxValueInfo[] = [];
  readonly #outputs: OnnxValueInfo[] = [];
  readonly #paths = new Map<Module, string>();
  readonly #scope: string[] = [];
  readonly #used = new Set<string>();
  readonly #scalars = new Map<number, OnnxValue>();
  #counter = 0;

  constructor(readonly root: Module, readonly options: OnnxGraphOptions = { convTranspose: 'subPixel' }) {
    const walk = (m: Module, path: string): void => {
      if (!this.#paths.has(m)) this.#paths.set(m, path);
      for (const [n, c] of m.children()) walk(c, path ? `${path}.${n}` : n);
    };
    walk(root, '');
  }

  /** A module's path in the tree (`down1.model.0`), as its state-dict keys start. */
  pathOf(m: Module): string {
    const p = this.#paths.get(m);
    if (p === undefined) return `(a ${m.constructor.name} outside the model's module tree)`;
    return p === '' ? '(the model)' : p;
  }

  /** Names a module built for the export (a BatchNorm-folded copy) after the one it stands for. */
  alias(m: Module, like: Module): void {
    const p = this.#paths.get(like);
    if (p !== undefined) this.#paths.set(m, p);
  }

  /**
   * Lowers one module: calls its `onnx` method with these inputs, naming the nodes after its path.
   * Refuses a module with no lowering, and one whose class overrides forward but inherits another
   * class's lowering (which would then export a different computation).
   */
  lower(m: Module, ...inputs: (OnnxValue | null | undefined)[]): OnnxValue {
    const where = `${this.pathOf(m)} (${m.constructor.name})`;
    const lowering = definedAt(m, 'onnx');
    if (lowering.className === 'Module') {
      throw new ArgumentError(`ONNX export: module ${where} has no ONNX lowering; give ${m.constructor.name} an onnx(g, ...inputs) method beside its forward (nn/layers.ts has examples)`);
    }
    const forward = definedAt(m, 'forward');
    if (forward.depth < lowering.depth) {
      throw new ArgumentError(`ONNX export: module ${where} overrides forward in ${forward.className} but inherits the ONNX lowering of ${lowering.className}; give ${forward.className} its own onnx method`);
    }
    this.#scope.push(this.#paths.get(m) ?? `${this.#scope.at(-1) ?? ''}/${m.constructor.name}`);
    try {
      return (m as unknown as { onnx(g: OnnxGraph, ...x: (OnnxValue | null | undefined)[]): OnnxValue }).onnx(this, ...inputs);
    } finally {
      this.#scope.pop();
    }
  }

  // ------------------------------------------------------------------ graph inputs, outputs, constants
  input(name: string, type: OnnxElemType, shape: Dim[]): OnnxValue {
    this.#claim(name);
    this.#inputs.push({ name, type, shape: shape.map((d) => d ?? 'batch') });
    return { name, type, shape };
  }

  /** Marks a value as a graph output under this name. */
  output(v: OnnxValue, name: string): void {
    this.#claim(name);
    this.#nodes.push(this.#node('Identity', [v.name], [name], {}));
    this.#outputs.push({ name, type: v.type, shape: v.shape.map((d) => d ?? 'batch') });
  }

  /**
   * A tensor's current values as an initializer named `name` (a state-dict key, so a file's weights
   * read as the checkpoint's), laid out as `shape` when given. One initializer per name.
   */
  weight(name: string, t: Tensor, shape?: number[]): OnnxValue {
    const dims = shape ?? t.shape;
    const existing = this.#initializers.get(name);
    if (existing) return { name, type: existing.type, shape: existing.dims };
    if (numel(dims) !== t.numel) throw new ArgumentError(`ONNX export: weight ${name} of shape [${t.shape.join(', ')}] cannot be laid out as [${dims.join(', ')}]`);
    if (t.dtype !== 'float32') throw new ArgumentError(`ONNX export: weight ${name} is ${t.dtype}; the exporter writes float32 weights`);
    const data = t.dataSync() as Float32Array;
    this.#claim(name);
    this.#initializers.set(name, { name, type: 'float32', dims: [...dims], data });
    return { name, type: 'float32', shape: [...dims] };
  }

  /** A module's own tensor as an initializer named by its state-dict key (`down0.0.weight`). */
  param(m: Module, key: string, t: Tensor, shape?: number[]): OnnxValue {
    return this.weight(`${this.#paths.get(m) ?? m.constructor.name}.${key}`, t, shape);
  }

  /** A constant of the graph (an initializer with a generated name). */
  constant(values: ArrayLike<number>, shape: number[], type: 'float32' | 'int64' = 'float32'): OnnxValue {
    const name = this.#fresh('const');
    const data = type === 'int64' ? BigInt64Array.from(Array.from(values), (v) => BigInt(v)) : Float32Array.from(values);
    if (data.length !== numel(shape)) throw new ArgumentError(`ONNX constant: ${data.length} values for shape [${shape.join(', ')}]`);
    this.#initializers.set(name, { name, type, dims: shape, data });
    return { name, type, shape };
  }

  /** A float32 scalar constant, one initializer per value. */
  scalar(v: number): OnnxValue {
    let c = this.#scalars.get(v);
    if (!c) this.#scalars.set(v, c = this.constant([v], []));
    return c;
  }

  /** A node with one output of the given type and shape. */
  op(opType: string, inputs: (OnnxValue | null)[], shape: readonly Dim[], attrs: Attrs = {}, type: OnnxElemType = 'float32'): OnnxValue {
    return this.opN(opType, inputs, [shape], attrs, type)[0]!;
  }

  /** A node with several outputs of one type. */
  opN(opType: string, inputs: (OnnxValue | null)[], shapes: (readonly Dim[])[], attrs: Attrs = {}, type: OnnxElemType = 'float32'): OnnxValue[] {
    const outs = shapes.map(() => this.#fresh(`${this.#scope.at(-1) || 'graph'}/${opType}`));
    this.#nodes.push(this.#node(opType, inputs.map((v) => v?.name ?? ''), outs, attrs));
    return outs.map((name, i) => ({ name, type, shape: [...shapes[i]!] }));
  }

  // ------------------------------------------------------------------ element-wise
  add(a: OnnxValue, b: OnnxValue): OnnxValue { return this.op('Add', [a, b], broadcast('Add', a.shape, b.shape)); }
  sub(a: OnnxValue, b: OnnxValue): OnnxValue { return this.op('Sub', [a, b], broadcast('Sub', a.shape, b.shape)); }
  mul(a: OnnxValue, b: OnnxValue): OnnxValue { return this.op('Mul', [a, b], broadcast('Mul', a.shape, b.shape)); }
  div(a: OnnxValue, b: OnnxValue): OnnxValue { return this.op('Div', [a, b], broadcast('Div', a.shape, b.shape)); }
  unary(opType: 'Relu' | 'Sigmoid' | 'Erf' | 'Sin' | 'Cos' | 'Exp' | 'Identity', x: OnnxValue): OnnxValue { return this.op(opType, [x], x.shape); }
  cast(x: OnnxValue, to: OnnxElemType): OnnxValue {
    const code = { float32: 1, int64: 7, bool: 9 }[to];
    return this.op('Cast', [x], x.shape, { to: { i: code } }, to);
  }

  // ------------------------------------------------------------------ shapes
  /**
   * Reshape to `shape`: null keeps the batch (ONNX's 0, copied from the input's first dim), -1 is
   * inferred from the static sizes, as torch's reshape.
   */
  reshape(x: OnnxValue, shape: Dim[]): OnnxValue {
    const known = shape.reduce<number>((a, d) => a * (d === null || d === -1 ? 1 : d), 1);
    const out = shape.map((d) => (d === -1 ? numel(x.shape) / known : d));
    if (shape.includes(null) !== x.shape.includes(null) || (shape.includes(null) && (shape[0] !== null || x.shape[0] !== null))) {
      throw new ArgumentError(`ONNX Reshape: the batch must stay the first dim, [${x.shape.join(', ')}] -> [${shape.join(', ')}]`);
    }
    if (!out.every((d) => d === null || Number.isInteger(d)) || numel(out) !== numel(x.shape)) {
      throw new ArgumentError(`ONNX Reshape: [${x.shape.join(', ')}] cannot be reshaped to [${shape.join(', ')}]`);
    }
    return this.op('Reshape', [x, this.constant(shape.map((d) => d ?? 0), [shape.length], 'int64')], out);
  }

  transpose(x: OnnxValue, perm: number[]): OnnxValue { return this.op('Transpose', [x], perm.map((p) => x.shape[p]!), { perm: { ints: perm } }); }

  unsqueeze(x: OnnxValue, axis: number): OnnxValue {
    const a = axis < 0 ? axis + x.shape.length + 1 : axis;
    return this.op('Unsqueeze', [x, this.constant([a], [1], 'int64')], [...x.shape.slice(0, a), 1, ...x.shape.slice(a)], {}, x.type);
  }

  concat(xs: OnnxValue[], axis: number): OnnxValue {
    const a = axis < 0 ? axis + xs[0]!.shape.length : axis;
    const shape = [...xs[0]!.shape];
    shape[a] = xs.reduce((s, x) => s + x.shape[a]!, 0);
    return this.op('Concat', xs, shape, { axis: { i: a } });
  }

  /** torch's chunk(n, axis) for a size that n divides. */
  chunk(x: OnnxValue, n: number, axis: number): OnnxValue[] {
    const a = axis < 0 ? axis + x.shape.length : axis;
    const size = x.shape[a]!;
    if (size % n) throw new ArgumentError(`ONNX Split: ${size} is not divisible into ${n} chunks`);
    const shape = [...x.shape];
    shape[a] = size / n;
    return this.opN('Split', [x, this.constant(new Array<number>(n).fill(size / n), [n], 'int64')], new Array(n).fill(shape), { axis: { i: a } });
  }

  /** Rows [start, end) of one axis. */
  slice(x: OnnxValue, axis: number, start: number, end: number): OnnxValue {
    const shape = [...x.shape];
    shape[axis] = end - start;
    return this.op('Slice', [x, this.constant([start], [1], 'int64'), this.constant([end], [1], 'int64'), this.constant([axis], [1], 'int64')], shape);
  }

  // ------------------------------------------------------------------ linear algebra
  matmul(a: OnnxValue, b: OnnxValue): OnnxValue {
    const batch = broadcast('MatMul', a.shape.slice(0, -2), b.shape.slice(0, -2));
    return this.op('MatMul', [a, b], [...batch, a.shape.at(-2)!, b.shape.at(-1)!]);
  }

  /** x (N, Cin, H, W) with weight (Cout, Cin/groups, kH, kW); pads as ONNX orders them: [top, left, bottom, right]. */
  conv(x: OnnxValue, w: OnnxValue, b: OnnxValue | null, o: { strides: number[]; pads: number[]; dilations: number[]; group: number }): OnnxValue {
    const [n, , h, wd] = x.shape;
    const k = w.shape.slice(2) as number[];
    const out = [h!, wd!].map((size, i) => Math.floor((size + o.pads[i]! + o.pads[i + 2]! - o.dilations[i]! * (k[i]! - 1) - 1) / o.strides[i]!) + 1);
    return this.op('Conv', b ? [x, w, b] : [x, w], [n!, w.shape[0]!, ...out], {
      kernel_shape: { ints: k }, strides: { ints: o.strides }, pads: { ints: o.pads }, dilations: { ints: o.dilations }, group: { i: o.group },
    });
  }

  // ------------------------------------------------------------------ the model
  /** The graph's plain description, for io/onnx.ts to encode. */
  build(name: string): OnnxGraphData {
    return { name, inputs: this.#inputs, outputs: this.#outputs, nodes: this.#nodes, initializers: [...this.#initializers.values()] };
  }

  #node(opType: string, inputs: string[], outputs: string[], attributes: Attrs): OnnxNode {
    return { name: this.#fresh(`${this.#scope.at(-1) || 'graph'}/${opType}`), opType, inputs, outputs, attributes };
  }

  #fresh(prefix: string): string {
    let name: string;
    do name = `${prefix}_${this.#counter++}`; while (this.#used.has(name));
    this.#used.add(name);
    return name;
  }

  #claim(name: string): void {
    if (this.#used.has(name)) throw new ArgumentError(`ONNX export: the name ${JSON.stringify(name)} is used twice in the graph`);
    this.#used.add(name);
  }
}
