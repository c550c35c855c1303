export { Module, Layer, Parameter } from './module.js';
export * from './layers.js';
export { Adam, AdamW, clipGradNorm, type AdamOptions } from './optim.js';
export * as init from './init.js';
export { foldBatchNorm, foldConvBatchNorm, FoldedConv } from './fold.js';
export { OnnxGraph, ONNX_OPSET, type OnnxValue, type OnnxGraphOptions, type Dim } from './onnx-graph.js';
