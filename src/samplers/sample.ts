// Every sampler's options: their defaults and their validation (resolveSampling), shared by the
// libtorch path (libtorch.ts) and the ONNX Runtime path (onnx-runtime.ts, the web page). Tensor-free
// at run time: the page bundles it.
import type { Tensor, Generator } from '../tensor/index.js';
import { ArgumentError } from '../tensor/check.js';
import type { Diffusion } from '../diffusion/process.js';
import { type Objective, checkObjective } from '../diffusion/objectives.js';
import type { ConditionalModelFn } from './denoiser.js';
import { type X0Processing, X0_PROCESSINGS } from './prediction.js';
import { type Variance, VARIANCES } from './ddpm.js';
import { checkEta } from './ddim.js';
import { DEFAULT_SNR, checkCorrector } from './pc.js';
import { type Spacing, SPACINGS, spacedTimesteps, dpmSolverTimesteps, checkSteps } from './timesteps.js';
import type { StepResult } from './step.js';

/**
 *   ddpm:    ancestral sampling (Ho et al. 2020, Algorithm 2), respaced for K < T (Nichol & Dhariwal 2021);
 *   ddim:    DDIM (Song et al. 2021, eq. 12) with eta;
 *   dpmpp2m: DPM-Solver++(2M) (Lu et al. 2022);
 *   pc:      predictor-corrector (Song et al. 2021, SDE paper): the ddpm step, then Langevin corrector steps.
 */
export const SAMPLERS = ['ddpm', 'ddim', 'dpmpp2m', 'pc'] as const;
export type SamplerName = (typeof SAMPLERS)[number];

/**
 * Steps when none are asked for: ddpm and pc visit every timestep (the notebook); DDIM's 50 and
 * DPM-Solver++'s 20 are where their papers report quality close to the full chain (Song et al. 2021
 * Table 1, Lu et al. 2022 section 6); capped at T.
 */
export function defaultSteps(sampler: SamplerName, T: number): number {
  switch (sampler) {
    case 'ddim': return Math.min(50, T);
    case 'dpmpp2m': return Math.min(20, T);
    default: return T;
  }
}

/**
 * Spacing when none is asked for: ddpm and pc respace with improved-diffusion's evenly strided
 * steps, which include both ends (linspace); DDIM uses trailing, which starts at t = T - 1, where
 * x_T ~ N(0, I) is closest to q(x_T) (Lin et al. 2023, section 3.3); diffusers' default, leading,
 * starts at T - T/K instead.
 */
export function defaultSpacing(sampler: SamplerName): Spacing { return sampler === 'ddim' ? 'trailing' : 'linspace'; }

/** The reverse variance when none is asked for: the notebook's for ddpm; Song et al.'s ancestral predictor (beta_t) for pc. */
export function defaultVariance(sampler: SamplerName): Variance { return sampler === 'pc' ? 'beta' : 'notebook'; }

/**
 * x0 processing for a run's sampler when none is asked for: none for eps models, which keeps the
 * course notebook's sampler (and its bit-for-bit results); clip for x0 and v models, whose x0_hat is
 * the network's own output and can leave the data range [-1, 1] early in sampling (lucidrains'
 * clip_denoised and diffusers' clip_sample default to clipping too).
 */
export function defaultX0Processing(objective: Objective): X0Processing { return objective === 'eps' ? 'none' : 'clip'; }

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
  /** ddpm and pc: the reverse variance (default: defaultVariance). */
  variance?: Variance;
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
}

function refuse(msg: string): never { throw new ArgumentError(`sample: ${msg}`); }

/** The validated options with defaults filled in, and the sampler's own steps. */
export interface ResolvedSampling {
  sampler: SamplerName;
  objective: Objective;
  steps: number;
  timesteps: number[];
  eta: number;
  spacing: Spacing | null;
  variance: Variance | null;
  x0Processing: X0Processing;
  numClasses: number;
  guidance: number;
  correctorSteps: number;
  snr: number;
  batchSize: number;
}

/** What resolveSampling reads: the sampler options without the model, on any schedule's terms. */
export type SamplingChoice = Omit<SamplerOptions, 'model' | 'diffusion' | 'xT' | 'onStep'> & {
  model?: unknown;
  diffusion: Pick<Diffusion, 'T' | 'terms'>;
  xT?: { shape: number[] };
};

export function resolveSampling(o: SamplingChoice): ResolvedSampling {
  const sampler = o.sampler;
  if (!(SAMPLERS as readonly string[]).includes(sampler)) refuse(`sampler must be one of ${SAMPLERS.join(', ')}, got ${JSON.stringify(sampler)}`);
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
  if (o.spacing !== undefined && !(SPACINGS as readonly string[]).includes(o.spacing)) refuse(`spacing must be one of ${SPACINGS.join(', ')}, got ${JSON.stringify(o.spacing)}`);
  if (o.spacing !== undefined && sampler === 'dpmpp2m') refuse('dpmpp2m has its own timesteps (round(linspace(0, T - 1, K + 1)) as diffusers); spacing applies to ddpm, ddim and pc');
  const spacing = sampler === 'dpmpp2m' ? null : o.spacing ?? defaultSpacing(sampler);
  if (o.variance !== undefined && (sampler === 'ddim' || sampler === 'dpmpp2m')) refuse(`variance applies to ddpm and pc only (${sampler}'s noise is ${sampler === 'ddim' ? 'set by eta' : 'zero: it solves the ODE'}), got ${JSON.stringify(o.variance)}`);
  if (o.variance !== undefined && !(VARIANCES as readonly string[]).includes(o.variance)) refuse(`variance must be one of ${VARIANCES.join(', ')}, got ${JSON.stringify(o.variance)}`);
  const variance = sampler === 'ddpm' || sampler === 'pc' ? o.variance ?? defaultVariance(sampler) : null;
  if ((o.correctorSteps !== undefined || o.snr !== undefined) && sampler !== 'pc') refuse(`correctorSteps and snr apply to pc only, not ${sampler}`);
  const correctorSteps = o.correctorSteps ?? 1;
  const snr = o.snr ?? DEFAULT_SNR;
  checkCorrector(correctorSteps, snr);
  const x0Processing = o.x0Processing ?? 'none';
  if (!(X0_PROCESSINGS as readonly string[]).includes(x0Processing)) refuse(`x0 processing must be one of ${X0_PROCESSINGS.join(', ')}, got ${JSON.stringify(x0Processing)}`);

  const numClasses = o.numClasses ?? 0;
  if (!Number.isInteger(numClasses) || numClasses < 0) refuse(`numClasses must be an integer >= 0, got ${numClasses}`);
  const guidance = o.guidance ?? 0;
  if (!Number.isFinite(guidance)) refuse(`guidance must be a finite number, got ${guidance}`);
  if (o.labels !== undefined) {
    if (numClasses === 0) refuse('class labels need a class-conditional model, and this one is unconditional (numClasses 0); train with classes or drop the labels');
    if (o.labels.length !== n) refuse(`there are ${o.labels.length} class labels for ${n} images; give one per image`);
    o.labels.forEach((l, i) => {
      if (!Number.isInteger(l) || l < 0 || l >= numClasses) refuse(`class label ${i} is ${l}, outside the model's classes 0..${numClasses - 1}`);
    });
  }
  if (guidance !== 0 && numClasses === 0) refuse(`guidance ${guidance} needs a class-conditional model (classifier-free guidance mixes conditional and unconditional outputs), and this one is unconditional`);
  if (guidance !== 0 && o.labels === undefined) refuse(`guidance ${guidance} needs class labels: without them every image is unconditional and there is nothing to guide toward`);

  const timesteps = sampler === 'dpmpp2m' ? dpmSolverTimesteps(T, steps) : spacedTimesteps(T, steps, spacing!);
  if (objective === 'eps' && o.diffusion.terms.alphaBar[timesteps[0]!] === 0) {
    refuse(`the eps objective cannot sample from t = ${timesteps[0]}, where alphabar = 0 (a zero-terminal-SNR schedule): x0 = (x_t - sqrt(1 - alphabar) eps) / sqrt(alphabar) divides by 0 there; use a v or x0 model`);
  }
  return { sampler, objective, steps, timesteps, eta, spacing, variance, x0Processing, numClasses, guidance, correctorSteps, snr, batchSize };
}
