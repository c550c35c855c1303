// What the two browser pages' builds share (scripts/build-studio.mjs, scripts/build-web.mjs): the
// page's own type check (its DOM tsconfig) and one esbuild configuration for its app.js.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Type-checks the page folder with its own tsconfig, unless --no-check; exits with `hint` on errors. */
export function typeCheckPage(page, hint) {
  if (process.argv.includes('--no-check')) return;
  try {
    execFileSync(process.execPath, [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', path.join(page, 'tsconfig.json')], { stdio: 'inherit' });
  } catch {
    console.error(hint);
    process.exit(1);
  }
}

/** Bundles page/main.ts into out/app.js (ESM, minified); esbuild's result, with a metafile. */
export function bundlePage(page, out) {
  return build({
    entryPoints: { app: path.join(page, 'main.ts') },
    outdir: out,
    bundle: true,
    format: 'esm',
    target: 'es2022',
    platform: 'browser',
    // onnxruntime-web's build that loads its WASM glue from env.wasm.wasmPaths (ort/) instead of inlining it.
    conditions: ['onnxruntime-web-use-extern-wasm'],
    minify: true,
    legalComments: 'none',
    logLevel: 'warning',
    metafile: true,
  });
}
