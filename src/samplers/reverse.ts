// The reverse process of every sampler, written once: a generator that yields each model call it
// needs and is resumed with the network's output. libtorch's forward is synchronous and ONNX
// Runtime's session.run is asynchronous; runSync (sample.ts's libtorch path) and runAsync (ONNX
// Runtime in Node and in the browser) drive the same generator, so each sampler's arithmetic exists
// once. Tensor-free: it works on whatever the ArrayOps make.
import type { NdArray } from '../tensor/ndarray.js';
import type { ScheduleTerms } from '../diffusion/schedule.js';
import type { ArrayOps } from './array.js';
import { type Prediction, type ModelCall, type ClassifierGuidance, guidedCall, guidedCombine, denoisedFrom } from './prediction.js';
import { ddpmStep, ancestralStep } from './ddpm.js';
import { ddimStep } from './ddim.js';
import { dpmSolver2mStep } from './dpm-solver.js';
import { langevinStep } from './pc.js';
import { type StepResult, type PlannedStep, planSteps } from './step.js';
import type { ResolvedSampling } from './sample.js';

export interface ReverseOptions<A extends NdArray<A>> {
  ops: ArrayOps<A>;
  terms: ScheduleTerms;
  /** The validated sampling (sample.ts's resolveSampling). */
  sampling: ResolvedSampling;
  /** (N, C, H, W) of the images to make. */
  shape: [number, number, number, number];
  /** One class index per image (N of them); absent: every image unconditional. */
  labels?: readonly number[];
  /** Start from this x_T (N, C, H, W) instead of drawing it. */
  xT?: A;
  /** Called after every step with the batch's offset and the step's intermediates (released after the call). */
  onStep?: (step: StepResult<A>, batchOffset: number) => void;
  /** Classifier guidance: the classifier's gradient at each prediction, toward classifier.labels (one per image). */
  classifier?: ClassifierGuidance<A>;
}

/** The generator: yields model calls, is resumed with each call's output (owned by it from then on), returns x_0 (N, C, H, W). */
export type ReverseProcess<A> = Generator<ModelCall<A>, A, A>;

export function* reverseProcess<A extends NdArray<A>>(o: ReverseOptions<A>): ReverseProcess<A> {
  const { ops, terms, sampling: r } = o;
  const [n, c, h, w] = o.shape;
  const plan = planSteps({ terms }, r.timesteps);
  const noise = (like: A): A => ops.randnLike(like);
  // Today's arithmetic, bit for bit, for the notebook's case (eps model, every step, no clipping).
  const notebookForm = r.objective === 'eps' && r.x0Processing === 'none' && r.steps === terms.T && r.variance !== 'learned';
  const predictorStep = (p: PlannedStep, x: A, den: Prediction<A>): { x: A; mean: A; sigma: number } => (
    notebookForm ? ddpmStep({ terms }, den.eps, x, p.t, r.variance!, noise) : ancestralStep(p, x, den.x0, r.variance!, noise, den.v));
  // A learned variance's channels (the model's second C); DDIM and DPM-Solver++ read only the mean's.
  const learned = r.learnVariance ? { channels: c, cat: (parts: A[], dim: number): A => ops.cat(parts, dim) } : undefined;

  const clf = o.classifier && o.classifier.scale !== 0 ? o.classifier : null;

  /** One (guided) model call at (x, t); everything it makes goes into `held`. targets: the classifier's classes of these rows. */
  function* denoise(x: A, t: number, labels: readonly number[] | null, targets: readonly number[] | null, held: Set<A>): Generator<ModelCall<A>, Prediction<A>, A> {
    const call = ops.scope(() => guidedCall(ops, x, t, labels, r.guidance));
    if (call.x !== x) held.add(ops.keep(call.x));
    const raw = yield call;
    held.add(raw);
    let guide: { grad: A; scale: number } | null = null;
    if (clf && targets) {
      const grad = ops.keep(ops.scope(() => clf.gradLogProb(x, t, targets))); // (B, C, H, W)
      held.add(grad);
      guide = { grad, scale: clf.scale };
    }
    const den = ops.scope(() => denoisedFrom(terms, r.objective, r.x0Processing, guidedCombine(raw, x.shape[0]!, call.labels !== labels, r.guidance, learned), x, t, r.learnVariance, guide));
    for (const a of [den.out, den.eps, den.x0, ...(den.v ? [den.v] : [])]) held.add(ops.keep(a));
    return den;
  }

  const batches: A[] = [];
  try {
    for (let start = 0; start < n; start += r.batchSize) {
      const b = Math.min(r.batchSize, n - start);
      let x = ops.keep(o.xT ? ops.scope(() => o.xT!.narrow(0, start, b).clone()) : ops.randn([b, c, h, w])); // x_T (B, C, H, W)
      const labels = o.labels ? o.labels.slice(start, start + b) : null;
      const targets = clf ? clf.labels.slice(start, start + b) : null;
      let lastX0: A | null = null; // DPM-Solver++'s previous x0_hat
      try {
        for (const [index, p] of plan.entries()) {
          const held = new Set<A>();
          const hold = (a: A): A => { held.add(ops.keep(a)); return a; };
          let next: A | undefined;
          let nextX0: A | null = null;
          try {
            const den = yield* denoise(x, p.t, labels, targets, held);
            let step: { x: A; mean: A; sigma: number };
            switch (r.sampler) {
              case 'ddpm': step = ops.scope(() => predictorStep(p, x, den)); break;
              case 'ddim': step = ops.scope(() => ddimStep(p, den.eps, den.x0, r.eta, noise)); break;
              case 'dpmpp2m': {
                const y = ops.scope(() => dpmSolver2mStep(p, x, den.x0, lastX0, index > 0 ? plan[index - 1]!.abT : null).x);
                step = { x: y, mean: y, sigma: 0 };
                break;
              }
              case 'pc': {
                step = ops.scope(() => predictorStep(p, x, den));
                if (p.tPrev >= 0) {
                  hold(step.x);
                  // Langevin at the new level tPrev, whose alpha is 1 - beta' there: alphabar_tPrev / alphabar_next.
                  const alpha = p.abPrev / p.abPrevPrev;
                  let y = step.x;
                  for (let j = 0; j < r.correctorSteps; j++) {
                    const eps = (yield* denoise(y, p.tPrev, labels, targets, held)).eps;
                    const yNow = y;
                    y = hold(ops.scope(() => langevinStep(yNow, eps, p.abPrev, alpha, r.snr, noise).x));
                  }
                  step = { ...step, x: y };
                }
                break;
              }
            }
            hold(step.x);
            hold(step.mean);
            o.onStep?.({ t: p.t, tPrev: p.tPrev, index, steps: plan.length, x: step.x, eps: den.eps, x0: den.x0, mean: step.mean, sigma: step.sigma }, start);
            next = step.x;
            // x0_hat is kept for the next step's DPM-Solver++ update (it may be the model's own output).
            if (r.sampler === 'dpmpp2m') nextX0 = den.x0;
          } finally {
            for (const a of held) if (a !== next && a !== nextX0 && a !== x) ops.release(a);
          }
          ops.release(x);
          x = next!;
          if (lastX0 !== null && lastX0 !== nextX0) ops.release(lastX0);
          lastX0 = nextX0;
        }
      } catch (e) {
        ops.release(x);
        throw e;
      } finally {
        if (lastX0 !== null) ops.release(lastX0);
      }
      batches.push(x);
    }
  } catch (e) {
    for (const part of batches) ops.release(part);
    throw e;
  }
  if (batches.length === 1) return batches[0]!;
  const out = ops.scope(() => ops.cat(batches, 0));
  for (const part of batches) ops.release(part);
  return out;
}

/** Drives the generator with a synchronous model (libtorch): each call's output is the generator's to release. */
export function runSync<A>(gen: ReverseProcess<A>, model: (call: ModelCall<A>) => A): A {
  let res = gen.next();
  while (!res.done) {
    let out: A;
    try {
      out = model(res.value);
    } catch (e) {
      gen.throw(e); // the generator frees what it holds, then rethrows e
      throw e;
    }
    res = gen.next(out);
  }
  return res.value;
}

/** Drives the generator with an asynchronous model (ONNX Runtime's session.run). */
export async function runAsync<A>(gen: ReverseProcess<A>, model: (call: ModelCall<A>) => Promise<A>): Promise<A> {
  let res = gen.next();
  while (!res.done) {
    let out: A;
    try {
      out = await model(res.value);
    } catch (e) {
      gen.throw(e);
      throw e;
    }
    res = gen.next(out);
  }
  return res.value;
}
