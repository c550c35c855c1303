// `ddpm studio`: the local web page (src/studio) for watching training, generating step by step and
// exploring the forward process. Serves until Ctrl-C, which stops running jobs cleanly.
import { Command } from 'commander';
import * as z from 'zod';
import { startStudio } from '../studio/server.js';
import { isLoopback } from '../studio/guard.js';
import { RUN_OPTIONS as R } from '../samplers/run-options.js';
import { declared, parsed } from './args.js';

interface StudioFlags { runs: string; port: number; host: string; data?: string; threads: number }

const port = parsed(z.int().min(0).max(65535), '--port');

export function studioCommand(): Command {
  return new Command('studio')
    .description('start the studio, a local web page: runs and live loss curves, training, step-by-step generation, the forward process.\n'
      + 'Prints the address to open and serves until Ctrl-C (a running training job writes its checkpoint first).')
    .option('--runs <dir>', 'folder of run folders to show, and where new runs are written', 'runs')
    .option('--port <n>', 'port to listen on (0 picks a free one; the address printed has the port chosen)', port, 7860)
    .option('--host <addr>', 'address to listen on; any address other than a loopback one (127.0.0.1, localhost, ::1), e.g. 0.0.0.0, opens the studio, which can start training and read your runs, to your network', '127.0.0.1')
    .option('--data <dir>', 'Fashion-MNIST folder (default: $FASHION_MNIST_DIR, then /usr/share/datasets/fashion-mnist)')
    // Two: this machine's cores; a request cannot change it, so a page cannot oversubscribe the machine.
    .addOption(declared(R.threads, { help: 'libtorch threads of each training or generation job', default: 2 }))
    .action(async (f: StudioFlags) => { await runStudio(f); });
}

async function runStudio(f: StudioFlags): Promise<void> {
  const studio = await startStudio({ runsDir: f.runs, host: f.host, port: f.port, threads: f.threads, ...(f.data !== undefined ? { dataDir: f.data } : {}) });
  process.stdout.write(`ddpm studio: ${studio.url}\n`);
  if (!isLoopback(f.host)) {
    process.stderr.write(`ddpm studio: listening on ${f.host}, not only on this machine: anyone who can reach port ${studio.port} can use the studio\n`);
  }
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
