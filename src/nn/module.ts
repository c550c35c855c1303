// Module: named parameters, buffers and submodules, train/eval mode and state dicts, with
// PyTorch's naming and ordering so a state dict lines up with its PyTorch twin key for key.
import { Tensor, keep, noGrad, ArgumentError, type MemoryFormat, type Device } from '../tensor/index.js';
import { native } from '../tensor/native.js';
import type { OnnxGraph, OnnxValue } from './onnx-graph.js';

/** A trainable tensor: requires grad and lives outside tidy scopes until its module is disposed. */
export class Parameter extends Tensor {
  constructor(data: Tensor) {
    super(native.detach(data.handle));
    keep(this);
    data.dispose();
    this.requiresGrad_(true);
  }
}

export class Module {
  training = true;
  readonly #params = new Map<string, Tensor>();
  readonly #buffers = new Map<string, Tensor>();
  readonly #children = new Map<string, Module>();

  protected registerParameter(name: string, t: Tensor): Parameter {
    const p = t instanceof Parameter ? t : new Parameter(t);
    this.#params.set(name, p);
    return p;
  }
  protected registerBuffer(name: string, t: Tensor): Tensor {
    this.#buffers.set(name, keep(t));
    return t;
  }
  protected registerModule<M extends Module>(name: string, m: M): M {
    this.#children.set(name, m);
    return m;
  }

  children(): [string, Module][] { return [...this.#children]; }

  /** Parameters in PyTorch's order: a module's own, then each child's, recursively. */
  namedParameters(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [...this.#params].map(([n, p]) => [prefix + n, p]);
    for (const [n, c] of this.#children) out.push(...c.namedParameters(`${prefix}${n}.`));
    return out;
  }
  parameters(): Tensor[] { return this.namedParameters().map(([, p]) => p); }
  namedBuffers(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [...this.#buffers].map(([n, b]) => [prefix + n, b]);
    for (const [n, c] of this.#children) out.push(...c.namedBuffers(`${prefix}${n}.`));
    return out;
  }
  numParameters(): number { return this.parameters().reduce((s, p) => s + p.numel, 0); }

  /** Names to tensors (parameters and buffers, not copies), in torch.nn.Module.state_dict order. */
  stateDict(prefix = ''): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const [n, p] of this.#params) out.set(prefix + n, p);
    for (const [n, b] of this.#buffers) out.set(prefix + n, b);
    for (const [n, c] of this.#children) for (const [k, v] of c.stateDict(`${prefix}${n}.`)) out.set(k, v);
    return out;
  }

  /**
   * Copies values into this module's parameters and buffers. All or nothing: every name, shape and
   * dtype is checked before the first copy, so a bad state dict leaves the module untouched.
   */
  loadStateDict(state: Map<string, Tensor>, source = 'state dict'): void {
    const own = this.stateDict();
    const missing = [...own.keys()].filter((k) => !state.has(k));
    const unexpected = [...state.keys()].filter((k) => !own.has(k));
    const problems: string[] = [];
    if (missing.length) problems.push(`missing ${missing.length} tensor(s): ${missing.slice(0, 8).join(', ')}${missing.length > 8 ? ', ...' : ''}`);
    if (unexpected.length) problems.push(`unexpected ${unexpected.length} tensor(s): ${unexpected.slice(0, 8).join(', ')}${unexpected.length > 8 ? ', ...' : ''}`);
    for (const [k, t] of own) {
      const s = state.get(k);
      if (!s) continue;
      if (s.shape.join() !== t.shape.join()) problems.push(`${k}: shape [${s.shape.join(', ')}] in ${source}, model expects [${t.shape.join(', ')}]`);
      else if (s.dtype !== t.dtype) problems.push(`${k}: dtype ${s.dtype} in ${source}, model expects ${t.dtype}`);
    }
    if (problems.length) throw new ArgumentError(`cannot load ${source} into ${this.constructor.name}: ${problems.join('; ')}`);
    noGrad(() => { for (const [k, t] of own) t.copy_(state.get(k)!); });
  }

  /**
   * Lays every 4-D parameter and buffer out in the given memory format, in place, as torch's
   * module.to(memory_format=...): the tensors keep their identity and values. With channels-last
   * weights libtorch's convolutions run oneDNN's NHWC kernels and hand NHWC activations on.
   */
  toMemoryFormat(format: MemoryFormat): this {
    noGrad(() => {
      for (const t of this.stateDict().values()) {
        if (t.rank !== 4 || t.isContiguous(format)) continue;
        const laidOut = t.contiguous(format);
        t.setData(laidOut);
        laidOut.dispose();
      }
    });
    return this;
  }

  /**
   * Moves every parameter and buffer to `device`, in place, as torch's module.to(device): the
   * tensors keep their identity, so move a module before an optimizer or EMA is made from it.
   */
  to(device: Device): this {
    noGrad(() => {
      for (const t of this.stateDict().values()) {
        if (t.device === device) continue;
        const moved = t.to(device);
        t.setData(moved);
        moved.dispose();
      }
    });
    return this;
  }

  train(mode = true): this {
    this.training = mode;
    for (const c of this.#children.values()) c.train(mode);
    return this;
  }
  eval(): this { return this.train(false); }

  /** Sets every parameter's gradient to none (torch's zero_grad(set_to_none=True)). */
  zeroGrad(): void { for (const p of this.parameters()) p.grad = null; }

  /**
   * This module's forward pass as ONNX nodes (nn/onnx-graph.ts): each module class with a forward
   * defines its lowering beside it, taking and returning graph values where forward takes tensors.
   * OnnxGraph.lower calls it and refuses a module that has none.
   */
  onnx(_g: OnnxGraph, ..._inputs: (OnnxValue | null | undefined)[]): OnnxValue {
    throw new ArgumentError(`${this.constructor.name} has no ONNX lowering; export it through OnnxGraph.lower, which names the module`);
  }

  /** Frees every parameter and buffer now. */
  dispose(): void {
    for (const t of this.stateDict().values()) t.dispose();
  }
}

/** A module with one input and one output, which Sequential can chain. */
export abstract class Layer extends Module {
  abstract forward(x: Tensor): Tensor;
}
