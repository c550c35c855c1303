// `ddpm sample --model F.onnx`: the samplers on onnxruntime-node's CPU provider, from an exported model
// alone (its metadata holds the run config), with the same flags, class layout and outputs as
// `ddpm sample --run`. Nothing here touches libtorch; the noise is Philox (samplers/philox.ts), the
// same numbers the web page draws for a seed.
import { readFileSync } from 'node:fs';
import { readOnnxMetadata, onnxModelInfo, sampleOnnx } from '../samplers/onnx-model.js';
import { loadOnnxRuntime } from '../models/onnx-runtime.js';
import { samplerDefaults, learnedVarianceNote, type StepResult, type HostArray } from '../samplers/index.js';
import { runSampling, type RunConfig } from '../train/config.js';
import { writePng } from '../io/png.js';
import { makeTrajectoryGrid, trajectorySteps } from '../viz/grid.js';
import { type SampleFlags, checkOutputs, checkSamplerFlags, classLayout, writeImages } from './sample.js';

/** Flags of `ddpm sample --run` that an exported model has no use for, each refused with the reason. */
function checkModelFlags(f: SampleFlags, given: { emaGiven: boolean }): void {
  if (f.checkpoint !== undefined) throw new Error('sample: --checkpoint picks a checkpoint of --run; an .onnx file holds one set of weights (export another with ddpm export --checkpoint)');
  if (given.emaGiven) throw new Error('sample: --no-ema applies to --run; an .onnx file holds the weights it was exported with (ddpm export --no-ema)');
}

export async function sampleOnnxModel(f: SampleFlags, nGiven: boolean, given: { threadsGiven: boolean; emaGiven: boolean }): Promise<void> {
  checkOutputs(f);
  checkModelFlags(f, given);
  const file = f.model!;
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    throw new Error(`sample: cannot read --model ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); give an .onnx file written by ddpm export`, { cause: e });
  }
  const info = onnxModelInfo(readOnnxMetadata(bytes, file), file);
  const T = info.terms.T;
  // The defaults follow the exported run, as `ddpm sample --run` follows the run: its epoch grids' sampler unless --sampler names another.
  const def = samplerDefaults(runSampling(info.config as RunConfig), f.sampler);
  const sampler = def.sampler;
  checkSamplerFlags(f, sampler);
  if (f.steps !== undefined && f.steps > T) throw new Error(`sample: --steps ${f.steps} exceeds the model's T = ${T} timesteps; a sampler visits at most T of them`);
  const layout = classLayout(f, info.numClasses, nGiven);
  if (layout.n !== f.n) process.stderr.write(`drawing ${layout.n} images (${layout.perRow} per class row) instead of ${f.n}\n`);
  const { channels: c, imageSize: s } = info;
  const note = info.learnVariance ? learnedVarianceNote(sampler, f.eta) : null;
  if (note) process.stderr.write(`sample: note: ${note}\n`);
  const steps = f.steps ?? def.steps;
  const clip = f.clip ?? def.x0Processing;

  // Trajectory: 10 evenly spaced positions of the sampler's own step list, as `ddpm sample --run`.
  const keepAt = new Set(trajectorySteps(steps, 10).map((p) => steps - 1 - p));
  const rows = layout.trajectoryRows;
  const size = c * s * s;
  const shots = new Map<number, Float32Array[]>();
  const onStep = (st: StepResult<HostArray>, offset: number): void => {
    if (!keepAt.has(st.index)) return;
    const parts = shots.get(st.t) ?? [];
    shots.set(st.t, parts);
    for (const r of rows) {
      const i = r - offset;
      if (i < 0 || i >= st.x.shape[0]!) continue;
      parts.push(st.x.data.slice(i * size, (i + 1) * size));
      // With --trajectory-x0 each image gets two rows: x_t, then x0_hat under it.
      if (f.trajectoryX0) parts.push(st.x0.data.slice(i * size, (i + 1) * size));
    }
  };

  const ort = await loadOnnxRuntime();
  const session = await ort.InferenceSession.create(bytes, { executionProviders: ['cpu'], graphOptimizationLevel: 'all', ...(given.threadsGiven ? { intraOpNumThreads: f.threads } : {}) });
  const t0 = performance.now();
  let x: HostArray;
  try {
    x = await sampleOnnx(session, ort.Tensor, info, {
      n: layout.n, seed: f.seed, sampler, steps, x0Processing: clip, batchSize: f.batchSize ?? Math.min(layout.n, 500),
      ...(f.eta !== undefined ? { eta: f.eta } : {}),
      ...(def.spacing !== null ? { spacing: f.spacing ?? def.spacing } : {}),
      ...(def.variance !== null ? { variance: f.variance ?? def.variance } : {}),
      ...(sampler === 'pc' ? { correctorSteps: f.correctorSteps ?? def.correctorSteps!, snr: f.snr ?? def.snr! } : {}),
      ...(info.numClasses > 0 && layout.labels ? { labels: layout.labels, guidance: f.guidance ?? 0 } : {}),
      ...(f.trajectory ? { onStep } : {}),
    });
  } finally {
    await session.release();
  }
  const seconds = (performance.now() - t0) / 1000;
  const bad = x.data.reduce((k: number, v: number) => k + (Number.isFinite(v) ? 0 : 1), 0);
  if (bad > 0) throw new Error(`samples of ${file}: ${bad} of ${x.data.length} values are NaN or infinite; the exported model has diverged (export an earlier checkpoint)`);
  const what = [`${sampler}, ${steps} steps`, f.eta ? `eta ${f.eta}` : '', clip !== 'none' ? `x0 ${clip}` : '', f.guidance ? `guidance ${f.guidance}` : ''].filter(Boolean).join(', ');
  process.stderr.write(`sampled ${layout.n} images in ${seconds.toFixed(1)} s (${(layout.n / seconds).toFixed(1)} img/s; ${what}) from ${file} on ONNX Runtime (CPU)\n`);
  writeImages(f, x.data, [layout.n, c, s, s], layout.perRow);
  if (f.trajectory) {
    const ts = [...shots.keys()];
    const snapshots = ts.map((t) => {
      const parts = shots.get(t)!;
      const all = new Float32Array(parts.length * size);
      parts.forEach((p, i) => all.set(p, i * size));
      return all;
    });
    writePng(f.trajectory, makeTrajectoryGrid(snapshots, snapshots[0]!.length / size, c, s, s, { scale: f.scale }));
    process.stderr.write(`wrote ${f.trajectory} (x_t${f.trajectoryX0 ? ' and x0_hat' : ''} at t = ${ts.join(', ')})\n`);
  }
}
