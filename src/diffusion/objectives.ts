// What the network predicts, and the one conversion layer every loss and sampler goes through.
// With a = sqrt(alphabar_t) and s = sqrt(1 - alphabar_t), x_t = a x_0 + s eps (Ho et al. 2020, eq. 4):
//   eps: the noise (Ho et al. 2020);
//   x0:  the clean image;
//   v:   v = a eps - s x_0 (Salimans & Ho 2022, "Progressive Distillation", section 4),
//        so that x_0 = a x_t - s v and eps = s x_t + a v (a^2 + s^2 = 1).
// The coefficients are numbers (one t for the whole batch, as samplers use) or tensors shaped to
// broadcast over x (one t per example, as the loss uses); the formulas are the same.
import type { Tensor } from '../tensor/index.js';
import { tidy } from '../tensor/scope.js';
import { ArgumentError } from '../tensor/check.js';
import type { NdArray } from '../tensor/ndarray.js';

export const OBJECTIVES = ['eps', 'x0', 'v'] as const;
export type Objective = (typeof OBJECTIVES)[number];

// Generic over the array type: libtorch tensors, and the host arrays the ONNX Runtime samplers use.
type Coef<A> = number | A;

export function checkObjective(o: string): Objective {
  if (!(OBJECTIVES as readonly string[]).includes(o)) throw new ArgumentError(`objective must be one of ${OBJECTIVES.join(', ')}, got ${JSON.stringify(o)}`);
  return o as Objective;
}

/** x_0 = (x_t - s eps) / a */
export function x0FromEps<A extends NdArray<A> = Tensor>(xt: A, eps: A, a: Coef<A>, s: Coef<A>): A { return tidy(() => xt.sub(eps.mul(s)).div(a)); }
/** eps = (x_t - a x_0) / s */
export function epsFromX0<A extends NdArray<A> = Tensor>(xt: A, x0: A, a: Coef<A>, s: Coef<A>): A { return tidy(() => xt.sub(x0.mul(a)).div(s)); }
/** v = a eps - s x_0 */
export function vFromEpsX0<A extends NdArray<A> = Tensor>(eps: A, x0: A, a: Coef<A>, s: Coef<A>): A { return tidy(() => eps.mul(a).sub(x0.mul(s))); }
/** x_0 = a x_t - s v */
export function x0FromV<A extends NdArray<A> = Tensor>(xt: A, v: A, a: Coef<A>, s: Coef<A>): A { return tidy(() => xt.mul(a).sub(v.mul(s))); }
/** eps = s x_t + a v */
export function epsFromV<A extends NdArray<A> = Tensor>(xt: A, v: A, a: Coef<A>, s: Coef<A>): A { return tidy(() => xt.mul(s).add(v.mul(a))); }

/** The model's output read as both predictions, eps_theta and x_theta, at x_t. */
export function predictionsFromOutput<A extends NdArray<A> = Tensor>(objective: Objective, out: A, xt: A, a: Coef<A>, s: Coef<A>): { eps: A; x0: A } {
  switch (objective) {
    case 'eps': return { eps: out, x0: x0FromEps(xt, out, a, s) };
    case 'x0': return { eps: epsFromX0(xt, out, a, s), x0: out };
    case 'v': return tidy(() => ({ eps: epsFromV(xt, out, a, s), x0: x0FromV(xt, out, a, s) }));
    default: throw new ArgumentError(`objective must be one of ${OBJECTIVES.join(', ')}, got ${JSON.stringify(objective)}`);
  }
}

/** The output a perfect model would give for (x_0, eps): the regression target of the loss. */
export function objectiveTarget<A extends NdArray<A> = Tensor>(objective: Objective, x0: A, eps: A, a: Coef<A>, s: Coef<A>): A {
  switch (objective) {
    case 'eps': return eps;
    case 'x0': return x0;
    case 'v': return vFromEpsX0(eps, x0, a, s);
    default: throw new ArgumentError(`objective must be one of ${OBJECTIVES.join(', ')}, got ${JSON.stringify(objective)}`);
  }
}
