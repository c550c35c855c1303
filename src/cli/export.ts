// `ddpm export`: a trained run as an ONNX file for ONNX Runtime (Node, browsers), no libtorch needed.
import { Command } from 'commander';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { exportRun } from '../train/export.js';
import { refuseExistingSite, writeWebSite } from '../web/site.js';

interface ExportFlags { run: string; out?: string; web?: string; checkpoint?: string; ema: boolean; force?: boolean }

export function exportCommand(): Command {
  return new Command('export')
    .description('write a trained run as an ONNX model (opset 17; inputs x_t, t and class_labels, output prediction; the run config in its metadata)')
    .requiredOption('--run <dir>', 'run folder written by `ddpm train`')
    .option('--out <file>', 'the .onnx file to write')
    .option('--web <dir>', 'write a static page that generates in the browser (onnxruntime-web; the model, the page and its WASM runtime, nothing fetched from elsewhere)')
    .option('--checkpoint <path>', 'a checkpoints/step-N folder or model.safetensors (default: the latest)')
    .option('--no-ema', 'export the trained weights, not their EMA, when the checkpoint has both')
    .option('--force', 'replace --out if it exists')
    .action((f: ExportFlags) => {
      if (f.out === undefined && f.web === undefined) throw new Error('export: nothing to write; give --out FILE.onnx and/or --web DIR');
      if (f.web !== undefined && !f.force) refuseExistingSite(f.web);
      // --web alone: the model goes through a temporary file, then into the page's folder.
      const scratch = f.out === undefined ? mkdtempSync(path.join(tmpdir(), 'ddpm-export-')) : null;
      try {
        const out = f.out ?? path.join(scratch!, 'model.onnx');
        const r = exportRun({ run: f.run, out, ema: f.ema, force: f.force ?? false, ...(f.checkpoint !== undefined ? { checkpoint: f.checkpoint } : {}) });
        const weights = r.ema ? 'EMA weights' : 'weights';
        if (f.out !== undefined) process.stdout.write(`wrote ${r.out} (${r.bytes.toLocaleString('en-US')} bytes): ${r.metadata.preset}, ${weights} of ${r.checkpoint}\n`);
        if (f.web !== undefined) {
          writeWebSite(f.web, readFileSync(out), { force: f.force ?? false });
          process.stdout.write(`wrote ${f.web}/ (index.html, app.js, ort/, model.onnx of ${r.bytes.toLocaleString('en-US')} bytes): ${r.metadata.preset}, ${weights} of ${r.checkpoint}; serve it with any static file server\n`);
        }
      } finally {
        if (scratch) rmSync(scratch, { recursive: true, force: true });
      }
    });
}
