// Improved precision and recall (Kynkaanniemi et al. 2019, section 3): each set's manifold is the
// union of balls around its feature vectors, each ball reaching the centre's k-th nearest neighbour
// in the same set (k = 5 here, as in prdc by Naeem et al. 2020). Precision is the fraction of
// generated samples inside the real manifold (quality); recall the fraction of real samples inside
// the generated manifold (coverage). Distances in float64, computed in row chunks so memory stays
// bounded at any sample count.
import { type Tensor, noGrad, tidy, keep, cat, cdist, ArgumentError } from '../tensor/index.js';

export const PR_K = 5;
const CHUNK = 1024;

/** Distance from each row of f (N, D) to its k-th nearest neighbour among the other rows: (N,) float64. */
export function kNearestRadii(f: Tensor, k = PR_K): Tensor {
  const n = f.shape[0]!;
  if (f.rank !== 2) throw new ArgumentError(`kNearestRadii: features must be (N, D), got [${f.shape.join(', ')}]`);
  if (!Number.isInteger(k) || k < 1 || k >= n) throw new ArgumentError(`kNearestRadii: k must be an integer in [1, ${n - 1}] for ${n} feature rows, got ${k}`);
  const parts: Tensor[] = [];
  noGrad(() => {
    const all = keep(f.double());
    try {
      for (let start = 0; start < n; start += CHUNK) {
        const c = Math.min(CHUNK, n - start);
        parts.push(keep(tidy(() => {
          const d = cdist(all.narrow(0, start, c), all); // (c, N), the row itself at distance 0
          return d.topk(k + 1, 1, false)[0].select(1, k); // (c,): index 0 is the point itself
        })));
      }
    } finally {
      all.dispose();
    }
  });
  if (parts.length === 1) return parts[0]!;
  const out = cat(parts, 0);
  for (const p of parts) p.dispose();
  return out;
}

/** Fraction of the rows of `query` (M, D) within radii[j] of some row j of `ref` (N, D). */
export function fractionInManifold(query: Tensor, ref: Tensor, radii: Tensor): number {
  const m = query.shape[0]!;
  let inside = 0;
  noGrad(() => {
    const r = keep(ref.double());
    const rad = keep(radii.double().unsqueeze(0)); // (1, N)
    try {
      for (let start = 0; start < m; start += CHUNK) {
        const c = Math.min(CHUNK, m - start);
        inside += tidy(() => {
          const d = cdist(query.narrow(0, start, c).double(), r); // (c, N)
          return d.sub(rad).min(1)[0].le(0).double().sum().item(); // inside some ball (boundary included, as the paper's code)
        });
      }
    } finally {
      r.dispose();
      rad.dispose();
    }
  });
  return inside / m;
}

export interface PrecisionRecall { precision: number; recall: number; k: number }

/** Precision and recall of generated features `fake` (M, D) against `real` (N, D). */
export function precisionRecall(real: Tensor, fake: Tensor, k = PR_K): PrecisionRecall {
  if (real.rank !== 2 || fake.rank !== 2 || real.shape[1] !== fake.shape[1]) {
    throw new ArgumentError(`precisionRecall: expected real (N, D) and fake (M, D) features, got [${real.shape.join(', ')}] and [${fake.shape.join(', ')}]`);
  }
  for (const [what, t] of [['real', real], ['generated', fake]] as const) {
    if (t.shape[0]! <= k) throw new ArgumentError(`precisionRecall: needs more than k = ${k} ${what} samples, got ${t.shape[0]}`);
  }
  const realRadii = kNearestRadii(real, k);
  const fakeRadii = kNearestRadii(fake, k);
  try {
    return { precision: fractionInManifold(fake, real, realRadii), recall: fractionInManifold(real, fake, fakeRadii), k };
  } finally {
    realRadii.dispose();
    fakeRadii.dispose();
  }
}
