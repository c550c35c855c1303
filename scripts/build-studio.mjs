// Builds the studio page: type-checks src/studio/page (tsc, its own DOM tsconfig), then bundles
// main.ts into dist/studio/public/app.js (ESM) and app.css (with uPlot's stylesheet) with esbuild,
// and copies index.html. Everything lands in one folder the server serves; nothing is fetched at run time
// (the "in this browser" switch's onnxruntime-web WASM runtime is served from the exported page's build,
// dist/web/public/ort, which scripts/build-web.mjs writes).
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const page = path.join(root, 'src/studio/page');
const out = path.join(root, 'dist/studio/public');

if (!process.argv.includes('--no-check')) {
  try {
    execFileSync(process.execPath, [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', path.join(page, 'tsconfig.json')], { stdio: 'inherit' });
  } catch {
    console.error('build-studio: the page has type errors (above); fix them in src/studio/page/');
    process.exit(1);
  }
}
mkdirSync(out, { recursive: true });
await build({
  entryPoints: { app: path.join(page, 'main.ts') },
  outdir: out,
  bundle: true,
  format: 'esm',
  target: 'es2022',
  platform: 'browser',
  // onnxruntime-web's build that loads its WASM glue from env.wasm.wasmPaths (/ort/) instead of inlining it.
  conditions: ['onnxruntime-web-use-extern-wasm'],
  minify: true,
  legalComments: 'none',
  logLevel: 'warning',
});
await build({
  entryPoints: { app: path.join(page, 'app.css') },
  outdir: out,
  bundle: true,
  minify: true,
  logLevel: 'warning',
});
copyFileSync(path.join(page, 'index.html'), path.join(out, 'index.html'));
