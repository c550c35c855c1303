// A preset's U-Net as an ONNX model: inputs x_t (B, C, S, S) float32, t (B,) int64 timestep indices
// and, for a class-conditional model, class_labels (B,) int64 (-1: no class); output `prediction`,
// the network's output for its objective. The timestep embedding and the one-hot are in the graph,
// so a runtime needs nothing but the file. Eval mode; BatchNorm folded where the preset has it.
import { ArgumentError, noGrad, tidy } from '../tensor/index.js';
import { OnnxGraph, ONNX_OPSET, type OnnxGraphOptions } from '../nn/index.js';
import type { OnnxModelData } from '../nn/onnx-ir.js';
import { oneHotOnnx } from './embeddings.js';
import { ONNX_NAMES } from './onnx-contract.js';
import type { DiffusionUNet, ModelConfig } from './index.js';

/** ONNX IR version 8 is the one that goes with opset 17 (ONNX 1.12), which onnxruntime-web runs. */
export const ONNX_IR_VERSION = 8;


export interface OnnxExportOptions extends Partial<OnnxGraphOptions> {
  /** metadata_props of the model. */
  metadata?: Record<string, string>;
  producerVersion?: string;
  /** What the weights came from (a checkpoint file), for error messages. */
  source?: string;
}

/**
 * The model's ONNX description (io/onnx.ts encodes it). Refuses a model in training mode and one
 * with a non-finite weight, naming the tensor; nothing is built then.
 */
export function modelToOnnx(model: DiffusionUNet, config: ModelConfig, o: OnnxExportOptions = {}): OnnxModelData {
  const source = o.source ?? 'the model';
  if (model.training) throw new ArgumentError(`ONNX export: ${source} is in training mode; call model.eval() first (exports are for inference)`);
  for (const [k, t] of model.stateDict()) {
    if (t.dtype.startsWith('float') && !tidy(() => t.isfinite().all().item())) {
      throw new ArgumentError(`ONNX export: ${k} in ${source} has non-finite values (NaN or infinity); export an earlier checkpoint (--checkpoint), or the raw weights (--no-ema) if only the EMA diverged`);
    }
  }
  const { imageChannels: c, imageSize: s } = config;
  const numClasses = config.numClasses ?? 0;
  const graph = noGrad(() => tidy(() => {
    const g = new OnnxGraph(model, { convTranspose: o.convTranspose ?? 'subPixel' });
    const x = g.input(ONNX_NAMES.x, 'float32', [null, c, s, s]);
    const t = g.input(ONNX_NAMES.t, 'int64', [null]);
    const cls = numClasses ? oneHotOnnx(g, g.input(ONNX_NAMES.classLabels, 'int64', [null]), numClasses) : null;
    g.output(g.lower(model, x, t, cls), ONNX_NAMES.output);
    return g.build(`ddpm-ts ${config.preset}`);
  }));
  return {
    irVersion: ONNX_IR_VERSION, opset: ONNX_OPSET, producerName: 'ddpm-ts', producerVersion: o.producerVersion ?? '', graph, metadata: o.metadata ?? {},
  };
}
