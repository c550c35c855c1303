// `ddpm export --web DIR`: the exported page as a self-contained static folder: index.html, app.js
// (src/web/page bundled by scripts/build-web.mjs), onnxruntime-web's WASM runtime in ort/, and the
// model as model.onnx. Written whole or not at all (io/atomic.ts); nothing in it is fetched from
// elsewhere, so any static file server can serve it.
import { copyFileSync, existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { removeDirAtomic, writeDirAtomic, writeFileAtomic } from '../io/atomic.js';

/** dist/web/public, which scripts/build-web.mjs fills (this file runs from dist/src/web/). */
export const WEB_ASSETS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../web/public');

function copyTree(from: string, to: string): void {
  mkdirSync(to, { recursive: true });
  for (const name of readdirSync(from)) {
    const src = path.join(from, name);
    if (statSync(src).isDirectory()) copyTree(src, path.join(to, name));
    else copyFileSync(src, path.join(to, name));
  }
}

/** Refuses an existing folder (called before any export work, and again at the write). */
export function refuseExistingSite(dir: string): void {
  if (existsSync(dir)) throw new Error(`export --web: ${dir} already exists; choose another folder or pass --force to replace it`);
}

/** Writes the page and the model (.onnx bytes) to `dir`; refuses an existing `dir` unless `force`. */
export function writeWebSite(dir: string, model: Uint8Array, o: { force?: boolean; assets?: string } = {}): void {
  const assets = o.assets ?? WEB_ASSETS;
  if (!existsSync(path.join(assets, 'index.html')) || !existsSync(path.join(assets, 'app.js'))) {
    throw new Error(`export --web: the page is not built (${assets} has no index.html and app.js); run npm run build`);
  }
  if (!o.force) refuseExistingSite(dir);
  if (existsSync(dir)) removeDirAtomic(dir);
  writeDirAtomic(dir, (tmp) => {
    copyTree(assets, tmp);
    writeFileAtomic(path.join(tmp, 'model.onnx'), model);
  });
}
