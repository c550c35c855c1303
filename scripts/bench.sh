#!/usr/bin/env bash
# npm run bench: installs python3-torch for the PyTorch side, builds, then compares (bench/compare.ts).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh python3-torch
node dist/bench/compare.js "$@"
