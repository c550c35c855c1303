// Every sampler's options, validated (resolveSampling) with the defaults filled in, shared by the
// libtorch path (libtorch.ts) and the ONNX Runtime path (onnx-model.ts, the web page). Tensor-free
// at run time: the page bundles it.
import type { Tensor, Generator } from '../tensor/index.js';
import { ArgumentError } from '../tensor/check.js';
import type { Diffusion } from '../diffusion/process.js';
import { type Objective, checkObjective } from '../diffusion/objectives.js';
import type { ConditionalModelFn } from './denoiser.js';
import type { X0Processing, ClassifierGuidance } from './prediction.js';
import type { Variance } from './ddpm.js';
import { checkEta } from './ddim.js';
import { DEFAULT_SNR, checkCorrector } from './pc.js';

export * from './options.js';
import { type Spacing, spacedTimesteps, dpmSolverTimesteps, checkSteps } from './timesteps.js';
import { refusal } from '../options/declare.js';
import { SAMPLER_OPTIONS as O, type SamplerName, defaultSteps, defaultSpacing, defaultVariance } from './options.js';
import type { StepResult } from './step.js';

export interface SamplerOptions {
  /** The network: (x_t, t (B,) int64, c (B, numClasses) or null) -> its output for `objective`. */
  model: ConditionalModelFn;
  diffusion: Diffusion;
  /** What the model predicts. */
  objective: Objective;
  /** (N, C, H, W) of the images to make. */
  shape: [number, number, number, number];
  sampler: SamplerName;
  /** Number of model timesteps K <= T (default: defaultSteps). */
  steps?: number;
  /** ddim only: 0 (deterministic, default) .. 1. */
  eta?: number;
  /** ddim, ddpm and pc: which K timesteps (default: defaultSpacing). */
  spacing?: Spacing;
  /** ddpm and pc: the reverse variance (default: defaultVariance; learned for a learned-variance model). */
  variance?: Variance;
  /**
   * The model's output has 2C channels, the second C a learned variance (a run trained with
   * --learn-variance). ddpm and pc use it as their variance by default; ddim and dpmpp2m read only the mean.
   */
  learnVariance?: boolean;
  /** Clip or threshold x0_hat (default none). */
  x0Processing?: X0Processing;
  /** Classes the model is conditioned on (0 or absent: unconditional). */
  numClasses?: number;
  /** One class index per image (N of them); absent: every image unconditional. */
  labels?: readonly number[];
  /** Classifier-free guidance weight w (needs labels); 0: conditional only. */
  guidance?: number;
  /** pc only: Langevin steps after each predictor step (default 1). */
  correctorSteps?: number;
  /** pc only: the corrector's signal-to-noise ratio r (default 0.16). */
  snr?: number;
  generator?: Generator;
  /** Start from this x_T (N, C, H, W) instead of drawing it. */
  xT?: Tensor;
  /** Images per sampling loop (default: all N). */
  batchSize?: number;
  /** Called after every step with the batch's offset and the step's intermediates (tensors freed after the call). */
  onStep?: (step: StepResult, batchOffset: number) => void;
  /**
   * Classifier guidance (Dhariwal & Nichol 2021) toward classifier.labels, one per image; it needs the
   * classifier's gradient, so libtorch's sample() takes it and ONNX Runtime's sampleOnnx refuses it.
   */
  classifier?: ClassifierGuidance<Tensor>;
}

function refuse(msg: string): never { throw new ArgumentError(`sample: ${msg}`); }
/** Refuses a value its declaration (options.ts) does not accept, in the declaration's words. */
function checkDeclared(o: { schema: Parameters<typeof refusal>[0] }, value: unknown, label: string): void {
  const m = refusal(o.schema, value, label);
  if (m !== null) refuse(m);
}

/** The validated options with defaults filled in, and the sampler's own steps. */
export interface ResolvedSampling {
  sampler: SamplerName;
  objective: Objective;
  steps: number;
  timesteps: number[];
  eta: number;
  spacing: Spacing | null;
  variance: Variance | null;
  learnVariance: boolean;
  x0Processing: X0Processing;
  numClasses: number;
  guidance: number;
  correctorSteps: number;
  snr: number;
  batchSize: number;
}

/** What resolveSampling reads: the sampler options without the model, on any schedule's terms. */
export type SamplingChoice = Omit<SamplerOptions, 'model' | 'diffusion' | 'xT' | 'onStep' | 'classifier'> & {
  model?: unknown;
  /** Classifier guidance as far as it is checked here: its scale, classes and one class per image. */
  classifier?: Pick<ClassifierGuidance<unknown>, 'scale' | 'numClasses' | 'labels'>;
  diffusion: Pick<Diffusion, 'T' | 'terms'>;
  xT?: { shape: number[] };
};

export function resolveSampling(o: SamplingChoice): ResolvedSampling {
  const sampler = o.sampler;
  checkDeclared(O.sampler, sampler, 'sampler');
  const objective = checkObjective(o.objective);
  const T = o.diffusion.T;
  const [n, c, h, w] = o.shape;
  for (const [k, v] of Object.entries({ n, c, h, w })) if (!Number.isInteger(v) || v < 1) refuse(`shape ${k} must be a positive integer, got ${v}`);
  const batchSize = o.batchSize ?? n;
  if (!Number.isInteger(batchSize) || batchSize < 1) refuse(`batch size must be a positive integer, got ${batchSize}`);
  if (o.xT && o.xT.shape.join() !== o.shape.join()) refuse(`xT has shape [${o.xT.shape.join(', ')}], expected the sample shape [${o.shape.join(', ')}]`);

  const steps = o.steps ?? defaultSteps(sampler, T);
  checkSteps(`sample (${sampler})`, steps, T);
  if (o.eta !== undefined && sampler !== 'ddim') refuse(`eta applies to ddim only (${sampler} has no eta: its noise is fixed by the sampler), got eta ${o.eta}`);
  const eta = sampler === 'ddim' ? checkEta(o.eta ?? 0) : 0;
  if (o.spacing !== undefined) checkDeclared(O.spacing, o.spacing, 'spacing');
  if (o.spacing !== undefined && sampler === 'dpmpp2m') refuse('dpmpp2m has its own timesteps (round(linspace(0, T - 1, K + 1)) as diffusers); spacing applies to ddpm, ddim and pc');
  const spacing = sampler === 'dpmpp2m' ? null : o.spacing ?? defaultSpacing(sampler);
  if (o.variance !== undefined && (sampler === 'ddim' || sampler === 'dpmpp2m')) refuse(`variance applies to ddpm and pc only (${sampler}'s noise is ${sampler === 'ddim' ? 'set by eta' : 'zero: it solves the ODE'}), got ${JSON.stringify(o.variance)}`);
  if (o.variance !== undefined) checkDeclared(O.variance, o.variance, 'variance');
  const learnVariance = o.learnVariance ?? false;
  if (typeof learnVariance !== 'boolean') refuse(`learnVariance must be true or false, got ${JSON.stringify(learnVariance)}`);
  if (o.variance === 'learned' && !learnVariance) {
    refuse('variance learned needs a model trained with --learn-variance (its output has 2C channels, the second C the variance), and this one predicts no variance; use notebook, beta or posterior');
  }
  const variance = sampler === 'ddpm' || sampler === 'pc' ? o.variance ?? defaultVariance(sampler, learnVariance) : null;
  if ((o.correctorSteps !== undefined || o.snr !== undefined) && sampler !== 'pc') refuse(`correctorSteps and snr apply to pc only, not ${sampler}`);
  const correctorSteps = o.correctorSteps ?? 1;
  const snr = o.snr ?? DEFAULT_SNR;
  checkCorrector(correctorSteps, snr);
  const x0Processing = o.x0Processing ?? 'none';
  checkDeclared(O.x0Processing, x0Processing, 'x0 processing');

  const numClasses = o.numClasses ?? 0;
  if (!Number.isInteger(numClasses) || numClasses < 0) refuse(`numClasses must be an integer >= 0, got ${numClasses}`);
  const guidance = o.guidance ?? 0;
  checkDeclared(O.guidance, guidance, 'guidance');
  if (o.labels !== undefined) {
    if (numClasses === 0) refuse('class labels need a class-conditional model, and this one is unconditional (numClasses 0); train with classes or drop the labels');
    if (o.labels.length !== n) refuse(`there are ${o.labels.length} class labels for ${n} images; give one per image`);
    o.labels.forEach((l, i) => {
      if (!Number.isInteger(l) || l < 0 || l >= numClasses) refuse(`class label ${i} is ${l}, outside the model's classes 0..${numClasses - 1}`);
    });
  }
  if (guidance !== 0 && numClasses === 0) refuse(`guidance ${guidance} needs a class-conditional model (classifier-free guidance mixes conditional and unconditional outputs), and this one is unconditional`);
  if (guidance !== 0 && o.labels === undefined) refuse(`guidance ${guidance} needs class labels: without them every image is unconditional and there is nothing to guide toward`);
  if (o.classifier !== undefined) {
    const k = o.classifier;
    checkDeclared(O.classifierScale, k.scale, 'classifier scale');
    if (!Number.isInteger(k.numClasses) || k.numClasses < 2) refuse(`the classifier's numClasses must be an integer >= 2, got ${k.numClasses}`);
    if (k.labels.length !== n) refuse(`there are ${k.labels.length} classifier labels for ${n} images; give one class per image to guide toward`);
    k.labels.forEach((l, i) => {
      if (!Number.isInteger(l) || l < 0 || l >= k.numClasses) refuse(`classifier label ${i} is ${l}, outside the classifier's classes 0..${k.numClasses - 1}`);
    });
  }

  const timesteps = sampler === 'dpmpp2m' ? dpmSolverTimesteps(T, steps) : spacedTimesteps(T, steps, spacing!);
  if (objective === 'eps' && o.diffusion.terms.alphaBar[timesteps[0]!] === 0) {
    refuse(`the eps objective cannot sample from t = ${timesteps[0]}, where alphabar = 0 (a zero-terminal-SNR schedule): x0 = (x_t - sqrt(1 - alphabar) eps) / sqrt(alphabar) divides by 0 there; use a v or x0 model`);
  }
  return { sampler, objective, steps, timesteps, eta, spacing, variance, learnVariance, x0Processing, numClasses, guidance, correctorSteps, snr, batchSize };
}
