// The messages between the studio server and its worker processes (child_process.fork, with the
// 'advanced' serialization so PNG and GIF bytes cross as Uint8Array, not JSON arrays).
import type { RunConfig } from '../train/config.js';
import type { SamplerName, Variance } from '../samplers/index.js';
import type { GenerateFrame, TrainProgress } from './protocol.js';

export interface TrainJobInput {
  kind: 'train';
  config: RunConfig;
  runDir: string;
  threads: number;
  /** Fashion-MNIST folder (--data of the studio); absent: the usual search. */
  dataDir?: string;
}

export interface GenerateJobInput {
  kind: 'generate';
  runDir: string;
  /** A complete checkpoint folder of the run; absent: the latest. */
  checkpointDir?: string;
  sampler: SamplerName;
  steps: number;
  eta?: number;
  /** ddpm and pc: the reverse variance, the run's own (samplerDefaults). */
  variance?: Variance;
  guidance?: number;
  /** One class per image (class-conditional runs, or classifier guidance), else absent. */
  labels?: number[];
  /** Classifier guidance toward `labels`: the classifier run's folder and the scale. */
  classifier?: { dir: string; scale: number };
  /** Images per grid row. */
  nrow: number;
  seed: number;
  count: number;
  threads: number;
  maxFrames: number;
  /** Interpolation (GenerateRequest.interpolateTo): the seed of the far end; count is the frames. */
  interpolateTo?: number;
}

export type ParentMessage = { type: 'start'; input: TrainJobInput | GenerateJobInput } | { type: 'stop' };

export type WorkerMessage =
  | { type: 'progress'; progress: TrainProgress | GenerateFrame }
  | { type: 'done'; stopped: boolean; grid?: Uint8Array; gif?: Uint8Array }
  | { type: 'error'; message: string };

/** Sends a message and resolves once it has left (so a worker may exit right after). */
export function sendToParent(m: WorkerMessage): Promise<void> {
  return new Promise((resolve, reject) => {
    if (!process.send) { reject(new Error('studio worker: no IPC channel; this file is started by the studio server (child_process.fork)')); return; }
    process.send(m, undefined, {}, (e) => (e ? reject(e) : resolve()));
  });
}
