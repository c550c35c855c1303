// The studio's "in this browser" generation: a run's checkpoint exported to ONNX on demand
// (train/export.ts exportRun, the same file `ddpm export` writes) and kept in a cache folder for the
// server's lifetime, so the page can run the exported page's sampler code on onnxruntime-web.
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { exportRun } from '../train/export.js';
import type { RunFolder } from '../io/run.js';
import { RequestError } from './validate.js';

export class OnnxCache {
  private dir: string | null = null;

  /**
   * The .onnx bytes of `checkpointDir` (a complete checkpoint folder of `run`, already validated).
   * The file is keyed by the checkpoint's name and modification time, so a run deleted and trained
   * again under the same name is exported afresh.
   */
  model(run: RunFolder, checkpointDir: string): Buffer {
    this.dir ??= mkdtempSync(path.join(tmpdir(), 'ddpm-studio-onnx-'));
    const mtime = Math.floor(statSync(checkpointDir).mtimeMs);
    const file = path.join(this.dir, `${path.basename(run.root)}--${path.basename(checkpointDir)}--${mtime}.onnx`);
    if (!existsSync(file)) {
      try {
        exportRun({ run: run.root, checkpoint: checkpointDir, out: file });
      } catch (e) {
        throw new RequestError(500, `exporting ${path.basename(run.root)}/${path.basename(checkpointDir)} to ONNX failed: ${(e as Error).message}`, 'checkpoint');
      }
    }
    return readFileSync(file);
  }

  close(): void {
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
    this.dir = null;
  }
}
