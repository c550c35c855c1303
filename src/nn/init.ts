// Initialisation exactly as torch.nn does it, drawing from torch's default generator in the same
// order, so that after manualSeed(s) a model starts with the same weights as its PyTorch twin.
import { type Tensor, noGrad } from '../tensor/index.js';

/** fan_in and fan_out as torch.nn.init._calculate_fan_in_and_fan_out computes them. */
export function fans(shape: number[]): { fanIn: number; fanOut: number } {
  if (shape.length < 2) throw new Error(`fans: need at least 2 dims, got [${shape.join(', ')}]`);
  const receptive = shape.slice(2).reduce((a, b) => a * b, 1);
  return { fanIn: shape[1]! * receptive, fanOut: shape[0]! * receptive };
}

/** kaiming_uniform_(a=sqrt(5)) as Linear and Conv use: bound = gain * sqrt(3 / fan_in), gain = sqrt(2 / (1 + a^2)). */
export function kaimingUniformDefault(w: Tensor): void {
  const { fanIn } = fans(w.shape);
  const gain = Math.sqrt(2 / (1 + 5));
  const bound = gain * Math.sqrt(3 / fanIn);
  noGrad(() => w.uniform_(-bound, bound));
}

/** The bias init of Linear and Conv: U(-1/sqrt(fan_in), 1/sqrt(fan_in)). */
export function biasUniform(b: Tensor, fanIn: number): void {
  const bound = fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0;
  noGrad(() => b.uniform_(-bound, bound));
}

export function normal(w: Tensor, mean = 0, std = 1): void { noGrad(() => w.normal_(mean, std)); }
export function zeros_(w: Tensor): void { noGrad(() => w.zero_()); }
