// `ddpm sample --interpolate A,B`: DDIM (eta 0) along the slerp between the noise of two seeds
// (samplers/interpolate.ts), written as a strip (--grid), one PNG per frame (--out-dir) and a GIF (--gif).
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { checkDevice, setNumThreads, type Device } from '../tensor/index.js';
import { loadRun } from '../train/checkpoint.js';
import { inferencePredictor } from '../models/index.js';
import { runObjective, runNumClasses, runSampling } from '../train/config.js';
import { interpolateLatents, checkInterpolationSampler, modelOn, assertFinite, samplerDefaults } from '../samplers/index.js';
import { writePng } from '../io/png.js';
import { encodeGif } from '../io/gif.js';
import { writeFileAtomic } from '../io/atomic.js';
import { toUint8Image } from '../viz/grid.js';
import { interpolationStrip, interpolationFrames } from '../viz/interpolation.js';
import { checkExt } from './args.js';
import type { SampleFlags } from './sample.js';

export interface InterpolateFlags extends SampleFlags { interpolate: string; frames?: number; gif?: string }

/** Frames when --frames is not given: the issue's and DDIM's Figure 6's strip length. */
export const DEFAULT_FRAMES = 9;
/** GIF frame delay: a 9-frame walk there and back in about 2 s. */
const GIF_DELAY_MS = 120;

/** Refuses every flag that has no meaning on a path between two seeds, before the run is opened (sample.ts has refused the flags DDIM does not take). */
function checkInterpolateFlags(f: InterpolateFlags, given: (name: string) => boolean): [number, number] {
  const why = (flag: string, reason: string): never => { throw new Error(`sample: ${flag} does not apply to --interpolate: ${reason}`); };
  if (f.model !== undefined) why('--model', 'it samples on libtorch (--run), whose generator the two seeds name');
  if (f.run === undefined) throw new Error('sample: --interpolate needs --run DIR, the run to sample from');
  if (given('n')) why('-n', 'the number of images is --frames');
  if (given('seed')) why('--seed', 'the seeds are the two of --interpolate A,B');
  if (f.trajectory !== undefined || f.trajectoryX0) why('--trajectory', 'it writes a strip (--grid), frames (--out-dir) and a GIF (--gif)');
  if (f.class !== undefined && f.class.length > 1) why(`--class ${f.class.join(',')}`, 'every frame has the same class; give one');
  checkInterpolationSampler(f.sampler, f.eta, 'sample');
  if (!f.grid && !f.outDir && !f.gif) throw new Error('sample: --interpolate writes nothing without --grid FILE (the strip), --out-dir DIR and/or --gif FILE');
  if (f.grid) checkExt('--grid', f.grid, ['.png']);
  if (f.gif) checkExt('--gif', f.gif, ['.gif']);
  const [a, b] = f.interpolate.split(',').map(Number) as [number, number];
  if (a === b) throw new Error(`sample: --interpolate ${f.interpolate} names seed ${a} twice; the path from a latent to itself is one image, give two different seeds`);
  return [a, b];
}

export function runInterpolate(f: InterpolateFlags, given: (name: string) => boolean): void {
  const seeds = checkInterpolateFlags(f, given);
  checkDevice(f.device, '--device');
  const frames = f.frames ?? DEFAULT_FRAMES;
  const { config, model, diffusion, checkpoint } = loadRun(f.run!, f.checkpoint, { ema: f.ema });
  const numClasses = runNumClasses(config);
  if (numClasses === 0 && f.class) throw new Error(`sample: --class needs a class-conditional run, and ${f.run} was trained without classes; drop --class`);
  const label = numClasses > 0 ? f.class?.[0] ?? 0 : undefined;
  if (label !== undefined && label >= numClasses) throw new Error(`sample: --class ${label} is outside the run's classes 0..${numClasses - 1}`);
  if (f.guidance !== undefined && numClasses === 0) throw new Error(`sample: --guidance needs a class-conditional run, and ${f.run} was trained without classes`);
  const def = samplerDefaults(runSampling(config), 'ddim');
  const steps = f.steps ?? def.steps;
  if (steps > diffusion.T) throw new Error(`sample: --steps ${steps} exceeds the run's T = ${diffusion.T} timesteps; a sampler visits at most T of them`);
  const { imageChannels: c, imageSize: s } = config.model;
  if (f.device !== 'cpu') model.to(f.device as Device);
  setNumThreads(f.threads);
  const predictor = inferencePredictor(model);
  const t0 = performance.now();
  let result;
  try {
    result = interpolateLatents({
      model: modelOn((xt, t, cond) => predictor.forward(xt, t, cond), f.device as Device),
      diffusion, objective: runObjective(config), imageShape: [c, s, s], seeds, frames, steps,
      spacing: f.spacing ?? def.spacing!, x0Processing: f.clip ?? def.x0Processing, batchSize: f.batchSize ?? Math.min(frames, 500),
      ...(label !== undefined ? { numClasses, label, guidance: f.guidance ?? 0 } : {}),
    });
  } finally {
    predictor.dispose();
  }
  const { images, theta } = result;
  try {
    assertFinite(images, `interpolation frames of ${checkpoint}`);
    const seconds = (performance.now() - t0) / 1000;
    process.stderr.write(`sampled ${frames} frames from seed ${seeds[0]} to seed ${seeds[1]} in ${seconds.toFixed(1)} s (ddim, ${steps} steps, eta 0; the latents ${(theta * 180 / Math.PI).toFixed(1)} degrees apart) from ${checkpoint}\n`);
    const data = images.float().dataSync() as Float32Array;
    const shape: [number, number, number, number] = [frames, c, s, s];
    if (f.grid) {
      writePng(f.grid, interpolationStrip(data, shape, f.scale));
      process.stderr.write(`wrote ${f.grid} (seed ${seeds[0]} left, seed ${seeds[1]} right)\n`);
    }
    if (f.outDir) {
      mkdirSync(f.outDir, { recursive: true });
      const size = c * s * s;
      for (let i = 0; i < frames; i++) writePng(path.join(f.outDir, `${String(i).padStart(5, '0')}.png`), toUint8Image(data.subarray(i * size, (i + 1) * size), c, s, s));
      process.stderr.write(`wrote ${frames} PNGs to ${f.outDir}\n`);
    }
    if (f.gif) {
      const gifFrames = interpolationFrames(data, shape, f.scale);
      writeFileAtomic(f.gif, encodeGif(gifFrames, { delayMs: GIF_DELAY_MS }));
      process.stderr.write(`wrote ${f.gif}: ${gifFrames.length} frames, seed ${seeds[0]} to ${seeds[1]} and back, ${GIF_DELAY_MS} ms each\n`);
    }
  } finally {
    images.dispose();
  }
}
