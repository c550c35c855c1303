// `ddpm studio`: the local web page (src/studio) for watching training, generating step by step and
// exploring the forward process. Serves until Ctrl-C, which stops running jobs cleanly.
import { Command } from 'commander';
import { startStudio } from '../studio/server.js';
import { nonNegativeInt, positiveInt } from './args.js';

interface StudioFlags { runs: string; port: number; host: string; data?: string; threads: number }

export function studioCommand(): Command {
  return new Command('studio')
    .description('start the studio, a local web page: runs and live loss curves, training, step-by-step generation, the forward process')
    .option('--runs <dir>', 'folder of run folders to show, and where new runs are written', 'runs')
    .option('--port <n>', 'port to listen on (0 picks a free one)', nonNegativeInt('--port'), 7860)
    .option('--host <addr>', 'address to listen on (another than 127.0.0.1 opens the studio to your network)', '127.0.0.1')
    .option('--data <dir>', 'Fashion-MNIST folder (default: $FASHION_MNIST_DIR, then /usr/share/datasets/fashion-mnist)')
    // Two: this machine's cores; a request cannot change it, so a page cannot oversubscribe the machine.
    .option('--threads <n>', 'libtorch threads of each training or generation job', positiveInt('--threads'), 2)
    .action(async (f: StudioFlags) => { await runStudio(f); });
}

async function runStudio(f: StudioFlags): Promise<void> {
  if (f.port > 65535) throw new Error(`--port must be in 0..65535, got ${f.port}`);
  const studio = await startStudio({ runsDir: f.runs, host: f.host, port: f.port, threads: f.threads, ...(f.data !== undefined ? { dataDir: f.data } : {}) });
  process.stdout.write(`ddpm studio: ${studio.url}\n`);
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      process.stderr.write('\nddpm studio: stopping (a running training job writes its checkpoint first; Ctrl-C again to quit now)\n');
      process.once('SIGINT', () => process.exit(130));
      studio.close().then(resolve, (e: unknown) => { process.stderr.write(`ddpm studio: ${(e as Error).message}\n`); resolve(); });
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}
