#!/usr/bin/env bash
# npm run bench: installs python3-torch for the PyTorch side, builds, then compares (bench/compare.ts).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh python3-torch

# npm run bench -- allocator [--rounds N] [--only sample-ddpm,sample-dli02,train-ddpm] [--steps N]: only the
# caching CPU allocator and inference mode against c10's allocator and no-grad (bench/allocator.ts).
if [ "${1:-}" = allocator ]; then shift; exec node dist/bench/allocator.js "$@"; fi
node dist/bench/compare.js "$@"

# Samplers on one trained run: $SAMPLER_RUN, else runs/demo (npm run demo), else a 1-epoch dli02
# run trained here once (about a minute) and kept in .bench/.
RUN="${SAMPLER_RUN:-runs/demo}"
if [ ! -f "$RUN/config.json" ]; then
  RUN=.bench/dli02-1epoch
  [ -f "$RUN/config.json" ] || node bin/ddpm.js train --out "$RUN" --epochs 1 --no-sample-grids
fi
node dist/bench/samplers.js --run "$RUN" --out .bench/samplers

# Data parallel on c10d: 1 against 2 processes at the same global batch and total cores (bench/distributed.ts).
node dist/bench/distributed.js --out .bench/distributed.json

# Each preset exported to ONNX, sampled on onnxruntime-node (CPU) beside libtorch, and the two forms
# of the transposed convolutions (bench/onnx.ts); then at the browser bench's batch of 16, so that
# libtorch, onnxruntime-node and onnxruntime-web (WASM) in headless Chromium stand side by side.
node dist/bench/onnx.js
node dist/bench/onnx.js --batch 16
node dist/bench/web.js --batch 16

# The caching CPU allocator and inference mode, on and off (bench/allocator.ts).
node dist/bench/allocator.js
