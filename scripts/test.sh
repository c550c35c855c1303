#!/usr/bin/env bash
# npm test: setup (installs and builds what is missing), type check + lint, then every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npx --no-install eslint --max-warnings 0 .
export OPENBLAS_NUM_THREADS=1
node --test --test-concurrency=1 --test-reporter=spec dist/test/
