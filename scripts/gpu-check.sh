#!/usr/bin/env bash
# GPU check of ddpm-ts on a machine with an NVIDIA GPU (not part of npm test; see README "Data-parallel training").
#   LIBTORCH=/path/to/libtorch-cuda bash scripts/gpu-check.sh     # an unpacked CUDA libtorch zip
#   bash scripts/gpu-check.sh                                     # or pip's torch (a CUDA build) for python3
# It rebuilds the addon against that libtorch (build/ is replaced; run scripts/setup.sh afterwards to go
# back to Debian's), then:
#   1. says what the addon sees: libtorch version, CUDA, the c10d backends (nccl needs a CUDA build);
#   2. runs the golden op tests (PyTorch's numbers, on the CPU kernels of this libtorch);
#   3. runs the data-parallel tests (Gloo over loopback) and the library API on CUDA tensors with NCCL
#      between 2 processes;
#   4. trains dli02 for 20 steps with --device cuda in 1 process and in 2 (NCCL, each rank on
#      cuda:LOCAL_RANK, so it needs 2 GPUs and is skipped with fewer), then samples from the 1-process run with
#      `ddpm sample --device cuda` and compares it with the same sampling on the CPU;
#   5. runs the data-parallel benchmark (bench/distributed.ts) and writes .bench/gpu-check/.
set -euo pipefail
cd "$(dirname "$0")/.."
out=.bench/gpu-check
mkdir -p "$out"
export OPENBLAS_NUM_THREADS=1

if [ -z "${LIBTORCH:-}" ]; then
  python3 -c 'import torch, sys; sys.exit(0 if torch.version.cuda else 1)' 2>/dev/null || {
    echo "gpu-check: no CUDA libtorch: set LIBTORCH to an unpacked CUDA libtorch, or install a CUDA build of torch for python3" >&2
    exit 1
  }
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"

[ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error
rm -f build/libtorch.json
npx --no-install node-gyp rebuild -j "$(nproc)" --loglevel=error 2>&1 | tee "$out/build.log" | grep -h "building against" || true
npx --no-install tsc -p tsconfig.json

node --input-type=module -e "
import { native } from './dist/src/tensor/native.js';
const info = { libtorch: native.libtorchVersion(), cuda: native.cudaAvailable(), backends: native.distBackends() };
console.log(JSON.stringify(info));
if (!info.cuda) { console.error('gpu-check: this libtorch sees no CUDA device'); process.exit(1); }
if (!info.backends.includes('nccl')) { console.error('gpu-check: the addon was built without NCCL (nccl.h not found next to this libtorch)'); process.exit(1); }
" | tee "$out/addon.json"

node --test --test-concurrency=1 dist/test/ops.golden.test.js 2>&1 | tee "$out/golden.txt" | tail -8
node --test --test-concurrency=1 dist/test/distributed.test.js 2>&1 | tee "$out/distributed.txt" | tail -8

# NCCL between 2 processes on CUDA tensors, through the library API.
port=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
for r in 0 1; do
  RANK=$r WORLD_SIZE=2 LOCAL_RANK=$r LOCAL_WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port DDPM_DIST_DEVICE=cuda \
    node --input-type=module -e "import('./dist/test/dist-worker.js').then((m) => m.runRank())" >"$out/nccl-rank$r.json" &
done
wait
cat "$out"/nccl-rank*.json

gpus=$(nvidia-smi -L 2>/dev/null | wc -l || echo 0)
for n in 1 2; do
  if [ "$n" = 2 ] && [ "$gpus" -lt 2 ]; then echo "gpu-check: $gpus GPU(s): skipping the 2-process --device cuda run (one GPU per rank)" >&2; continue; fi
  rm -rf "$out/train-$n"
  extra=(--batch-size 128); [ "$n" = 2 ] && extra=(--nproc-per-node 2 --batch-size 64)
  node bin/ddpm.js train --preset dli02 --device cuda --limit 4096 --epochs 1 --max-steps 20 --threads "$(nproc)" "${extra[@]}" --out "$out/train-$n" 2>&1 | tail -2
done
# Sampling on the GPU: the same seed on the CPU must give the same images up to the kernels' rounding.
node bin/ddpm.js sample --run "$out/train-1" --device cuda -n 16 --sampler ddim --steps 50 --out-dir "$out/sample-cuda" 2>&1 | tail -1
node bin/ddpm.js sample --run "$out/train-1" --device cpu -n 16 --sampler ddim --steps 50 --out-dir "$out/sample-cpu" 2>&1 | tail -1
node --input-type=module -e "
import { readFileSync, readdirSync } from 'node:fs';
import { PNG } from 'pngjs';
let worst = 0;
for (const f of readdirSync('$out/sample-cpu')) {
  const a = PNG.sync.read(readFileSync('$out/sample-cpu/' + f)).data, b = PNG.sync.read(readFileSync('$out/sample-cuda/' + f)).data;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
}
console.log(JSON.stringify({ sampleCudaVsCpuMaxPixelDiff: worst }));
if (worst > 8) { console.error('gpu-check: ddpm sample --device cuda differs from the CPU by more than 8/255'); process.exit(1); }
" | tee "$out/sample-diff.json"

node dist/bench/distributed.js --threads "$(nproc)" --out "$out/distributed.json"
echo "gpu-check: done; results in $out/" >&2
