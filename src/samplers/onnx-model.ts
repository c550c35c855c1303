// Sampling an exported .onnx on ONNX Runtime, the same code for onnxruntime-node (`ddpm sample
// --model`) and onnxruntime-web (the page): the file's metadata_props give the run config (schedule,
// objective, image shape, classes), the reverse process is reverse.ts's generator on host arrays with
// Philox noise, and each model call is one session.run. The ONNX file contract: inputs x_t float32
// (B, C, H, W), t int64 (B), and for class-conditional models class_labels int64 (B) with -1 for
// "no class"; output `prediction` (B, C, H, W), or (B, 2C, H, W) with a learned variance. Nothing here imports an engine: the caller passes
// its session and its Tensor class, so Node and the browser bundle only their own runtime.
import protobuf from 'protobufjs/minimal.js';
import { ArgumentError } from '../tensor/check.js';
import { type ScheduleConfig, type ScheduleTerms, makeSchedule } from '../diffusion/schedule.js';
import { type Objective, checkObjective } from '../diffusion/objectives.js';
import { HostArray, hostOps } from './host-array.js';
import { reverseProcess, runAsync } from './reverse.js';
import { type SamplingChoice, resolveSampling } from './sample.js';
import type { StepResult } from './step.js';

/** metadata_props ddpm_ts.format: the version of the ONNX file contract this code writes and reads. */
export const ONNX_FORMAT = '1';

/** ModelProto field 14: repeated StringStringEntryProto metadata_props (onnx.proto). */
const METADATA_PROPS = 14;

/**
 * The metadata_props of an ONNX ModelProto, read from its top-level fields only (the graph and its
 * weights are skipped, not decoded).
 */
export function readOnnxMetadata(bytes: Uint8Array, source: string): Record<string, string> {
  const out: Record<string, string> = {};
  try {
    const r = protobuf.Reader.create(bytes);
    while (r.pos < r.len) {
      const tag = r.uint32();
      if (tag >>> 3 !== METADATA_PROPS || (tag & 7) !== 2) { r.skipType(tag & 7); continue; }
      const entry = protobuf.Reader.create(r.bytes());
      let key = '';
      let value = '';
      while (entry.pos < entry.len) {
        const t = entry.uint32();
        if (t >>> 3 === 1) key = entry.string();
        else if (t >>> 3 === 2) value = entry.string();
        else entry.skipType(t & 7);
      }
      out[key] = value;
    }
  } catch (e) {
    throw new ArgumentError(`${source}: not a readable ONNX model (${(e as Error).message}); expected a file written by \`ddpm export\``);
  }
  return out;
}

/** The part of a run's config.json (ddpm_ts.run_config) that sampling reads. */
export interface ExportedRunConfig {
  model: { preset?: string; imageChannels: number; imageSize: number; numClasses?: number; learnVariance?: boolean };
  schedule: ScheduleConfig;
  objective?: Objective;
}

/** What sampling needs from an exported model, from its metadata. */
export interface OnnxModelInfo {
  config: ExportedRunConfig;
  terms: ScheduleTerms;
  objective: Objective;
  numClasses: number;
  /** The output has 2C channels, the second C a learned variance (a run trained with --learn-variance). */
  learnVariance: boolean;
  channels: number;
  imageSize: number;
  /** The metadata as written, for display. */
  metadata: Record<string, string>;
}

/** The run config the exporter stored (ddpm_ts.run_config), checked for what sampling reads. */
export function onnxModelInfo(metadata: Record<string, string>, source: string): OnnxModelInfo {
  const format = metadata['ddpm_ts.format'];
  if (format === undefined) throw new ArgumentError(`${source}: the model has no ddpm_ts.format metadata; it was not written by \`ddpm export\` (export it with ddpm export --run DIR --out FILE.onnx)`);
  if (format !== ONNX_FORMAT) throw new ArgumentError(`${source}: ddpm_ts.format is ${JSON.stringify(format)}, and this version reads format "${ONNX_FORMAT}"; re-export the model with this version of ddpm`);
  let config: ExportedRunConfig;
  try {
    config = JSON.parse(metadata['ddpm_ts.run_config'] ?? '') as ExportedRunConfig;
  } catch (e) {
    throw new ArgumentError(`${source}: ddpm_ts.run_config is not valid JSON (${(e as Error).message}); re-export the model`);
  }
  const m = config?.model;
  if (!m || !Number.isInteger(m.imageChannels) || !Number.isInteger(m.imageSize)) {
    throw new ArgumentError(`${source}: ddpm_ts.run_config lacks model.imageChannels and model.imageSize; re-export the model`);
  }
  const schedule = config.schedule as ScheduleConfig | undefined;
  if (!schedule) throw new ArgumentError(`${source}: ddpm_ts.run_config has no schedule; re-export the model`);
  const terms = makeSchedule(schedule);
  const numClasses = m.numClasses ?? 0;
  const learnVariance = m.learnVariance ?? false;
  if (typeof learnVariance !== 'boolean') throw new ArgumentError(`${source}: ddpm_ts.run_config's model.learnVariance must be true or false, got ${JSON.stringify(learnVariance)}; re-export the model`);
  return { config, terms, objective: checkObjective(config.objective ?? 'eps'), numClasses, learnVariance, channels: m.imageChannels, imageSize: m.imageSize, metadata };
}

/** The part of onnxruntime-common's Tensor and InferenceSession this file uses (node and web both provide it). */
export interface OrtTensorLike { readonly data: unknown; readonly dims: readonly number[] }
export type OrtTensorCtor = new (type: 'float32' | 'int64', data: Float32Array | BigInt64Array, dims: readonly number[]) => OrtTensorLike;
export interface OrtSessionLike {
  readonly inputNames: readonly string[];
  run(feeds: Record<string, OrtTensorLike>): Promise<Record<string, OrtTensorLike>>;
}

/** Why classifier guidance is refused here: it differentiates the classifier at every step, and ONNX Runtime runs forward only. */
export const CLASSIFIER_NEEDS_LIBTORCH = 'classifier guidance needs the gradient of the classifier at every step (autograd), which libtorch has and ONNX Runtime does not; sample with --run (libtorch) instead of an exported .onnx model or the browser';

/** The sampler options of resolveSampling, less what the model file fixes. */
export type OnnxSamplingOptions = Omit<SamplingChoice, 'diffusion' | 'objective' | 'shape' | 'numClasses' | 'generator' | 'model' | 'xT' | 'classifier'> & {
  /** Number of images. */
  n: number;
  /** Seed of the Philox noise (x_T and every step's noise). */
  seed: number;
  /** Called after every step (arrays are the sampler's; copy what you keep). */
  onStep?: (step: StepResult<HostArray>, batchOffset: number) => void;
  /** Called after every model call with its wall time, for the page's per-step timing. */
  onModelCall?: (ms: number, batch: number) => void;
};

/** Samples n images (n, C, H, W) from an exported model on a session; x0 processing defaults as `ddpm sample` does. */
export async function sampleOnnx(session: OrtSessionLike, Tensor: OrtTensorCtor, info: OnnxModelInfo, o: OnnxSamplingOptions): Promise<HostArray> {
  const { n, seed, onStep, onModelCall, ...rest } = o;
  if ('classifier' in rest) throw new ArgumentError(CLASSIFIER_NEEDS_LIBTORCH);
  const shape: [number, number, number, number] = [n, info.channels, info.imageSize, info.imageSize];
  const sampling = resolveSampling({
    ...rest, diffusion: { T: info.terms.T, terms: info.terms }, objective: info.objective, shape,
    x0Processing: rest.x0Processing ?? (info.objective === 'eps' ? 'none' : 'clip'),
    ...(info.numClasses > 0 ? { numClasses: info.numClasses } : {}),
    ...(info.learnVariance ? { learnVariance: true } : {}),
  });
  const conditional = info.numClasses > 0;
  if (conditional && !session.inputNames.includes('class_labels')) throw new ArgumentError(`the model's config has ${info.numClasses} classes, but the graph has no class_labels input (inputs: ${session.inputNames.join(', ')}); re-export it`);
  return runAsync(
    reverseProcess({ ops: hostOps(seed), terms: info.terms, sampling, shape, ...(o.labels ? { labels: o.labels } : {}), ...(onStep ? { onStep } : {}) }),
    async (call) => {
      const b = call.x.shape[0]!;
      const feeds: Record<string, OrtTensorLike> = {
        x_t: new Tensor('float32', call.x.data, call.x.shape),
        t: new Tensor('int64', new BigInt64Array(b).fill(BigInt(call.t)), [b]),
      };
      // An unconditional call on a class-conditional model: every row is "no class".
      if (conditional) feeds['class_labels'] = new Tensor('int64', BigInt64Array.from(call.labels ?? new Array<number>(b).fill(-1), (l) => BigInt(l)), [b]);
      const t0 = performance.now();
      const result = await session.run(feeds);
      onModelCall?.(performance.now() - t0, b);
      const out = result['prediction'];
      if (!out || !(out.data instanceof Float32Array)) throw new ArgumentError(`the model returned no float32 \`prediction\` (outputs: ${Object.keys(result).join(', ')}); re-export it with ddpm export`);
      return new HostArray(out.data, out.dims);
    },
  );
}
