// The names of an exported model's graph inputs and output: the file contract that
// models/onnx-export.ts writes and every runtime (`ddpm sample --model`, the web page) feeds.
// Tensor-free, so that code running a model on ONNX Runtime does not load libtorch.

export const ONNX_NAMES = {
  /** float32 (B, C, H, W), the noisy images. */
  x: 'x_t',
  /** int64 (B,), timestep indices 0..T-1. */
  t: 't',
  /** int64 (B,), class-conditional models only: 0..numClasses-1, or -1 for no class. */
  classLabels: 'class_labels',
  /**
   * float32 (B, C, H, W), the network's output for its objective (eps, x0 or v); (B, 2C, H, W) for a
   * learned-variance model (metadata learn_variance "true"): the C of the objective, then the C of v.
   */
  output: 'prediction',
} as const;
