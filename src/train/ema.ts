// Exponential moving average of a model's weights (Polyak averaging), sampled from instead of the
// raw weights (Ho et al. 2020, appendix B: decay 0.9999). The decay warms up as in TensorFlow's
// ExponentialMovingAverage(num_updates) and diffusers' EMAModel: decay_t = min(decay, (1 + t) / (10 + t)),
// so early averages are not dominated by the random initial weights. Shadow parameters are float32
// whatever the model's dtype; buffers (BatchNorm running statistics) are copied, not averaged.
import { type Tensor, keep, noGrad, tidy, isFloating, ArgumentError } from '../tensor/index.js';
import type { Module } from '../nn/module.js';

export interface EmaOptions {
  /** The decay's ceiling (default 0.9999, Ho et al. 2020). */
  decay?: number;
}

/** What state.json keeps beside ema.safetensors. */
export interface EmaMeta {
  decay: number;
  /** Number of update() calls so far. */
  updates: number;
}

const shapeOf = (t: Tensor): string => `[${t.shape.join(', ')}]`;

export class EMA {
  readonly decay: number;
  #updates = 0;
  /** Parameter name -> float32 shadow. */
  readonly #params = new Map<string, Tensor>();
  /** Buffer name -> copy of the model's buffer (same dtype). */
  readonly #buffers = new Map<string, Tensor>();
  /** The model's own weights while the EMA weights are swapped in (applyTo), else null. */
  #backup: Map<string, Tensor> | null = null;
  #disposed = false;

  /** Starts from a copy of the model's current parameters and buffers. */
  constructor(model: Module, o: EmaOptions = {}) {
    const decay = o.decay ?? 0.9999;
    if (typeof decay !== 'number' || !(decay >= 0 && decay <= 1)) {
      throw new ArgumentError(`EMA: decay must be a number in [0, 1], got ${String(decay)}; hint: 0.9999 (Ho et al.) or 0.999 for short runs`);
    }
    this.decay = decay;
    noGrad(() => tidy(() => {
      for (const [k, p] of model.namedParameters()) this.#params.set(k, keep(p.to('float32').clone()));
      for (const [k, b] of model.namedBuffers()) this.#buffers.set(k, keep(b.clone()));
    }));
  }

  get updates(): number { return this.#updates; }

  /** The decay used at `step`: min(decay, (1 + step) / (10 + step)). */
  decayAt(step: number): number {
    if (!Number.isInteger(step) || step < 0) throw new ArgumentError(`EMA: step must be a non-negative integer, got ${String(step)}`);
    return Math.min(this.decay, (1 + step) / (10 + step));
  }

  /**
   * shadow <- decay_t * shadow + (1 - decay_t) * param, in place, and buffers copied. `step` is the
   * number of optimizer steps before the one just taken (0 after the first), TensorFlow's num_updates;
   * diffusers differs only at the first update (decay 0 there, 0.1 here). Returns decay_t.
   */
  update(model: Module, step: number): number {
    this.#usable('update');
    if (this.#backup) throw new ArgumentError('EMA.update: the EMA weights are swapped into the model (applyTo without restore); restore(model) first, or the average would take in its own weights');
    const d = this.decayAt(step);
    const params = model.namedParameters();
    const buffers = model.namedBuffers();
    this.#checkModel('update', params, buffers);
    noGrad(() => tidy(() => {
      for (const [k, p] of params) {
        const s = this.#params.get(k)!;
        if (!p.requiresGrad) { s.copy_(p); continue; } // a frozen parameter follows the model, as diffusers
        s.lerp_(p.dtype === 'float32' ? p : p.to('float32'), 1 - d); // s + (1 - d) (p - s)
      }
      for (const [k, b] of buffers) this.#buffers.get(k)!.copy_(b);
    }));
    this.#updates += 1;
    return d;
  }

  /** Shadow parameters then buffers by name (the live tensors, not copies), as Module.stateDict. */
  stateDict(): Map<string, Tensor> {
    this.#usable('stateDict');
    return new Map([...this.#params, ...this.#buffers]);
  }

  meta(): EmaMeta { return { decay: this.decay, updates: this.#updates }; }
  toJSON(): EmaMeta { return this.meta(); }

  /**
   * Restores what stateDict() and meta() gave. All or nothing: names, shapes, dtypes and the meta
   * are checked before the first copy. The decay is the constructor's; a different saved decay is
   * refused so a resumed run does not silently change its average.
   */
  loadStateDict(state: Map<string, Tensor>, meta?: EmaMeta, source = 'EMA state'): void {
    this.#usable('loadStateDict');
    const own = this.stateDict();
    const problems: string[] = [];
    const missing = [...own.keys()].filter((k) => !state.has(k));
    const unexpected = [...state.keys()].filter((k) => !own.has(k));
    if (missing.length) problems.push(`missing ${missing.length} tensor(s): ${missing.slice(0, 8).join(', ')}${missing.length > 8 ? ', ...' : ''}`);
    if (unexpected.length) problems.push(`unexpected ${unexpected.length} tensor(s): ${unexpected.slice(0, 8).join(', ')}${unexpected.length > 8 ? ', ...' : ''}`);
    for (const [k, t] of own) {
      const s = state.get(k);
      if (!s) continue;
      if (s.shape.join() !== t.shape.join()) problems.push(`${k}: shape ${shapeOf(s)} in ${source}, expected ${shapeOf(t)}`);
      else if (this.#params.has(k) ? !isFloating(s.dtype) : s.dtype !== t.dtype) {
        problems.push(`${k}: dtype ${s.dtype} in ${source}, expected ${this.#params.has(k) ? 'a floating dtype' : t.dtype}`);
      }
    }
    if (meta !== undefined) {
      if (!Number.isInteger(meta.updates) || meta.updates < 0) problems.push(`updates must be a non-negative integer, got ${String(meta.updates)}`);
      if (meta.decay !== this.decay) problems.push(`decay ${String(meta.decay)} in ${source}, this EMA has ${this.decay}`);
    }
    if (problems.length) throw new ArgumentError(`cannot load ${source} into the EMA: ${problems.join('; ')}`);
    noGrad(() => { for (const [k, t] of own) t.copy_(state.get(k)!); });
    if (meta !== undefined) this.#updates = meta.updates;
  }

  /** Swaps the EMA weights into the model (its own are kept aside for restore()). */
  applyTo(model: Module): void {
    this.#usable('applyTo');
    if (this.#backup) throw new ArgumentError('EMA.applyTo: the EMA weights are already swapped in; call restore(model) first');
    const params = model.namedParameters();
    const buffers = model.namedBuffers();
    this.#checkModel('applyTo', params, buffers);
    const all = [...params, ...buffers];
    noGrad(() => tidy(() => {
      this.#backup = new Map(all.map(([k, t]) => [k, keep(t.clone())]));
      for (const [k, t] of all) t.copy_(this.#params.get(k) ?? this.#buffers.get(k)!);
    }));
  }

  /** Puts the model's own weights back, exactly, after applyTo(). */
  restore(model: Module): void {
    this.#usable('restore');
    const backup = this.#backup;
    if (!backup) throw new ArgumentError('EMA.restore: nothing to restore; applyTo(model) was not called (or restore was called twice)');
    const all = [...model.namedParameters(), ...model.namedBuffers()];
    const bad = all.find(([k, t]) => backup.get(k)?.shape.join() !== t.shape.join());
    if (bad || all.length !== backup.size) {
      throw new ArgumentError(`EMA.restore: this is not the model applyTo() was given (${bad ? `${bad[0]} does not match` : `${all.length} tensors, ${backup.size} were swapped out`})`);
    }
    noGrad(() => { for (const [k, t] of all) t.copy_(backup.get(k)!); });
    for (const t of backup.values()) t.dispose();
    this.#backup = null;
  }

  /** Runs fn with the EMA weights in the model, then puts the model's own back (also when fn throws). */
  withWeights<T>(model: Module, fn: () => T): T {
    this.applyTo(model);
    let result: T;
    try {
      result = fn();
    } finally {
      this.restore(model);
    }
    if (result instanceof Promise) throw new ArgumentError('EMA.withWeights: fn returned a Promise; the weights were restored before it settled. Keep fn synchronous.');
    return result;
  }

  /** Frees the shadow tensors (and a pending backup). */
  dispose(): void {
    for (const t of [...this.#params.values(), ...this.#buffers.values(), ...(this.#backup?.values() ?? [])]) t.dispose();
    this.#backup = null;
    this.#disposed = true;
  }

  #usable(op: string): void {
    if (this.#disposed) throw new ArgumentError(`EMA.${op}: this EMA was disposed`);
  }

  #checkModel(op: string, params: [string, Tensor][], buffers: [string, Tensor][]): void {
    const problems: string[] = [];
    const check = (kind: string, list: [string, Tensor][], own: Map<string, Tensor>): void => {
      if (list.length !== own.size) problems.push(`the model has ${list.length} ${kind}, the EMA ${own.size}`);
      for (const [k, t] of list) {
        const s = own.get(k);
        if (!s) problems.push(`${kind.slice(0, -1)} ${k} is not in the EMA`);
        else if (s.shape.join() !== t.shape.join()) problems.push(`${k}: shape ${shapeOf(t)} in the model, ${shapeOf(s)} in the EMA`);
        if (problems.length >= 8) return;
      }
    };
    check('parameters', params, this.#params);
    check('buffers', buffers, this.#buffers);
    if (problems.length) throw new ArgumentError(`EMA.${op}: the model does not match the one this EMA was made from: ${problems.slice(0, 8).join('; ')}`);
  }
}
