// Loading a trained model back from a run folder: config.json + a checkpoint's model.safetensors.
import path from 'node:path';
import { existsSync, statSync } from 'node:fs';
import { RunFolder } from '../io/run.js';
import { loadTensors } from '../io/tensors.js';
import { createModel, type DiffusionUNet } from '../models/index.js';
import { Diffusion, makeSchedule } from '../diffusion/index.js';
import type { RunConfig } from './config.js';

export interface LoadedRun { config: RunConfig; model: DiffusionUNet; diffusion: Diffusion; checkpoint: string; step: number | null }

/** Resolves `checkpoint` (a step-N folder or a model.safetensors file) or the run's latest one. */
export function resolveCheckpoint(run: RunFolder, checkpoint?: string): string {
  if (checkpoint === undefined) {
    const latest = run.latestCheckpoint();
    if (!latest) throw new Error(`${run.root} has no complete checkpoint under checkpoints/ (was training stopped before the first epoch ended?)`);
    return path.join(latest.dir, 'model.safetensors');
  }
  if (!existsSync(checkpoint)) throw new Error(`checkpoint ${checkpoint} does not exist`);
  const file = statSync(checkpoint).isDirectory() ? path.join(checkpoint, 'model.safetensors') : checkpoint;
  if (!existsSync(file)) throw new Error(`checkpoint folder ${checkpoint} has no model.safetensors`);
  return file;
}

export function loadRun(runDir: string, checkpoint?: string): LoadedRun {
  const run = new RunFolder(runDir);
  const config = run.readConfig<RunConfig>();
  const file = resolveCheckpoint(run, checkpoint);
  const model = createModel(config.model);
  const { tensors } = loadTensors(file);
  try {
    model.loadStateDict(tensors, file);
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
  model.eval();
  const m = /step-(\d+)/.exec(path.basename(path.dirname(file)));
  return { config, model, diffusion: new Diffusion(makeSchedule(config.schedule)), checkpoint: file, step: m ? Number(m[1]) : null };
}
