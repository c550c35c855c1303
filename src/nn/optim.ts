// Adam (Kingma & Ba 2015) and AdamW (Loshchilov & Hutter 2019), step for step as torch.optim's
// single-tensor implementation, with state that saves and restores exactly.
import { type Tensor, noGrad, zerosLike, keep, ArgumentError } from '../tensor/index.js';

export interface AdamOptions {
  lr?: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

interface ParamState { expAvg: Tensor; expAvgSq: Tensor }

export class Adam {
  lr: number;
  readonly betas: [number, number];
  readonly eps: number;
  readonly weightDecay: number;
  /** Number of steps taken (torch keeps one per parameter; they are always equal here). */
  stepCount = 0;
  readonly #state = new Map<string, ParamState>();

  constructor(readonly params: [string, Tensor][], o: AdamOptions = {}, private readonly decoupled = false) {
    this.lr = o.lr ?? 1e-3;
    this.betas = o.betas ?? [0.9, 0.999];
    this.eps = o.eps ?? 1e-8;
    this.weightDecay = o.weightDecay ?? (decoupled ? 1e-2 : 0);
    if (!(this.lr >= 0)) throw new ArgumentError(`Adam: invalid learning rate ${this.lr}`);
    if (!(this.betas[0] >= 0 && this.betas[0] < 1 && this.betas[1] >= 0 && this.betas[1] < 1)) throw new ArgumentError(`Adam: betas must be in [0, 1), got [${this.betas.join(', ')}]`);
    if (!(this.eps >= 0)) throw new ArgumentError(`Adam: invalid eps ${this.eps}`);
  }

  zeroGrad(): void { for (const [, p] of this.params) p.grad = null; }

  step(): void {
    this.stepCount += 1;
    const [b1, b2] = this.betas;
    const bc1 = 1 - b1 ** this.stepCount;
    const bc2Sqrt = Math.sqrt(1 - b2 ** this.stepCount);
    const stepSize = this.lr / bc1;
    noGrad(() => {
      for (const [name, p] of this.params) {
        let g = p.grad;
        if (g === null) continue;
        const s = this.#stateFor(name, p);
        if (this.weightDecay !== 0) {
          if (this.decoupled) p.mul_(1 - this.lr * this.weightDecay);
          else {
            // grad.add(param, alpha=wd) as torch: one fused kernel, and no temporary to free.
            const gd = g.clone().add_(p, this.weightDecay);
            g.dispose();
            g = gd;
          }
        }
        s.expAvg.mul_(b1).add_(g, 1 - b1);
        s.expAvgSq.mul_(b2).addcmul_(g, g, 1 - b2);
        const root = s.expAvgSq.sqrt();
        const scaled = root.div(bc2Sqrt);
        const denom = scaled.add(this.eps);
        p.addcdiv_(s.expAvg, denom, -stepSize);
        for (const t of [g, root, scaled, denom]) t.dispose();
      }
    });
  }

  #stateFor(name: string, p: Tensor): ParamState {
    let s = this.#state.get(name);
    if (!s) {
      s = { expAvg: keep(zerosLike(p)), expAvgSq: keep(zerosLike(p)) };
      this.#state.set(name, s);
    }
    return s;
  }

  /** Moment tensors by `<param>.exp_avg` / `<param>.exp_avg_sq`, plus the scalar state. */
  stateDict(): { tensors: Map<string, Tensor>; step: number; lr: number } {
    const tensors = new Map<string, Tensor>();
    for (const [name, s] of this.#state) {
      tensors.set(`${name}.exp_avg`, s.expAvg);
      tensors.set(`${name}.exp_avg_sq`, s.expAvgSq);
    }
    return { tensors, step: this.stepCount, lr: this.lr };
  }

  /** Restores exactly what stateDict() gave; checked whole before anything changes. */
  loadStateDict(sd: { tensors: Map<string, Tensor>; step: number; lr?: number }, source = 'optimizer state'): void {
    const byName = new Map(this.params);
    const problems: string[] = [];
    for (const k of sd.tensors.keys()) {
      const m = /^(.*)\.(exp_avg|exp_avg_sq)$/.exec(k);
      const p = m ? byName.get(m[1]!) : undefined;
      if (!m || !p) problems.push(`unexpected tensor ${k}`);
      else if (sd.tensors.get(k)!.shape.join() !== p.shape.join()) problems.push(`${k}: shape [${sd.tensors.get(k)!.shape.join(', ')}], parameter has [${p.shape.join(', ')}]`);
    }
    for (const [name] of this.params) {
      if (sd.step > 0 && (!sd.tensors.has(`${name}.exp_avg`) || !sd.tensors.has(`${name}.exp_avg_sq`))) problems.push(`missing moments of ${name}`);
    }
    if (!Number.isInteger(sd.step) || sd.step < 0) problems.push(`step must be a non-negative integer, got ${sd.step}`);
    if (problems.length) throw new ArgumentError(`cannot load ${source}: ${problems.slice(0, 8).join('; ')}`);
    noGrad(() => {
      for (const [name, p] of this.params) {
        const a = sd.tensors.get(`${name}.exp_avg`);
        if (!a) continue;
        const s = this.#stateFor(name, p);
        s.expAvg.copy_(a);
        s.expAvgSq.copy_(sd.tensors.get(`${name}.exp_avg_sq`)!);
      }
    });
    this.stepCount = sd.step;
    if (sd.lr !== undefined) this.lr = sd.lr;
  }
}

export class AdamW extends Adam {
  constructor(params: [string, Tensor][], o: AdamOptions = {}) { super(params, o, true); }
}

/**
 * Scales gradients so their global L2 norm is at most maxNorm (torch.nn.utils.clip_grad_norm_);
 * returns the norm before clipping (Infinity or NaN when a gradient is not finite).
 */
export function clipGradNorm(params: Tensor[], maxNorm: number): number {
  return noGrad(() => {
    const grads = params.map((p) => p.grad).filter((g): g is Tensor => g !== null);
    if (grads.length === 0) return 0;
    let sq = 0;
    for (const g of grads) { const n = g.norm(); const v = n.item(); sq += v * v; n.dispose(); }
    const total = Math.sqrt(sq);
    const coef = Math.min(maxNorm / (total + 1e-6), 1);
    if (coef < 1) for (const g of grads) g.mul_(coef);
    for (const g of grads) g.dispose();
    return total;
  });
}
