// A trained run's checkpoint as a self-describing ONNX file: the model (models/onnx-export.ts) and,
// in its metadata_props, the run's config.json and the facts a person or another tool looks for.
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import { encodeOnnx } from '../io/onnx.js';
import { RunFolder } from '../io/run.js';
import { modelToOnnx, type OnnxExportOptions } from '../models/onnx-export.js';
import { loadRun } from './checkpoint.js';
import { runNumClasses, runObjective, runLearnVariance, type RunConfig } from './config.js';
import { ONNX_FORMAT } from '../samplers/onnx-model.js';


export interface ExportRunOptions {
  run: string;
  out: string;
  /** A checkpoints/step-N folder or a weights file (default: the latest checkpoint). */
  checkpoint?: string;
  /** The checkpoint's EMA weights when it has them (default true), as sampling uses. */
  ema?: boolean;
  /** Replace `out` when it exists. */
  force?: boolean;
  convTranspose?: OnnxExportOptions['convTranspose'];
}

export interface ExportedRun { out: string; bytes: number; checkpoint: string; step: number | null; ema: boolean; metadata: Record<string, string> }

/** The metadata_props of a run's export (the file contract; all values are strings). */
export function onnxMetadata(config: RunConfig, configText: string, o: { ema: boolean; step: number | null }): Record<string, string> {
  return {
    'ddpm_ts.format': ONNX_FORMAT,
    'ddpm_ts.run_config': configText,
    preset: config.model.preset,
    image_size: String(config.model.imageSize),
    channels: String(config.model.imageChannels),
    num_classes: String(runNumClasses(config)),
    learn_variance: String(runLearnVariance(config)),
    objective: runObjective(config),
    timesteps: String(config.model.T),
    schedule: JSON.stringify(config.schedule),
    ema: String(o.ema),
    checkpoint_step: o.step === null ? '' : String(o.step),
  };
}

/**
 * Writes `out` from a run's checkpoint. Refuses an existing `out` without `force` (before any work,
 * and again at the write, which never replaces a file that appeared meanwhile) and non-finite
 * weights; the file appears whole or not at all (io/atomic.ts).
 */
export function exportRun(o: ExportRunOptions): ExportedRun {
  const refuseExisting = (): void => {
    if (!existsSync(o.out)) return;
    if (statSync(o.out).isDirectory()) throw new Error(`export: --out ${o.out} is a folder; give the .onnx file to write`);
    if (!o.force) throw new Error(`export: ${o.out} already exists; choose another --out, or pass --force to replace it`);
  };
  refuseExisting();
  const loaded = loadRun(o.run, o.checkpoint, { ema: o.ema ?? true });
  try {
    const ema = path.basename(loaded.checkpoint) === 'ema.safetensors';
    const configText = readFileSync(new RunFolder(o.run).configPath, 'utf8');
    const metadata = onnxMetadata(loaded.config, configText, { ema, step: loaded.step });
    const model = modelToOnnx(loaded.model, loaded.config.model, {
      metadata, source: loaded.checkpoint, producerVersion: packageVersion(), ...(o.convTranspose ? { convTranspose: o.convTranspose } : {}),
    });
    const bytes = encodeOnnx(model);
    refuseExisting();
    mkdirSync(path.dirname(path.resolve(o.out)), { recursive: true });
    writeFileAtomic(o.out, bytes, { overwrite: o.force ?? false });
    return { out: o.out, bytes: bytes.byteLength, checkpoint: loaded.checkpoint, step: loaded.step, ema, metadata };
  } finally {
    loaded.model.dispose();
  }
}

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}
