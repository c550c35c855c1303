// A run's configuration: what config.json holds. Each default carries its reason.
import type { ModelConfig, PresetName } from '../models/index.js';
import type { ScheduleConfig } from '../diffusion/index.js';
import type { Variance } from '../samplers/index.js';

export interface TrainSettings {
  epochs: number;
  batchSize: number;
  lr: number;
  seed: number;
  /** Train on the first N images only (null: all). */
  limit: number | null;
  /** Folder the data came from (recorded for the record; `ddpm sample` does not need it). */
  data: string;
  /** Random horizontal flips, as the notebook's transforms. */
  flip: boolean;
  /** Write a log.jsonl line every this many steps. */
  logEvery: number;
}

export interface RunConfig {
  version: 1;
  model: ModelConfig;
  schedule: ScheduleConfig;
  train: TrainSettings;
  /** The per-epoch sample grids. */
  samples: { count: number; seed: number; variance: Variance };
}

/** The course notebook's settings (seeds/001, DESIGN.md presets). */
export function presetDefaults(preset: PresetName): RunConfig {
  switch (preset) {
    case 'dli02':
      return {
        version: 1,
        // 16x16 grey so a CPU trains it in minutes; T = 150 as the notebook.
        model: { preset, imageChannels: 1, imageSize: 16, T: 150 },
        // Linear betas 1e-4 .. 0.02 (Ho et al. use T = 1000; the notebook keeps the endpoints at T = 150).
        schedule: { kind: 'linear', T: 150, betaStart: 1e-4, betaEnd: 0.02 },
        // Adam 1e-3, batch 128, 3 epochs: the notebook's loop, which makes garments recognisable.
        train: { epochs: 3, batchSize: 128, lr: 1e-3, seed: 0, limit: null, data: '', flip: true, logEvery: 10 },
        // 64 images make an 8x8 grid; the notebook's own reverse variance (beta_{t-1}).
        samples: { count: 64, seed: 0, variance: 'notebook' },
      };
    default:
      throw new Error(`no defaults for preset ${String(preset)}`);
  }
}
