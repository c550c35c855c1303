#!/usr/bin/env bash
# npm run demo: the main job on a fresh machine. Installs what is missing (Debian packages when root,
# npm ci, the libtorch addon, the TypeScript build), trains the course notebook's dli02 model on
# Fashion-MNIST and writes its pictures under runs/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
EPOCHS="${DEMO_EPOCHS:-3}"
OUT="${DEMO_OUT:-runs/demo}"
if [ -e "$OUT/config.json" ]; then
  echo "demo: $OUT already holds a run; moving it to $OUT.prev-$(date +%s)" >&2
  mv "$OUT" "$OUT.prev-$(date +%s)"
fi
mkdir -p "$OUT"
node bin/ddpm.js viz forward --index 0 --out "$OUT/forward.png"
node bin/ddpm.js train --preset dli02 --epochs "$EPOCHS" --out "$OUT"
node bin/ddpm.js sample --run "$OUT" -n 64 --seed 0 --grid "$OUT/samples.png" --trajectory "$OUT/trajectory.png"
cat >&2 <<MSG

demo: done. Pictures in $OUT/:
  forward.png      a training image noised by q(x_t | x_0) at 10 evenly spaced t
  samples/epoch-*.png   64 samples after each epoch (same noise each time)
  samples.png      64 samples from the final checkpoint
  trajectory.png   8 images going from noise (left) to garment (right)
  log.jsonl        the loss, learning rate and throughput every 10 steps
  checkpoints/     model and optimizer state (safetensors) after each epoch
MSG
