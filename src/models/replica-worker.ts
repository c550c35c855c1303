// One model replica of dataParallelPredictor (data-parallel.ts), in a worker thread: rebuilds the
// preset from its config and weights, then answers each slice of a batch with the model's output.
// Every answer, or error, goes back on the port before the control word says so; on exit the
// control word says EXITED, so the caller never waits on a thread that is gone.
import { workerData, type MessagePort } from 'node:worker_threads';
import { type AnyTypedArray, tensor, tidy, noGrad, setNumThreads } from '../tensor/index.js';
import { parseTensors } from '../io/tensors.js';
import { type InferencePredictor, type ModelConfig, createModel, inferencePredictor } from './index.js';

export interface ReplicaWorkerData { config: ModelConfig; weights: Uint8Array; threads: number; port: MessagePort; control: SharedArrayBuffer }
export interface ReplicaRequest { x: AnyTypedArray; xShape: number[]; t: AnyTypedArray; c: AnyTypedArray | null; cShape: number[] | null }
export interface ReplicaReply { y?: AnyTypedArray; yShape?: number[]; error?: string }

const ANSWERED = 1;
const EXITED = 2;

const data = workerData as ReplicaWorkerData;
const control = new Int32Array(data.control);
const port = data.port;

function answer(reply: ReplicaReply, transfer: ArrayBuffer[] = []): void {
  port.postMessage(reply, transfer);
  Atomics.store(control, 0, ANSWERED);
  Atomics.notify(control, 0);
}

process.on('exit', () => {
  Atomics.store(control, 0, EXITED);
  Atomics.notify(control, 0);
});

let predictor: InferencePredictor | null = null;
try {
  setNumThreads(data.threads);
  const model = createModel(data.config);
  const state = parseTensors(data.weights, 'data-parallel weights').tensors;
  try {
    model.loadStateDict(state, 'data-parallel weights');
  } finally {
    for (const t of state.values()) t.dispose();
  }
  predictor = inferencePredictor(model.eval());
  answer({});
} catch (e) {
  answer({ error: (e as Error).message });
}

port.on('message', (m: ReplicaRequest) => {
  try {
    if (!predictor) throw new Error('the replica was not built');
    const p = predictor;
    const y = tidy(() => noGrad(() => {
      const out = p.forward(tensor(m.x, m.xShape), tensor(m.t, [m.t.length]), m.c ? tensor(m.c, m.cShape!) : null);
      return { data: out.contiguous().dataSync(), shape: out.shape };
    }));
    answer({ y: y.data, yShape: y.shape }, [y.data.buffer as ArrayBuffer]);
  } catch (e) {
    answer({ error: (e as Error).message });
  }
});
