// An exported model (models/onnx-export.ts) on ONNX Runtime's CPU provider in Node
// (onnxruntime-node): plain typed arrays in and out, and the file's own description. It imports
// nothing that loads libtorch, and loads ONNX Runtime's binary only when a model is opened.
import { readFileSync } from 'node:fs';
import type { OrtSessionLike, OrtTensorCtor, OrtTensorLike } from '../samplers/onnx-model.js';
import { decodeOnnx } from '../io/onnx.js';
import { ONNX_NAMES } from './onnx-contract.js';

export interface OnnxRuntimeOptions {
  /** Threads of ONNX Runtime's intra-op pool (default: its own choice, one per core). */
  threads?: number;
}

/**
 * onnxruntime-node, an optional peer dependency: its 290 MB and its install script (which downloads
 * the CUDA provider on linux/x64) are for those who run exported models in Node.
 */
/**
 * The part of onnxruntime-node this package uses. Declared here, not imported, so the package's
 * types compile in a project that has not installed the optional peer.
 */
export interface OnnxRuntimeModule {
  InferenceSession: { create(model: Uint8Array, options: Record<string, unknown>): Promise<OrtSessionLike & { release(): Promise<void> }> };
  Tensor: OrtTensorCtor;
}

export async function loadOnnxRuntime(): Promise<OnnxRuntimeModule> {
  try {
    return (await import('onnxruntime-node')) as unknown as OnnxRuntimeModule;
  } catch (e) {
    if ((e as { code?: string }).code !== 'ERR_MODULE_NOT_FOUND') throw e;
    throw new Error('running an ONNX model in Node needs onnxruntime-node, which is not installed: `ONNXRUNTIME_NODE_INSTALL=skip npm install onnxruntime-node` (the CPU binary is in the package; the variable skips the download of its CUDA provider)', { cause: e });
  }
}

export class OnnxRuntimeModel {
  private constructor(
    private readonly ort: OnnxRuntimeModule,
    private readonly session: OrtSessionLike & { release(): Promise<void> },
    /** The file's metadata_props (ddpm_ts.format, ddpm_ts.run_config, preset, ...). */
    readonly metadata: Record<string, string>,
    /** [C, S, S] of x_t. */
    readonly imageShape: [number, number, number],
    /** Whether the graph takes class_labels. */
    readonly conditional: boolean,
    readonly source: string,
  ) {}

  /** Opens an .onnx file or its bytes (`source` names it in errors). */
  static async open(file: string | Uint8Array, o: OnnxRuntimeOptions = {}, source = typeof file === 'string' ? file : 'ONNX model'): Promise<OnnxRuntimeModel> {
    const bytes = typeof file === 'string' ? readFileSync(file) : file;
    const model = decodeOnnx(bytes, source);
    const x = model.graph.inputs.find((v) => v.name === ONNX_NAMES.x);
    const names = model.graph.inputs.map((v) => v.name);
    if (!x || !names.includes(ONNX_NAMES.t) || !model.graph.outputs.some((v) => v.name === ONNX_NAMES.output) || x.shape.length !== 4) {
      throw new Error(`${source} is not a ddpm-ts model: expected inputs ${ONNX_NAMES.x} (B, C, H, W) and ${ONNX_NAMES.t} and output ${ONNX_NAMES.output}, found inputs ${names.join(', ')}; export one with \`ddpm export\``);
    }
    const ort = await loadOnnxRuntime();
    const session = await ort.InferenceSession.create(bytes, {
      executionProviders: ['cpu'], graphOptimizationLevel: 'all', ...(o.threads ? { intraOpNumThreads: o.threads } : {}),
    });
    return new OnnxRuntimeModel(ort, session, model.metadata, x.shape.slice(1) as [number, number, number], names.includes(ONNX_NAMES.classLabels), source);
  }

  /**
   * The prediction for a batch: x (B C S S values, row-major), t and, for a conditional model,
   * labels (-1: no class), one per image.
   */
  async run(x: Float32Array, t: ArrayLike<number>, labels?: ArrayLike<number>): Promise<Float32Array> {
    const b = t.length;
    const [c, h, w] = this.imageShape;
    if (x.length !== b * c * h * w) throw new Error(`${this.source}: x_t has ${x.length} values; ${b} timesteps need ${b} x ${c} x ${h} x ${w} = ${b * c * h * w}`);
    if (this.conditional !== (labels !== undefined)) {
      throw new Error(this.conditional
        ? `${this.source} is class-conditional: give one label per image (-1 for no class)`
        : `${this.source} is unconditional: it takes no class labels`);
    }
    if (labels && labels.length !== b) throw new Error(`${this.source}: ${labels.length} class labels for ${b} images`);
    const { Tensor } = this.ort;
    const feeds: Record<string, OrtTensorLike> = {
      [ONNX_NAMES.x]: new Tensor('float32', x, [b, c, h, w]),
      [ONNX_NAMES.t]: new Tensor('int64', BigInt64Array.from(Array.from(t), (v) => BigInt(v)), [b]),
    };
    if (labels) feeds[ONNX_NAMES.classLabels] = new Tensor('int64', BigInt64Array.from(Array.from(labels), (v) => BigInt(v)), [b]);
    const out = await this.session.run(feeds);
    return out[ONNX_NAMES.output]!.data as Float32Array;
  }

  async release(): Promise<void> { await this.session.release(); }
}
