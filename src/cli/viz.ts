// `ddpm viz ...`: pictures of the diffusion processes.
import { Command } from 'commander';
import { loadFashionMnist } from '../data/fashion-mnist.js';
import { prepareImages } from '../data/transforms.js';
import { Diffusion, makeSchedule } from '../diffusion/index.js';
import { presetDefaults, type RunConfig } from '../train/config.js';
import { RunFolder } from '../io/run.js';
import { writePng } from '../io/png.js';
import { tensorGrid } from '../viz/tensor-grid.js';
import { evenlySpaced, forwardStrip } from '../viz/forward.js';
import { nonNegativeInt, positiveInt } from './args.js';

interface ForwardFlags { index: number; out: string; data?: string; run?: string; steps: number; seed: number; scale: number }

export function vizCommand(): Command {
  const viz = new Command('viz').description('pictures of the forward and reverse processes');
  viz.command('forward')
    .description('a dataset image noised by q(x_t | x_0) at evenly spaced t, as in the notebook')
    .requiredOption('--out <file>', 'PNG to write')
    .option('--index <n>', 'which training image', nonNegativeInt('--index'), 0)
    .option('--steps <n>', 'number of columns (timesteps)', positiveInt('--steps'), 10)
    .option('--run <dir>', 'use this run\'s schedule and image size (default: the dli02 preset)')
    .option('--data <dir>', 'Fashion-MNIST folder')
    .option('--seed <n>', 'seed of the noise', nonNegativeInt('--seed'), 0)
    .option('--scale <n>', 'upscale factor (nearest)', positiveInt('--scale'), 4)
    .action((f: ForwardFlags) => {
      const config: RunConfig = f.run ? new RunFolder(f.run).readConfig<RunConfig>() : presetDefaults('dli02');
      const ds = loadFashionMnist('train', f.data !== undefined ? { dir: f.data } : {});
      if (f.index >= ds.count) throw new Error(`--index ${f.index} is out of range: the training set has ${ds.count} images (0..${ds.count - 1})`);
      const px = ds.height * ds.width;
      const x0 = prepareImages(ds.images.subarray(f.index * px, (f.index + 1) * px), { n: 1, c: 1, h: ds.height, w: ds.width }, config.model.imageSize);
      const d = new Diffusion(makeSchedule(config.schedule));
      const ts = evenlySpaced(d.T, f.steps);
      const strip = forwardStrip(d, x0.squeeze(0), ts, f.seed);
      writePng(f.out, tensorGrid(strip, { nrow: ts.length, scale: f.scale }));
      process.stderr.write(`wrote ${f.out}: image ${f.index} (${ds.classNames[ds.labels[f.index]!]}) at t = ${ts.join(', ')}\n`);
    });
  return viz;
}
