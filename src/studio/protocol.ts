// The studio's HTTP contract: what the server (src/studio/server.ts) answers and what the page
// (src/studio/page/) asks. Types and constants only, no Node or DOM imports: both sides import it
// (the page through the bundler).
//
// Routes (JSON unless noted; every error is `ApiError` with a 4xx/5xx status):
//   GET  /                                   the page (index.html), /app.js, /app.css: the bundled page
//   GET  /api/status                         Status (answers at once, also while jobs run)
//   GET  /api/options                        Options: presets, samplers, schedules, limits
//   GET  /api/runs                           RunSummary[]  (every folder of --runs holding a config.json)
//   GET  /api/runs/:run                      RunDetail
//   GET  /api/runs/:run/log?after=STEP       LogRow[] with step > STEP
//   GET  /api/runs/:run/samples/:file        image/png: one per-epoch grid of samples/
//   GET  /api/runs/:run/events               text/event-stream: `log` events (data: LogRow[]) as log.jsonl
//                                            grows, `checkpoint` events (data: CheckpointInfo) as they appear,
//                                            `sample` events (data: file name under samples/) as grids appear;
//                                            on connect, what exists already (log rows, checkpoints, samples)
//   GET  /api/runs/:run/schedule             ScheduleCurves of the run's schedule
//   GET  /api/schedule                       ScheduleCurves of the default schedule (the dli02 preset's, as
//                                            /api/forward uses without a run); optional: the page copes with a 404
//   GET  /api/forward?run=R&index=I&t=T&seed=S   ForwardFrame (run optional: the dli02 preset's schedule)
//   POST /api/train        TrainRequest      202 JobInfo; 409 when a training job is running
//   POST /api/jobs/:id/stop                  202 JobInfo (training stops after its step and checkpoints)
//   GET  /api/jobs/:id                       JobInfo
//   GET  /api/jobs/:id/events                text/event-stream: `progress` (TrainProgress or GenerateFrame),
//                                            `done` (JobInfo), `error` (ApiError)
//   POST /api/generate     GenerateRequest   202 JobInfo; 409 when a generation job is running
//   GET  /api/jobs/:id/grid.png              image/png: the final samples as a grid (generation jobs)
//   GET  /api/jobs/:id/trajectory.gif        image/gif: x_t beside x0_hat, one frame per step
//
// POST bodies are JSON objects sent with Content-Type: application/json, at most 64 KiB; unknown
// fields are refused. A job's events stream replays its progress so far on connect, and stays open
// after `done`/`error` (close the EventSource then, or it reconnects and replays).
//
// Run and checkpoint names are single path segments matched against what exists under --runs;
// "..", "/", "\\", absolute paths and NUL are refused with 400 before any file is touched.

export interface ApiError {
  error: string;
  /** The request field that was wrong, when one was. */
  field?: string;
}

export const LIMITS = {
  /** Images per generation request. */
  maxCount: 64,
  /** Sampler steps per generation request (never more than the run's T). */
  maxSteps: 1000,
  /** Training: epochs per request. */
  maxEpochs: 100,
  maxBatchSize: 1024,
  /** Training image side (the presets' 16 and 28 are within it). */
  maxImageSize: 64,
  /** Frames streamed per generation (evenly spaced when the sampler takes more steps). */
  maxFrames: 200,
  /** Longest run name. */
  maxNameLength: 64,
  /** Training: diffusion steps T per request. */
  maxTimesteps: 1000,
  /** Classifier-free guidance weight w per generation request. */
  maxGuidance: 20,
  /** Seeds are integers in [0, maxSeed]. */
  maxSeed: 4294967295,
} as const;

export type JobKind = 'train' | 'generate';
export type JobState = 'queued' | 'running' | 'stopping' | 'done' | 'stopped' | 'failed';

export interface JobInfo {
  id: string;
  kind: JobKind;
  state: JobState;
  /** The run the job trains or samples from. */
  run: string;
  startedAt: string | null;
  endedAt: string | null;
  /** The last progress event, if any. */
  progress: TrainProgress | GenerateProgress | null;
  /** Why it failed, when it did. */
  error?: string;
}

export interface Status {
  version: string;
  runsDir: string;
  /** The job of each kind that is running, if any. */
  jobs: { train: JobInfo | null; generate: JobInfo | null };
  /** Seconds since the server started. */
  uptime: number;
}

export interface Options {
  presets: string[];
  /** Defaults of each preset, as `ddpm train` would fill them. */
  presetDefaults: Record<string, { epochs: number; batchSize: number; lr: number; imageSize: number; timesteps: number; schedule: string; objective: string }>;
  samplers: string[];
  schedules: string[];
  objectives: string[];
  lossWeightings: string[];
  limits: typeof LIMITS;
}

export interface CheckpointInfo {
  /** e.g. "step-1407" (a folder name under checkpoints/). */
  name: string;
  step: number;
  epoch: number | null;
  hasEma: boolean;
}

export interface LogRow {
  step: number;
  epoch: number;
  loss: number;
  lr: number;
  imagesPerSecond: number;
  time: string;
}

export interface RunSummary {
  name: string;
  preset: string;
  imageSize: number;
  channels: number;
  timesteps: number;
  classConditional: boolean;
  epochs: number;
  /** The last logged step and loss, if any. */
  lastStep: number | null;
  lastLoss: number | null;
  checkpointCount: number;
  /** True while a studio training job writes this run. */
  training: boolean;
  /** A noise-aware classifier's run (`ddpm train-classifier`): the folder name of the diffusion run it was trained for; null for a diffusion run. */
  classifierOf: string | null;
}

export interface RunDetail extends RunSummary {
  /** config.json as written by `ddpm train`. */
  config: unknown;
  log: LogRow[];
  checkpoints: CheckpointInfo[];
  /** File names under samples/, in epoch order (served by /api/runs/:run/samples/:file). */
  samples: string[];
  /**
   * The Generate form's defaults, from the run (samplers/options.ts): `own` is the sampler of its
   * epoch grids, which the form starts from; `bySampler` the defaults once another is chosen.
   */
  sampling: { own: string; bySampler: Record<string, SamplerFormDefaults> };
}

/** One sampler's defaults for a run (null: the option does not apply to that sampler). */
export interface SamplerFormDefaults {
  sampler: string;
  steps: number;
  eta: number | null;
  spacing: string | null;
  variance: string | null;
  x0Processing: string;
  guidance: number;
  correctorSteps: number | null;
  snr: number | null;
}

export interface ScheduleCurves {
  T: number;
  kind: string;
  beta: number[];
  alphaBar: number[];
  logSnr: number[];
}

export interface ForwardFrame {
  index: number;
  t: number;
  T: number;
  alphaBar: number;
  snr: number;
  /** The class name of the dataset image. */
  label: string;
  /** data: URLs of 8-bit PNGs, upscaled for display: x_0 and x_t. */
  x0: string;
  xt: string;
}

/** POST /api/train. Absent fields take the preset's defaults. */
export interface TrainRequest {
  /** New run folder name under --runs (letters, digits, '-', '_', '.'; must not exist yet). */
  name: string;
  preset: string;
  epochs?: number;
  batchSize?: number;
  lr?: number;
  seed?: number;
  /** Train on the first N images (null or absent: all). */
  limit?: number | null;
  schedule?: string;
  timesteps?: number;
  objective?: string;
  lossWeight?: string;
  emaDecay?: number;
  classCond?: boolean;
  /** Learn the reverse variance (--learn-variance): doubled output channels and the hybrid loss. */
  learnVariance?: boolean;
  /** Side of the square training images, in [8, LIMITS.maxImageSize] (the preset's U-Net may ask for a multiple of 4). */
  imageSize?: number;
}

export interface TrainProgress {
  kind: 'train';
  step: number;
  totalSteps: number;
  /** The epoch being trained, from 0 (as LogRow.epoch). */
  epoch: number;
  epochs: number;
  loss: number | null;
  imagesPerSecond: number | null;
  /** Seconds left, estimated. */
  eta: number | null;
}

/** POST /api/generate. */
export interface GenerateRequest {
  run: string;
  /** A checkpoint folder name (default: the latest). */
  checkpoint?: string;
  sampler: string;
  steps?: number;
  eta?: number;
  guidance?: number;
  class?: number;
  /** Classifier guidance (Dhariwal & Nichol 2021): a classifier run under --runs trained for `run`; needs `class`. */
  classifier?: string;
  /** Its scale s (default 1). */
  classifierScale?: number;
  seed?: number;
  count: number;
  /**
   * Interpolation in DDIM's latent space (samplers/interpolate.ts): the seed of the other end. With
   * it, `count` frames (at least 2) walk the slerp from `seed`'s x_T to this seed's; ddim with eta 0 only.
   */
  interpolateTo?: number;
}

export interface GenerateProgress {
  kind: 'generate';
  index: number;
  steps: number;
}

/** One `progress` event of a generation job: the batch at one step, as grids. */
export interface GenerateFrame extends GenerateProgress {
  t: number;
  tPrev: number;
  sigma: number;
  /** data: URLs of 8-bit PNG grids: the x_t fed to the step and the x0_hat it predicted. */
  xt: string;
  x0: string;
  /**
   * Interpolation jobs: frame `index` of `steps` lies at alpha on the path; xt is its x_T, x0 the image
   * DDIM (eta 0, sigma 0) makes of it, t the first timestep of the whole map.
   */
  alpha?: number;
}
