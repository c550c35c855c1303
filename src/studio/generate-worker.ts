// The studio's generation process (forked by jobs.ts): samples from a run's checkpoint and posts,
// at up to maxFrames evenly spaced steps, the x_t fed to the step beside the x0_hat it predicted
// (as recordReverse in viz/reverse.ts records them); at the end the final grid PNG and the
// trajectory GIF. The sampling loop is synchronous, so a stop is a kill (nothing is saved).
import { Generator, configureRuntime, keep, randn, setNumThreads, type Tensor } from '../tensor/index.js';
import { loadRun } from '../train/checkpoint.js';
import { runObjective, runLearnVariance } from '../train/config.js';
import { openClassifier } from '../train/classifier.js';
import { inferencePredictor } from '../models/index.js';
import { assertFinite, defaultX0Processing, sample, interpolateLatents, spacedTimesteps, defaultSpacing } from '../samplers/index.js';
import { encodePng, pngDataUrl, type Image8 } from '../io/png.js';
import { encodeGif } from '../io/gif.js';
import { makeGrid } from '../viz/grid.js';
import { evenlySpaced } from '../viz/forward.js';
import { hconcat } from '../viz/reverse.js';
import { interpolationStrip, interpolationFrames } from '../viz/interpolation.js';
import { sendToParent, type GenerateJobInput, type ParentMessage } from './ipc.js';

// The `ddpm` command's process settings, before libtorch loads.
configureRuntime();

/** Images are drawn about this many pixels wide (a 16x16 image at 4x). */
const DISPLAY_PX = 64;

const values = (x: Tensor): Float32Array => Float32Array.from(x.float().dataSync() as Float32Array);

/** The job's run, loaded on the job's threads, and what both kinds of job read of it. */
function openJob(input: GenerateJobInput) {
  setNumThreads(input.threads);
  const { config, model, diffusion } = loadRun(input.runDir, input.checkpointDir);
  const { imageChannels: c, imageSize: s } = config.model;
  return { config, model, diffusion, c, s, objective: runObjective(config), n: input.count, scale: Math.max(1, Math.round(DISPLAY_PX / s)) };
}

/**
 * An interpolation (samplers/interpolate.ts): every frame computed at once, then posted in order as
 * x_T beside the image DDIM makes of it, so the page's slider moves between them; the grid is the
 * strip, the GIF walks from one seed to the other and back.
 */
async function runInterpolation(input: GenerateJobInput & { interpolateTo: number }): Promise<void> {
  const { config, model, diffusion, c, s, objective, n, scale } = openJob(input);
  const predictor = inferencePredictor(model);
  let out;
  try {
    out = interpolateLatents({
      model: (xt, t, cond) => predictor.forward(xt, t, cond), diffusion, objective, imageShape: [c, s, s],
      seeds: [input.seed, input.interpolateTo], frames: n, steps: input.steps, x0Processing: defaultX0Processing(objective),
      ...(input.eta !== undefined ? { eta: input.eta } : {}),
      ...(input.labels ? { numClasses: config.model.numClasses ?? 0, label: input.labels[0]!, guidance: input.guidance ?? 0 } : {}),
    });
  } finally {
    predictor.dispose();
  }
  const { images, alphas, latents } = out;
  assertFinite(images, `interpolation of ${input.checkpointDir ?? input.runDir}`);
  const data = values(images);
  images.dispose();
  const shape: [number, number, number, number] = [n, c, s, s];
  const size = c * s * s;
  const one = (v: Float32Array, i: number): Image8 => makeGrid(v.subarray(i * size, (i + 1) * size), 1, c, s, s, { nrow: 1, scale });
  const t = spacedTimesteps(diffusion.T, input.steps, defaultSpacing('ddim'))[0]!;
  for (let i = 0; i < n; i++) {
    await sendToParent({
      type: 'progress',
      progress: { kind: 'generate', index: i, steps: n, t, tPrev: -1, sigma: 0, alpha: alphas[i]!, xt: pngDataUrl(one(latents, i)), x0: pngDataUrl(one(data, i)) },
    });
  }
  await sendToParent({ type: 'done', stopped: false, grid: encodePng(interpolationStrip(data, shape, scale)), gif: encodeGif(interpolationFrames(data, shape, scale), { delayMs: 120 }) });
}

async function run(input: GenerateJobInput): Promise<void> {
  if (input.interpolateTo !== undefined) return runInterpolation({ ...input, interpolateTo: input.interpolateTo });
  const { config, model, diffusion, c, s, objective, n, scale } = openJob(input);
  const grid = (v: Float32Array): Image8 => makeGrid(v, n, c, s, s, { nrow: input.nrow, scale });
  const side = (xt: Image8, x0: Image8): Image8 => hconcat([xt, x0], 4 * scale);
  const frameAt = new Set(evenlySpaced(input.steps, Math.min(input.maxFrames, input.steps)));

  const gen = new Generator(input.seed);
  const xT = keep(randn([n, c, s, s], { generator: gen })); // (N, C, H, W)
  // The x_t a frame step is fed: x_T for step 0, else the previous step's output, copied only when needed.
  let fed: Float32Array | null = frameAt.has(0) ? values(xT) : null;
  const gifFrames: Image8[] = [];
  let lastX0: Image8 | null = null;
  const pending: Promise<void>[] = [];
  const predictor = inferencePredictor(model);
  const clf = input.classifier ? openClassifier(input.classifier.dir, config, input.runDir, input.classifier.scale) : null;
  const conditional = (config.model.numClasses ?? 0) > 0;
  let x: Tensor;
  try {
    x = sample({
      model: (xt, t, cond) => predictor.forward(xt, t, cond),
      diffusion, objective, shape: [n, c, s, s], sampler: input.sampler, steps: input.steps,
      x0Processing: defaultX0Processing(objective), generator: gen, xT,
      ...(input.eta !== undefined ? { eta: input.eta } : {}),
      ...(input.variance !== undefined ? { variance: input.variance } : {}),
      ...(runLearnVariance(config) ? { learnVariance: true } : {}),
      ...(input.labels && conditional ? { numClasses: config.model.numClasses ?? 0, labels: input.labels, guidance: input.guidance ?? 0 } : {}),
      ...(clf && input.labels ? { classifier: clf.guidance(input.labels) } : {}),
      onStep: (st) => {
        if (frameAt.has(st.index) && fed) {
          const xtImg = grid(fed);
          lastX0 = grid(values(st.x0));
          gifFrames.push(side(xtImg, lastX0));
          pending.push(sendToParent({
            type: 'progress',
            progress: { kind: 'generate', index: st.index, steps: st.steps, t: st.t, tPrev: st.tPrev, sigma: st.sigma, xt: pngDataUrl(xtImg), x0: pngDataUrl(lastX0) },
          }));
        }
        fed = frameAt.has(st.index + 1) ? values(st.x) : null;
      },
    });
  } finally {
    predictor.dispose();
    clf?.dispose();
    xT.dispose();
  }
  assertFinite(x, `samples of ${input.checkpointDir ?? input.runDir}`);
  const final = grid(values(x));
  x.dispose();
  // The last frame: the finished images beside the last x0_hat.
  if (lastX0) gifFrames.push(side(final, lastX0));
  await Promise.all(pending);
  await sendToParent({ type: 'done', stopped: false, grid: encodePng(final), gif: encodeGif(gifFrames, { delayMs: 80 }) });
}

process.on('disconnect', () => process.exit(0));
process.on('message', (m: ParentMessage) => {
  if (m.type !== 'start' || m.input.kind !== 'generate') return;
  run(m.input).then(
    () => process.exit(0),
    async (e: unknown) => {
      await sendToParent({ type: 'error', message: e instanceof Error ? e.message : String(e) }).catch(() => undefined);
      process.exit(1);
    },
  );
});
