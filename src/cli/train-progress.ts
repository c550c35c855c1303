// What `ddpm train` and `ddpm train-classifier` show while they train: a progress bar, one line per
// epoch, Ctrl-C as "stop after this step and checkpoint", and the closing summary.
import path from 'node:path';
import { SingleBar } from 'cli-progress';
import type { TrainHooks, TrainSummary } from '../train/trainer.js';

export interface ProgressOptions {
  /** What trains, for the first line: "ddpm", "the classifier". */
  what: string;
  epochs: number;
  root: string;
  threads: number;
  /** The data-parallel words after the thread count ('' for one process). */
  world?: string;
  resumeFrom?: string;
  /** Whether this process prints (rank 0 of a data-parallel run). */
  lead?: boolean;
  sampleGrids: boolean;
}

/** A progress bar on stderr with `format`, redrawn in place on a terminal (tty), else every 10 s. */
export function progressBar(format: string, tty: boolean): SingleBar {
  return new SingleBar({ format, barsize: 24, hideCursor: tty, noTTYOutput: !tty, notTTYSchedule: 10000, etaBuffer: 50 });
}

/** Ctrl-C asks the run to stop after its step (it then writes a checkpoint); a second Ctrl-C quits at once. */
export function stopOnSigint(): { signal: AbortSignal; dispose(): void } {
  const ac = new AbortController();
  const onSigint = (): void => {
    process.stderr.write('\nstopping after this step; a checkpoint will be written (Ctrl-C again to quit now)\n');
    ac.abort();
    process.once('SIGINT', () => process.exit(130));
  };
  process.once('SIGINT', onSigint);
  return { signal: ac.signal, dispose: () => { process.off('SIGINT', onSigint); } };
}

/** Runs `start` with the hooks and the stop signal of a progress bar on stderr. */
export async function trainWithProgress(p: ProgressOptions, start: (hooks: TrainHooks, signal: AbortSignal) => Promise<TrainSummary>): Promise<TrainSummary> {
  const lead = p.lead ?? true;
  const tty = process.stderr.isTTY === true && lead;
  const bar = progressBar('epoch {epoch}/{epochs} |{bar}| step {value}/{total} | loss {loss} | {ips} img/s | ETA {eta_formatted}', tty);
  const stop = stopOnSigint();
  const hooks: TrainHooks = {
    onStart: (s) => {
      const from = s.resumedAt > 0 ? `, resuming at step ${s.resumedAt} from ${p.resumeFrom}` : '';
      process.stderr.write(`training ${p.what} on ${s.images} images from ${s.dataDir}: ${s.totalSteps} steps, ${p.threads} threads${p.world ?? ''} -> ${p.root}${from}\n`);
      bar.start(s.totalSteps, s.resumedAt, { epoch: Math.floor(s.resumedAt / s.stepsPerEpoch) + 1, epochs: p.epochs, loss: '-', ips: '-' });
    },
    onStep: (s) => bar.update(s.step, { epoch: s.epoch + 1, loss: s.smoothedLoss.toFixed(4), ips: Math.round(s.imagesPerSecond) }),
    onSkip: (k) => process.stderr.write(`\nstep ${k.step} skipped: ${k.reason} (${k.inARow} in a row)\n`),
    onEpoch: (e) => {
      bar.stop();
      const grid = p.sampleGrids ? `samples ${path.relative(process.cwd(), e.grid)}; ` : '';
      process.stderr.write(`epoch ${e.epoch + 1}: mean loss ${e.meanLoss.toFixed(4)}; ${grid}checkpoint ${path.relative(process.cwd(), e.checkpoint)}\n`);
      if (e.epoch + 1 < p.epochs && !stop.signal.aborted) bar.start(bar.getTotal(), e.step, { epoch: e.epoch + 2, epochs: p.epochs, loss: '-', ips: '-' });
    },
  };
  let summary;
  try {
    summary = await start(hooks, stop.signal);
  } finally {
    // The bar's timer would keep the process alive after an error.
    bar.stop();
    stop.dispose();
  }
  if (lead) process.stderr.write(`done: ${summary.steps} steps in ${summary.seconds.toFixed(1)} s (${Math.round(summary.imagesPerSecond)} img/s), final loss ${summary.finalLoss.toFixed(4)}\n`);
  return summary;
}
