// Data-parallel inference on one machine: each batch is split across R replicas of the model, the
// calling thread's and R - 1 in worker threads, each with its own libtorch threads (as
// torch.nn.DataParallel splits a batch across devices: scatter, replicate, gather).
//
// Why: on a few CPU cores, one libtorch thread per replica on part of the batch can beat every
// thread on the whole batch, where a model's kernels scale poorly across intra-op threads (dli02's
// transposed convolutions did, before they ran as sub-pixel convolutions; since then one model on
// two threads is a little faster for it). `npm run bench` measures both.
//
// The forward stays synchronous, so every sampler can use it unchanged: the caller posts each
// worker its slice, computes its own slice, then blocks in Atomics.wait until every worker has
// answered, and reads the answers with receiveMessageOnPort. Noise and sampler arithmetic stay on
// the calling thread, so a seed gives the same images at any replica count, up to float rounding in
// the model.
import { Worker, MessageChannel, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { type Tensor, type AnyTypedArray, ArgumentError, tensor, tidy, cat, getNumThreads, setNumThreads } from '../tensor/index.js';
import { serializeTensors } from '../io/tensors.js';
import { type DiffusionUNet, type InferencePredictor, type ModelConfig, inferencePredictor } from './index.js';
import type { ReplicaReply, ReplicaRequest, ReplicaWorkerData } from './replica-worker.js';

export interface DataParallelOptions {
  /** Model replicas, counting the calling thread's (1: no worker threads). */
  replicas: number;
  /** libtorch intra-op threads of each replica (default 1). */
  threadsPerReplica?: number;
}

/** Replica states in the shared control word of each worker. */
const PENDING = 0;
const ANSWERED = 1;
const EXITED = 2;

interface Replica { worker: Worker; port: MessagePort; control: Int32Array; index: number }

/** libtorch threads of each of `replicas` replicas sharing `threads`: an even share, at least one. */
export function threadsPerReplica(threads: number, replicas: number): number { return Math.max(1, Math.floor(threads / replicas)); }

/** Sizes of `parts` slices of `n` rows, as even as possible, largest first (torch.chunk's order). */
export function splitSizes(n: number, parts: number): number[] {
  const k = Math.min(parts, n);
  return Array.from({ length: k }, (_, i) => Math.floor(n / k) + (i < n % k ? 1 : 0));
}

/**
 * An InferencePredictor that splits each batch across `replicas` copies of `model`. `config` is the
 * preset config the model was made from (createModel), so that each worker can rebuild it and load
 * a copy of its weights. The calling thread runs on `threadsPerReplica` libtorch threads until
 * dispose(), which restores its count and ends the worker threads.
 */
export function dataParallelPredictor(model: DiffusionUNet, config: ModelConfig, o: DataParallelOptions): InferencePredictor {
  const { replicas } = o;
  const threads = o.threadsPerReplica ?? 1;
  if (!Number.isInteger(replicas) || replicas < 1) throw new ArgumentError(`dataParallelPredictor: replicas must be an integer >= 1, got ${replicas}`);
  if (!Number.isInteger(threads) || threads < 1) throw new ArgumentError(`dataParallelPredictor: threadsPerReplica must be an integer >= 1, got ${threads}`);
  const local = inferencePredictor(model);
  if (replicas === 1) return local;

  const weights = serializeTensors(model.stateDict());
  const workers: Replica[] = [];
  // The calling thread is a replica too, for the whole life of the predictor: with more threads it
  // would leave OpenMP threads spinning after the sampler's own ops, on the cores of the workers.
  const callerThreads = getNumThreads();
  setNumThreads(threads);
  let disposed = false;
  const dispose = (): void => {
    if (disposed) return;
    disposed = true;
    setNumThreads(callerThreads);
    local.dispose();
    for (const r of workers.splice(0)) {
      r.port.close();
      void r.worker.terminate();
    }
  };
  try {
    for (let index = 1; index < replicas; index++) {
      const control = new Int32Array(new SharedArrayBuffer(4));
      const { port1, port2 } = new MessageChannel();
      const data: ReplicaWorkerData = { config, weights, threads, port: port2, control: control.buffer as SharedArrayBuffer };
      const worker = new Worker(new URL('./replica-worker.js', import.meta.url), { workerData: data, transferList: [port2] });
      // Workers never keep the process alive: a caller that forgets dispose() can still exit.
      worker.unref();
      workers.push({ worker, port: port1, control, index });
    }
    // Each worker answers once when its replica is built (or failed to build).
    for (const r of workers) answerOf(r);
  } catch (e) {
    dispose();
    throw e;
  }

  return {
    forward(x: Tensor, t: Tensor, c?: Tensor | null): Tensor {
      if (disposed) throw new Error('data parallel: this predictor was disposed; make a new one');
      const sizes = splitSizes(x.shape[0]!, replicas);
      if (sizes.length === 1) return local.forward(x, t, c);
      const used = workers.slice(0, sizes.length - 1);
      // Scatter: each worker gets a copy of its rows. Every request posted is answered and read
      // below, even when something fails, so that no stale answer is left for the next call.
      const posted: Replica[] = [];
      let mine: Tensor | null = null;
      let failure: unknown = null;
      try {
        let start = sizes[0]!;
        used.forEach((r, i) => {
          const b = sizes[i + 1]!;
          const slice = (v: Tensor): AnyTypedArray => v.narrow(0, start, b).contiguous().dataSync();
          const request: ReplicaRequest = tidy(() => ({
            x: slice(x), xShape: [b, ...x.shape.slice(1)], t: slice(t), c: c ? slice(c) : null, cShape: c ? [b, ...c.shape.slice(1)] : null,
          }));
          if (Atomics.compareExchange(r.control, 0, ANSWERED, PENDING) === EXITED) {
            throw new Error(`data parallel: replica ${r.index} of ${replicas} (a worker thread) has exited; make a new predictor`);
          }
          r.port.postMessage(request, [request.x.buffer, request.t.buffer, ...(request.c ? [request.c.buffer] : [])] as ArrayBuffer[]);
          posted.push(r);
          start += b;
        });
        // The caller's own slice, while the workers compute theirs.
        const b0 = sizes[0]!;
        mine = tidy(() => local.forward(x.narrow(0, 0, b0), t.narrow(0, 0, b0), c ? c.narrow(0, 0, b0) : c));
      } catch (e) {
        failure = e;
      }
      // Gather, in batch order.
      const answers: ReplicaReply[] = [];
      for (const r of posted) {
        try {
          answers.push(answerOf(r));
        } catch (e) {
          failure ??= e;
        }
      }
      try {
        if (failure !== null) throw failure;
        return tidy(() => cat([mine!, ...answers.map((a) => tensor(a.y!, a.yShape!))], 0));
      } finally {
        mine?.dispose();
      }
    },
    dispose,
  };

  /** Blocks until replica r answers; its answer, or the error it reported. */
  function answerOf(r: Replica): ReplicaReply {
    Atomics.wait(r.control, 0, PENDING);
    const m = receiveMessageOnPort(r.port)?.message as ReplicaReply | undefined;
    if (!m) throw new Error(`data parallel: replica ${r.index} of ${replicas} (a worker thread) exited without answering`);
    if (m.error !== undefined) throw new Error(`data parallel: replica ${r.index} of ${replicas} failed: ${m.error}`);
    return m;
  }
}
