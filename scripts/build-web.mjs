// Builds the exported page's assets into dist/web/public: type-checks src/web/page (its own DOM
// tsconfig), bundles main.ts into app.js with esbuild, copies index.html and onnxruntime-web's WASM
// runtime (ort/). `ddpm export --web DIR` copies this folder and the model. The page must not reach
// libtorch: the build fails if the bundle includes the addon's loader (src/tensor/native.ts).
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { root, typeCheckPage, bundlePage } from './page-build.mjs';

const page = path.join(root, 'src/web/page');
const out = path.join(root, 'dist/web/public');
const ortDist = path.join(root, 'node_modules/onnxruntime-web/dist');
/** The runtime onnxruntime-web's WebGPU + WASM build (ort.min.mjs) loads: the JSEP build's glue and binary. */
export const ORT_FILES = ['ort-wasm-simd-threaded.jsep.mjs', 'ort-wasm-simd-threaded.jsep.wasm'];

typeCheckPage(page, 'build-web: the page has type errors (above); fix them in src/web/page/ or the modules it imports');
rmSync(out, { recursive: true, force: true });
mkdirSync(path.join(out, 'ort'), { recursive: true });
const result = await bundlePage(page, out);
const native = Object.keys(result.metafile.inputs).filter((f) => /src\/tensor\/(native|index)\.ts$|\.node$/.test(f));
if (native.length > 0) {
  console.error(`build-web: the page bundle reaches libtorch through ${native.join(', ')}; import the tensor-free modules (tensor/check.ts, tensor/scope.ts, tensor/ndarray.ts) instead`);
  process.exit(1);
}
copyFileSync(path.join(page, 'index.html'), path.join(out, 'index.html'));
for (const f of ORT_FILES) copyFileSync(path.join(ortDist, f), path.join(out, 'ort', f));
