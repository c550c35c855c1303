// The options of a sampling run that are not sampler options, declared once: how many images, the
// noise seed, the batch, the threads and replicas, the class, the output scale. `ddpm sample`,
// `ddpm eval`, the `ddpm viz` commands and the studio's Generate request read these declarations
// (cli/args.ts `declared` makes the flag, its help and its parser; a command narrows the help or
// the default where its meaning differs, e.g. eval's -n counts samples to score).
import * as z from 'zod';
import { option } from '../options/declare.js';

const positiveInt = z.int().min(1);

export const RUN_OPTIONS = {
  run: option({ name: 'run', flag: '--run <dir>', help: 'run folder written by `ddpm train`', schema: z.string().min(1) }),
  checkpoint: option({ name: 'checkpoint', flag: '--checkpoint <path>', help: 'a checkpoints/step-N folder or model.safetensors', defaultHelp: 'the latest', schema: z.string().min(1) }),
  ema: option({ name: 'ema', flag: '--no-ema', help: 'use the trained weights, not their EMA, when the checkpoint has both', schema: z.boolean() }),
  n: option({ name: 'n', flag: '-n, --n <count>', help: 'number of images', schema: positiveInt }),
  seed: option({ name: 'seed', flag: '--seed <n>', help: 'seed of the sampling noise', schema: z.int().min(0) }),
  batchSize: option({ name: 'batchSize', flag: '--batch-size <n>', help: 'images per model call', defaultHelp: 'all n at once, up to 500', schema: positiveInt }),
  threads: option({ name: 'threads', flag: '--threads <n>', help: 'libtorch threads', schema: positiveInt }),
  replicas: option({
    name: 'replicas', flag: '--replicas <n>', schema: positiveInt,
    help: 'split each sampling batch across N model replicas, one thread each when --threads allows (data parallel: the same images up to float rounding; faster where a model scales poorly across threads or other processes load the cores, see the README\'s Speed)',
  }),
  class: option({ name: 'class', flag: '--class <c>', help: 'class-conditional runs: the class of every image', defaultHelp: 'image i is class i mod K', schema: z.int().min(0) }),
  scale: option({ name: 'scale', flag: '--scale <n>', help: 'upscale factor (nearest)', schema: positiveInt }),
} as const;
