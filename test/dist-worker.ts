// One rank of the library-API test (distributed.test.ts): torchrun's variables in, results as JSON on stdout.
// DDPM_DIST_DEVICE=cuda runs it on CUDA tensors with NCCL (scripts/gpu-check.sh). A module without side
// effects, as node --test loads every file under dist/test/; run a rank with
//   node --input-type=module -e "import('./dist/test/dist-worker.js').then((m) => m.runRank())"
import { initProcessGroup, allReduce, broadcast, barrier, destroyProcessGroup, getRank, getWorldSize } from '../src/index.js';
import { readLaunchEnv } from '../src/distributed/index.js';
import { tensor, type Tensor } from '../src/tensor/index.js';

export function runRank(): void {
  const env = readLaunchEnv();
  const device = process.env.DDPM_DIST_DEVICE === 'cuda' ? 'cuda' : 'cpu';
  initProcessGroup({ rank: env.rank, worldSize: env.worldSize, masterAddr: env.masterAddr, masterPort: env.masterPort, timeoutMs: 20_000, device });
  const r = getRank();
  const on = (t: Tensor): Tensor => (device === 'cuda' ? t.to('cuda') : t);
  const sum = on(tensor([r + 1, 10 * (r + 1), 0.5], [3]));
  allReduce(sum);
  const max = on(tensor([r, -r], [2], { dtype: 'float64' }));
  allReduce(max, { op: 'max' });
  const b = on(tensor([r === 0 ? 7 : -1, r === 0 ? 8 : -1], [2]));
  broadcast(b, { src: 0 });
  const fromLast = on(tensor([r * 100], [1]));
  broadcast(fromLast, { src: getWorldSize() - 1 });
  barrier();
  destroyProcessGroup();
  let afterDestroy = '';
  try { allReduce(sum); } catch (e) { afterDestroy = (e as Error).message; }
  process.stdout.write(`${JSON.stringify({ rank: r, sum: sum.toArray(), max: max.toArray(), b: b.toArray(), fromLast: fromLast.toArray(), afterDestroy })}\n`);
}
