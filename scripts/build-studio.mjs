// Builds the studio page: type-checks src/studio/page (tsc, its own DOM tsconfig), then bundles
// main.ts into dist/studio/public/app.js (ESM) and app.css (with uPlot's stylesheet) with esbuild,
// and copies index.html. Everything lands in one folder the server serves; nothing is fetched at run time
// (the "in this browser" switch's onnxruntime-web WASM runtime is served from the exported page's build,
// dist/web/public/ort, which scripts/build-web.mjs writes).
import { build } from 'esbuild';
import { copyFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { root, typeCheckPage, bundlePage } from './page-build.mjs';

const page = path.join(root, 'src/studio/page');
const out = path.join(root, 'dist/studio/public');

typeCheckPage(page, 'build-studio: the page has type errors (above); fix them in src/studio/page/');
mkdirSync(out, { recursive: true });
await bundlePage(page, out);
await build({
  entryPoints: { app: path.join(page, 'app.css') },
  outdir: out,
  bundle: true,
  minify: true,
  logLevel: 'warning',
});
copyFileSync(path.join(page, 'index.html'), path.join(out, 'index.html'));
