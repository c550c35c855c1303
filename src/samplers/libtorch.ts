// The samplers on libtorch: the array operations of tensors (a Tensor is an NdArray as it is) and
// sample(), which drives the reverse process (reverse.ts) synchronously through the network.
import { type Tensor, type Generator, type Device, randn, randnLike, inferenceMode, withGrad, tidy, keep, cat, full, tensor, logSoftmax } from '../tensor/index.js';
import type { Diffusion } from '../diffusion/process.js';
import type { ArrayOps } from './array.js';
import { type ConditionalModelFn, oneHot } from './denoiser.js';
import { type SamplerOptions, resolveSampling } from './sample.js';
import { reverseProcess, runSync } from './reverse.js';

/** Tensor constructors and scopes, noise from `generator` (libtorch's default generator without one). */
export function tensorOps(generator?: Generator): ArrayOps<Tensor> {
  const gen = generator ? { generator } : {};
  return {
    cat: (parts, dim) => cat(parts, dim),
    randn: (shape) => randn(shape, gen),
    randnLike: (like) => randnLike(like, generator),
    scope: tidy,
    keep,
    release: (a) => a.dispose(),
  };
}

/** The network's output for one model call: t as an int64 (B,) tensor, labels as one-hot rows (-1: a zero row). */
export function callModel(model: ConditionalModelFn, numClasses: number, x: Tensor, t: number, labels: readonly number[] | null): Tensor {
  return keep(tidy(() => model(x, full([x.shape[0]!], t, { dtype: 'int64' }), labels === null ? null : oneHot(labels, numClasses))));
}

/**
 * The network on `device`: each call moves x, t and the labels there and the output back. The
 * reverse process itself stays on the CPU, so x_T and every step's noise come from the CPU generator
 * and a seed gives the same images on every device (up to the kernels' float rounding).
 */
export function modelOn(model: ConditionalModelFn, device: Device): ConditionalModelFn {
  if (device === 'cpu') return model;
  return (x, t, c) => tidy(() => model(x.to(device), t.to(device), c ? c.to(device) : c).to('cpu'));
}

/** A classifier's logits for (x_t (B, C, H, W), t (B,) int64): (B, K). */
export type ClassifierLogitsFn = (x: Tensor, t: Tensor) => Tensor;

/**
 * grad_x log p_phi(y | x_t, t) by autograd through the classifier, as guided-diffusion's cond_fn: x_t
 * detached and made a leaf, log_softmax of the logits at each row's class, summed, backward. It runs
 * with gradients on and inference mode off even inside `sample`'s inference mode (x_t, an inference
 * tensor there, is cloned into a normal one first); the classifier's own parameters should not
 * require grad (loadClassifier freezes them). On `device` the classifier runs there and the gradient
 * comes back to the CPU.
 */
export function classifierGradient(classifier: ClassifierLogitsFn, device: Device = 'cpu'): (x: Tensor, t: number, labels: readonly number[]) => Tensor {
  return (x, t, labels) => tidy(() => inferenceMode(() => withGrad(() => {
    const b = x.shape[0]!;
    const xIn = (device === 'cpu' ? x : x.to(device)).clone().detach().requiresGrad_(true); // (B, C, H, W)
    const logits = classifier(xIn, full([b], t, { dtype: 'int64', device })); // (B, K)
    const y = tensor(BigInt64Array.from(labels, (l) => BigInt(l)), [b, 1], { dtype: 'int64', device });
    logSoftmax(logits, 1).gather(1, y).sum().backward();
    const g = xIn.grad!; // (B, C, H, W)
    return device === 'cpu' ? g : g.to('cpu');
  }), false));
}

/**
 * Runs the chosen sampler from x_T ~ N(0, I) to x_0 for N images; returns (N, C, H, W). The reverse
 * process runs in inference mode (no autograd, no version counting), so the images and every tensor
 * the model makes in here are inference tensors: clone one outside before autograd may save it.
 */
export function sample(o: SamplerOptions): Tensor {
  const sampling = resolveSampling(o);
  return inferenceMode(() => runSync(
    reverseProcess({
      ops: tensorOps(o.generator), terms: o.diffusion.terms, sampling, shape: o.shape,
      ...(o.labels ? { labels: o.labels } : {}), ...(o.xT ? { xT: o.xT } : {}), ...(o.onStep ? { onStep: o.onStep } : {}),
      ...(o.classifier ? { classifier: o.classifier } : {}),
    }),
    (call) => callModel(o.model, sampling.numClasses, call.x, call.t, call.labels),
  ));
}

/** The options of the notebook's sampler, as ddpmSample has always taken them, plus what sample adds. */
export interface SampleOptions extends Partial<Omit<SamplerOptions, 'model' | 'diffusion' | 'sampler' | 'shape'>> {
  /** (N, C, H, W) of the images to make. */
  shape: [number, number, number, number];
}

/** DDPM ancestral sampling over every timestep (the notebook's loop); eps objective unless told. */
export function ddpmSample(model: ConditionalModelFn, d: Diffusion, o: SampleOptions): Tensor {
  return sample({ ...o, model, diffusion: d, sampler: 'ddpm', objective: o.objective ?? 'eps' });
}

/** Refuses non-finite samples: a diverged model must fail loudly, not write black images. */
export function assertFinite(x: Tensor, what: string): void {
  const ok = tidy(() => x.isfinite().all().item());
  if (!ok) {
    const bad = tidy(() => x.isfinite().logicalNot().sum().item());
    throw new Error(`${what}: ${bad} of ${x.numel} values are NaN or infinite; the model or its checkpoint has diverged (try a lower --lr, or an earlier checkpoint)`);
  }
}
