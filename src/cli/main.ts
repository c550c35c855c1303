// The `ddpm` command.
import { Command, CommanderError } from 'commander';
import { readFileSync } from 'node:fs';
import { trainCommand } from './train.js';
import { trainClassifierCommand } from './train-classifier.js';
import { sampleCommand } from './sample.js';
import { vizCommand } from './viz.js';
import { dataCommand } from './data.js';
import { evalCommand } from './eval.js';
import { studioCommand } from './studio.js';
import { exportCommand } from './export.js';
import { distillCommand } from './distill.js';
import { configureRuntime, LibtorchUnavailableError } from '../tensor/index.js';

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

export function program(): Command {
  const p = new Command('ddpm')
    .description('Denoising Diffusion Probabilistic Models from TypeScript, on libtorch')
    .version(version())
    .showHelpAfterError('(run with --help for usage)')
    .configureHelp({ showGlobalOptions: true });
  p.addCommand(trainCommand());
  p.addCommand(trainClassifierCommand());
  p.addCommand(sampleCommand());
  p.addCommand(vizCommand());
  p.addCommand(dataCommand());
  p.addCommand(evalCommand());
  p.addCommand(studioCommand());
  p.addCommand(exportCommand());
  p.addCommand(distillCommand());
  for (const c of [p, ...p.commands, ...p.commands.flatMap((c) => c.commands)]) c.exitOverride();
  // The tuned process settings (tensor/runtime.ts), before a command loads libtorch or starts a worker.
  // Without libtorch, `ddpm data download` still runs; a command that needs it throws the same hint later.
  p.hook('preAction', () => {
    try {
      configureRuntime();
    } catch (e) {
      if (!(e instanceof LibtorchUnavailableError)) throw e;
    }
  });
  return p;
}

export async function main(argv: string[]): Promise<void> {
  try {
    await program().parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      // commander has already printed its message (unknown option, bad value, --help).
      process.exitCode = e.exitCode;
      return;
    }
    process.stderr.write(`ddpm: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  }
}
