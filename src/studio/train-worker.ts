// The studio's training process (forked by jobs.ts): trains one run with the library's trainer and
// posts TrainProgress over IPC, so the server's event loop never waits on a training step. A
// 'stop' message (or the server going away) aborts after the current step; the trainer then
// writes its checkpoint and returns, and this process exits.
import { train } from '../train/trainer.js';
import { configureRuntime } from '../tensor/index.js';
import { RunFolder } from '../io/run.js';
import type { TrainProgress } from './protocol.js';
import { sendToParent, type ParentMessage, type TrainJobInput } from './ipc.js';

// The `ddpm` command's process settings, before libtorch loads (jobs.ts passes OPENBLAS_NUM_THREADS=1).
configureRuntime();

/** Progress at most this often: each message is a page update, and a step takes tens of ms. */
const PROGRESS_MS = 200;

async function run(input: TrainJobInput, ac: AbortController): Promise<void> {
  const { config } = input;
  let last = 0;
  const epochs = config.train.epochs;
  const post = (p: TrainProgress, force = false): void => {
    const now = performance.now();
    if (!force && now - last < PROGRESS_MS) return;
    last = now;
    void sendToParent({ type: 'progress', progress: p }).catch(() => ac.abort());
  };
  await train(config, new RunFolder(input.runDir), {
    threads: input.threads,
    signal: ac.signal,
    ...(input.dataDir !== undefined ? { data: { dir: input.dataDir } } : {}),
    hooks: {
      onStart: (s) => post({ kind: 'train', step: s.resumedAt, totalSteps: s.totalSteps, epoch: 0, epochs, loss: null, imagesPerSecond: null, eta: null }, true),
      onStep: (s) => {
        const left = s.totalSteps - s.step;
        post({
          kind: 'train', step: s.step, totalSteps: s.totalSteps, epoch: s.epoch, epochs,
          loss: Number.isFinite(s.smoothedLoss) ? s.smoothedLoss : null,
          imagesPerSecond: Number.isFinite(s.imagesPerSecond) ? s.imagesPerSecond : null,
          eta: s.step > 0 ? (left * s.elapsedSeconds) / s.step : null,
        }, s.step === s.totalSteps);
      },
    },
  });
  await sendToParent({ type: 'done', stopped: ac.signal.aborted });
}

const ac = new AbortController();
// The server gone (crashed or closed) stops training cleanly too: the checkpoint is still written.
process.on('disconnect', () => ac.abort());
// Ctrl-C in the studio's terminal reaches this process too (same process group): stop as the studio does, with a checkpoint.
process.on('SIGINT', () => ac.abort());
process.on('message', (m: ParentMessage) => {
  if (m.type === 'stop') { ac.abort(); return; }
  if (m.type !== 'start' || m.input.kind !== 'train') return;
  run(m.input, ac).then(
    () => process.exit(0),
    async (e: unknown) => {
      await sendToParent({ type: 'error', message: e instanceof Error ? e.message : String(e) }).catch(() => undefined);
      process.exit(1);
    },
  );
});
