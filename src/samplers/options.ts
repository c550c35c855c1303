// The sampler options, declared once: type, range and help words here; defaults from the run
// (samplerDefaults). `ddpm sample`, `ddpm eval`, `ddpm viz reverse`, the studio's Generate form and
// its request check, and resolveSampling (sample.ts) all read these declarations.
// The other flags of a sampling run (-n, --seed, --batch-size, --threads, ...) are declared in run-options.ts.
//
// To add a sampler option (e.g. `ddpm sample --model FILE.onnx`): add one `option({...})` entry to
// SAMPLER_OPTIONS (name, flag, help, defaultHelp, schema), give it a default in samplerDefaults if it
// depends on the run, and read it in resolveSampling. A command takes it with one line,
// `.addOption(declared(SAMPLER_OPTIONS.x))` (cli/args.ts makes the flag, its help and its parser);
// the studio checks it with `f.declared('x', SAMPLER_OPTIONS.x.schema)` in parseGenerateRequest.
// Every refusal's words come from the schema (options/declare.ts), so none is written by hand. The
// ranges of steps, eta, correctorSteps and snr are the schemas the samplers' own checks use
// (timesteps.ts STEPS, ddim.ts ETA, pc.ts CORRECTOR_STEPS and SNR): a library caller and a flag are refused alike.
import * as z from 'zod';
import { option } from '../options/declare.js';
import type { Objective } from '../diffusion/objectives.js';
import { X0_PROCESSINGS, type X0Processing } from './prediction.js';
import { VARIANCES, type Variance } from './ddpm.js';
import { SPACINGS, STEPS, type Spacing } from './timesteps.js';
import { DEFAULT_SNR, CORRECTOR_STEPS, SNR } from './pc.js';
import { ETA } from './ddim.js';

/**
 *   ddpm:    ancestral sampling (Ho et al. 2020, Algorithm 2), respaced for K < T (Nichol & Dhariwal 2021);
 *   ddim:    DDIM (Song et al. 2021, eq. 12) with eta;
 *   dpmpp2m: DPM-Solver++(2M) (Lu et al. 2022);
 *   pc:      predictor-corrector (Song et al. 2021, SDE paper): the ddpm step, then Langevin corrector steps.
 */
export const SAMPLERS = ['ddpm', 'ddim', 'dpmpp2m', 'pc'] as const;
export type SamplerName = (typeof SAMPLERS)[number];

export const SAMPLER_OPTIONS = {
  sampler: option({ name: 'sampler', flag: '--sampler <name>', help: `the reverse process: ${SAMPLERS.join(', ')}`, defaultHelp: "the run's own: the sampler, steps and variance of its epoch grids (DDPM over all T for dli02/dli03, DDIM 50 for ddpm)", schema: z.enum(SAMPLERS) }),
  steps: option({ name: 'steps', flag: '--steps <k>', help: 'model timesteps K <= T', defaultHelp: "the run's own for its sampler; else T for ddpm and pc, 50 for ddim, 20 for dpmpp2m, at most T", schema: STEPS }),
  eta: option({ name: 'eta', flag: '--eta <x>', help: 'ddim only: noise of each step, 0 (deterministic) .. 1 (DDPM-like)', defaultHelp: '0', schema: ETA }),
  spacing: option({ name: 'spacing', flag: '--spacing <kind>', help: `ddpm, ddim, pc: which K timesteps, ${SPACINGS.join(', ')}`, defaultHelp: 'linspace; trailing for ddim', schema: z.enum(SPACINGS) }),
  variance: option({ name: 'variance', flag: '--variance <kind>', help: `ddpm and pc: reverse variance, ${VARIANCES.join(', ')} (notebook: beta_{t-1}, as the course notebook; learned: the model's own, runs trained with --learn-variance)`, defaultHelp: "the run's own for its sampler; else learned for a --learn-variance run, notebook for ddpm, beta for pc", schema: z.enum(VARIANCES) }),
  x0Processing: option({ name: 'x0Processing', flag: '--clip <kind>', help: `x0 processing: ${X0_PROCESSINGS.join(', ')} (dynamic: Imagen's thresholding)`, defaultHelp: 'none for eps models, clip for x0 and v', schema: z.enum(X0_PROCESSINGS) }),
  guidance: option({ name: 'guidance', flag: '--guidance <w>', help: 'classifier-free guidance weight w, (1 + w) cond - w uncond (class-conditional runs)', defaultHelp: '0', schema: z.number() }),
  classifierScale: option({ name: 'classifierScale', flag: '--classifier-scale <s>', help: 'classifier guidance scale s (Dhariwal & Nichol 2021): eps - s sqrt(1 - alphabar_t) grad log p(y | x_t), with --classifier', defaultHelp: '1', schema: z.number() }),
  correctorSteps: option({ name: 'correctorSteps', flag: '--corrector-steps <n>', help: 'pc only: Langevin corrector steps per noise level', defaultHelp: '1', schema: CORRECTOR_STEPS }),
  snr: option({ name: 'snr', flag: '--snr <r>', help: "pc only: the corrector's signal-to-noise ratio", defaultHelp: String(DEFAULT_SNR), schema: SNR }),
} as const;

export type SamplerOptionName = keyof typeof SAMPLER_OPTIONS;

/** Where the network computes: cpu, cuda (the current GPU) or cuda:N. One schema for `ddpm train`, `ddpm sample` and `ddpm eval`. */
export const DEVICE_SCHEMA = z.string().regex(/^(cpu|cuda(:\d+)?)$/).describe('cpu, cuda or cuda:N');
export const DEVICE_HELP = 'where the network computes: cpu, cuda or cuda:N (needs the addon built against a CUDA libtorch)';
/** `--device` of `ddpm sample` and `ddpm eval`: the model and x_T there, the images back on the CPU. */
export const DEVICE_OPTION = option({ name: 'device', flag: '--device <name>', help: DEVICE_HELP, defaultHelp: 'cpu', schema: DEVICE_SCHEMA });

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

/**
 * The reverse variance when none is asked for: the model's own when it learned one (Nichol & Dhariwal
 * 2021); else the notebook's for ddpm, and Song et al.'s ancestral predictor (beta_t) for pc.
 */
export function defaultVariance(sampler: SamplerName, learnVariance = false): Variance {
  if (learnVariance) return 'learned';
  return sampler === 'pc' ? 'beta' : 'notebook';
}

/**
 * What a sampler does with a learned variance, in words for a note, or null where it uses it. ddpm
 * and pc have a reverse variance, the ancestral step's sigma_t, which the model learned (pc's Langevin
 * corrector steps by its snr, not by a variance). DDIM's sigma is eta's (Song et al. 2021, eq. 16),
 * a free choice of its non-Markovian process rather than the variance of the Markovian reverse step
 * Sigma_theta was trained for, and improved-diffusion's ddim_sample ignores the model's variance too;
 * DPM-Solver++ solves the probability-flow ODE, which has none.
 */
export function learnedVarianceNote(sampler: SamplerName, eta = 0): string | null {
  switch (sampler) {
    case 'ddim': return `ddim reads only the mean channels of this learned-variance model: its noise is eta's (${eta}; Song et al. 2021, eq. 16), not the learned Sigma; --sampler ddpm or pc uses it`;
    case 'dpmpp2m': return 'dpmpp2m reads only the mean channels of this learned-variance model (it solves the ODE, which has no variance); --sampler ddpm or pc uses it';
    default: return null;
  }
}

/**
 * x0 processing for a run's sampler when none is asked for: none for eps models, which keeps the
 * course notebook's sampler (and its bit-for-bit results); clip for x0 and v models, whose x0_hat is
 * the network's own output and can leave the data range [-1, 1] early in sampling (lucidrains'
 * clip_denoised and diffusers' clip_sample default to clipping too).
 */
export function defaultX0Processing(objective: Objective): X0Processing { return objective === 'eps' ? 'none' : 'clip'; }

/** What a run says about sampling: its T, objective and the sampler of its own epoch grids. */
export interface RunSampling {
  T: number;
  objective: Objective;
  grid: { sampler?: SamplerName; steps?: number; variance?: Variance };
  /** The model learned its variance (--learn-variance): ddpm and pc default to it. */
  learnVariance?: boolean;
}

/** Every sampler option's default for a run, with `sampler` chosen (absent: the run's own). */
export interface SamplerDefaults {
  sampler: SamplerName;
  steps: number;
  eta: number | null;
  spacing: Spacing | null;
  variance: Variance | null;
  x0Processing: X0Processing;
  guidance: number;
  correctorSteps: number | null;
  snr: number | null;
}

/**
 * The defaults follow the run: with no sampler named, the sampler, steps and variance its preset
 * chose for its own epoch grids (dli02/dli03: DDPM over all 150 steps with the notebook's variance,
 * where DDIM with eta 0 gives checkered textures; ddpm: DDIM 50). Naming another sampler gives
 * that sampler's own defaults.
 */
export function samplerDefaults(run: RunSampling, sampler?: SamplerName): SamplerDefaults {
  const own = run.grid.sampler ?? 'ddpm';
  const s = sampler ?? own;
  const same = s === own;
  const ancestral = s === 'ddpm' || s === 'pc';
  return {
    sampler: s,
    steps: Math.min(same && run.grid.steps !== undefined ? run.grid.steps : defaultSteps(s, run.T), run.T),
    eta: s === 'ddim' ? 0 : null,
    spacing: s === 'dpmpp2m' ? null : defaultSpacing(s),
    variance: ancestral ? (same && run.grid.variance !== undefined ? run.grid.variance : defaultVariance(s, run.learnVariance)) : null,
    x0Processing: defaultX0Processing(run.objective),
    guidance: 0,
    correctorSteps: s === 'pc' ? 1 : null,
    snr: s === 'pc' ? DEFAULT_SNR : null,
  };
}

/** The default of each sampler, for a form that switches samplers without asking the server again. */
export function samplerDefaultsBySampler(run: RunSampling): Record<SamplerName, SamplerDefaults> {
  return Object.fromEntries(SAMPLERS.map((s) => [s, samplerDefaults(run, s)])) as Record<SamplerName, SamplerDefaults>;
}
