// What DistributedDataParallel does around c10d, for a C++-frontend-style model that has no DDP class:
// gradients averaged in flattened buckets (one allreduce per ~25 MB, DDP's bucket_cap_mb, filled in
// reverse parameter order as backward produces them), and parameters or buffers broadcast from rank 0
// in flattened groups (DDP's _sync_module_states and broadcast_buffers).
import { type Tensor, cat, tidy, noGrad, zerosLike } from '../tensor/index.js';
import { DTYPE_BYTES } from '../tensor/dtype.js';
import type { ProcessGroup } from './process-group.js';

/** DDP's default bucket_cap_mb. */
export const BUCKET_BYTES = 25 * 1024 * 1024;

/** Indices of `tensors` grouped into buckets of one dtype and at most `capBytes` each (a larger tensor gets its own). */
export function planBuckets(tensors: readonly { dtype: Tensor['dtype']; numel: number }[], capBytes = BUCKET_BYTES, reverse = true): number[][] {
  const order = [...tensors.keys()];
  if (reverse) order.reverse();
  const buckets: number[][] = [];
  const open = new Map<string, { idx: number[]; bytes: number }>();
  for (const i of order) {
    const t = tensors[i]!;
    const bytes = t.numel * DTYPE_BYTES[t.dtype];
    let b = open.get(t.dtype);
    if (b && b.bytes + bytes > capBytes && b.idx.length > 0) {
      buckets.push(b.idx);
      b = undefined;
    }
    if (!b) { b = { idx: [], bytes: 0 }; open.set(t.dtype, b); }
    b.idx.push(i);
    b.bytes += bytes;
  }
  for (const b of open.values()) if (b.idx.length > 0) buckets.push(b.idx);
  return buckets;
}

/** Flattens each bucket, runs `collective` on it, and copies what it returns back into the tensors (values, not identity). */
function coalesced(tensors: Tensor[], buckets: number[][], collective: (flat: Tensor) => Tensor): void {
  noGrad(() => {
    for (const bucket of buckets) {
      tidy(() => {
        const flat = cat(bucket.map((i) => tensors[i]!.flatten())); // (sum of numel,)
        const out = collective(flat);
        let off = 0;
        for (const i of bucket) {
          const t = tensors[i]!;
          t.copy_(out.narrow(0, off, t.numel).reshape(t.shape));
          off += t.numel;
        }
      });
    }
  });
}

/**
 * Averages the gradients of `params` over the group: sum by allreduce, then divide by the world size
 * (DDP's default comm hook). A parameter without a gradient on this rank takes part with zeros, so
 * every rank's buckets line up.
 */
export class GradientAverager {
  readonly buckets: number[][];
  /** Allreduce calls made and the time spent in them, for the benchmark. */
  calls = 0;
  seconds = 0;

  constructor(readonly group: ProcessGroup, readonly params: Tensor[], capBytes = BUCKET_BYTES) {
    this.buckets = planBuckets(params, capBytes);
  }

  average(): void {
    const grads = this.params.map((p) => {
      const g = p.grad;
      if (g) return g;
      const z = noGrad(() => zerosLike(p));
      p.grad = z;
      z.dispose();
      return p.grad!;
    });
    const w = this.group.worldSize;
    try {
      coalesced(grads, this.buckets, (flat) => {
        const t0 = performance.now();
        this.group.allReduce([flat]);
        this.seconds += (performance.now() - t0) / 1000;
        this.calls += 1;
        return flat.div(w);
      });
    } finally {
      for (const g of grads) g.dispose();
    }
  }
}

/** Every rank takes rank `src`'s values of `tensors` (parameters, buffers, optimizer state). */
export function broadcastCoalesced(group: ProcessGroup, tensors: Tensor[], src = 0, capBytes = BUCKET_BYTES): void {
  if (tensors.length === 0 || group.worldSize === 1) return;
  coalesced(tensors, planBuckets(tensors, capBytes, false), (flat) => {
    group.broadcast([flat], src);
    return flat;
  });
}
