#!/usr/bin/env bash
# Installs what ddpm-ts needs and builds it. Safe to run again: each step is skipped when done.
#   - Debian packages (as root): libtorch-dev, libgloo-dev (the Gloo headers that libtorch's
#     ProcessGroupGloo.hpp includes; native/distributed.cc), libopenblas0-pthread (without OpenBLAS, Debian's libtorch
#     multiplies matrices ~30x slower; docs/architecture.md, BLAS), dataset-fashion-mnist, fonts-dejavu-core (text in PNG
#     charts), chromium (the studio's browser tests drive it headless), plus any given as arguments
#   - npm ci (its install script, native/install.cjs, builds the libtorch addon with node-gyp), the addon
#     again when native/ changed since, the TypeScript build, the studio page (scripts/build-studio.mjs)
set -euo pipefail
cd "$(dirname "$0")/.."

want=(libtorch-dev libgloo-dev libopenblas0-pthread dataset-fashion-mnist fonts-dejavu-core chromium "$@")
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing Debian packages: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
  else
    echo "setup: missing Debian packages: ${missing[*]}" >&2
    echo "setup: install them with: sudo apt-get install ${missing[*]}   (or set LIBTORCH to a libtorch folder)" >&2
  fi
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error
fi

addon=build/Release/ddpm_torch.node
if [ ! -f "$addon" ] || [ -n "$(find native binding.gyp -newer "$addon" -print -quit)" ]; then
  echo "setup: building the libtorch addon (node-gyp)" >&2
  rm -f build/libtorch.json
  npx --no-install node-gyp rebuild -j 2 --loglevel=error >build-native.log 2>&1 || { cat build-native.log >&2; exit 1; }
  grep -h "building against" build-native.log >&2 || node native/find-libtorch.cjs --describe >&2
fi

echo "setup: compiling TypeScript" >&2
npx --no-install tsc -p tsconfig.json

# The studio page (esbuild bundle + its own type check), rebuilt when a page source is newer than it.
page=dist/studio/public/app.js
if [ ! -f "$page" ] || [ -n "$(find src/studio/page src/studio/protocol.ts src/web/page src/samplers src/diffusion scripts/build-studio.mjs scripts/page-build.mjs package-lock.json -newer "$page" -print -quit)" ]; then
  echo "setup: building the studio page (esbuild)" >&2
  node scripts/build-studio.mjs
fi

# The exported page's assets (esbuild bundle, onnxruntime-web's WASM runtime), for ddpm export --web.
web=dist/web/public/app.js
if [ ! -f "$web" ] || [ -n "$(find src/web/page src/samplers src/diffusion src/viz/grid.ts scripts/build-web.mjs scripts/page-build.mjs package-lock.json -newer "$web" -print -quit)" ]; then
  echo "setup: building the exported page (esbuild)" >&2
  node scripts/build-web.mjs
fi
