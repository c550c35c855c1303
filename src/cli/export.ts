// `ddpm export`: a trained run as an ONNX file for ONNX Runtime (Node, browsers), no libtorch needed.
import { Command } from 'commander';
import { exportRun } from '../train/export.js';

interface ExportFlags { run: string; out: string; checkpoint?: string; ema: boolean; force?: boolean }

export function exportCommand(): Command {
  return new Command('export')
    .description('write a trained run as an ONNX model (opset 17; inputs x_t, t and class_labels, output prediction; the run config in its metadata)')
    .requiredOption('--run <dir>', 'run folder written by `ddpm train`')
    .requiredOption('--out <file>', 'the .onnx file to write')
    .option('--checkpoint <path>', 'a checkpoints/step-N folder or model.safetensors (default: the latest)')
    .option('--no-ema', 'export the trained weights, not their EMA, when the checkpoint has both')
    .option('--force', 'replace --out if it exists')
    .action((f: ExportFlags) => {
      const r = exportRun({ run: f.run, out: f.out, ema: f.ema, force: f.force ?? false, ...(f.checkpoint !== undefined ? { checkpoint: f.checkpoint } : {}) });
      const weights = r.ema ? 'EMA weights' : 'weights';
      process.stdout.write(`wrote ${r.out} (${r.bytes.toLocaleString('en-US')} bytes): ${r.metadata.preset}, ${weights} of ${r.checkpoint}\n`);
    });
}
